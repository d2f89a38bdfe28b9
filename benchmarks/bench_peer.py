"""The peer comparison: the same labs and the same 50-test suite on vlab and on Mininet.

Mininet (Debian's ``mininet`` + ``bridge-utils``) with its LinuxBridge switch and no controller
is the closest widely used peer: namespaces, veths and a Linux bridge. It runs under Debian's
/usr/bin/python3 inside a private network namespace (``unshare --net``), so it never touches the
host's network; ``mn -c`` (which kills processes by name) is never run. Where Mininet is not
installed the rows say so and nothing else happens.

- Labs: one bridge with three VMs (Mininet: hosts) and an uplink (Mininet: a fourth host),
  built and torn down; trials alternate between the two in blocks so that background load and
  the kernel's deferred cleanup fall on both.
- Suite: 50 tests, each building that lab and checking that one endpoint reaches another —
  vlab with a raw frame out and a reply back (``send``/``expect``), Mininet with ``ping -c1``
  (what a Mininet test does: it has no way to inject a frame). Wall time of the whole pytest
  run, start-up included; the two runs alternate.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import site
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_suite import build_lab
from benchmarks.timing import Figure, Stats

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "mininet_driver.py"
SYSTEM_PYTHON = "/usr/bin/python3"
MININET = "/usr/lib/python3/dist-packages/mininet"
SUITE_TESTS = 50

VLAB_SUITE = """\
import pytest
from scapy.layers.l2 import Ether

pytestmark = pytest.mark.vlab


@pytest.mark.parametrize("n", range({tests}))
def test_vm1_reaches_vm2(lab, n):
    br = lab.bridge("br0")
    vm1, vm2 = lab.vm("vm1", bridge=br), lab.vm("vm2", bridge=br)
    lab.vm("vm3", bridge=br)
    lab.uplink(br)
    ping = Ether(src=vm1.mac, dst=vm2.mac, type=0x88B5) / b"ping"
    vm1.send(ping)
    vm2.expect(ping)
    pong = Ether(src=vm2.mac, dst=vm1.mac, type=0x88B5) / b"pong"
    vm2.send(pong)
    vm1.expect(pong)
"""

MININET_SUITE = """\
import sys

sys.path.insert(0, "/usr/lib/python3/dist-packages")

import pytest
from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.nodelib import LinuxBridge
from mininet.topo import SingleSwitchTopo

Mininet.inited = True  # never fixLimits(): it writes machine-wide sysctls
setLogLevel("error")


@pytest.mark.parametrize("n", range({tests}))
def test_h1_reaches_h2(n):
    net = Mininet(topo=SingleSwitchTopo(4), switch=LinuxBridge, controller=None)
    net.start()
    try:
        h1, h2 = net.get("h1", "h2")
        assert " 1 received" in h1.cmd("ping -c1 -W1", h2.IP())
    finally:
        net.stop()
"""


def missing() -> str | None:
    """Why the Mininet side cannot run here (None when it can)."""
    if not os.path.isdir(MININET) or shutil.which("mnexec") is None:
        return "Mininet is not installed (Debian: apt-get install mininet bridge-utils)"
    if shutil.which("brctl") is None:
        return "bridge-utils (brctl) is not installed: Mininet's LinuxBridge needs it"
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is needed to keep Mininet out of the host's namespace"
    if shutil.which("ping") is None:
        return "ping (iputils-ping) is needed by the Mininet suite"
    return None


def _mininet_labs(count: int) -> list[float]:
    proc = subprocess.run(
        ["unshare", "--net", SYSTEM_PYTHON, str(DRIVER), "labs", str(count)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"Mininet labs failed: {proc.stderr.strip()[-300:]}")
    times: list[float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return times


def _skipped(note: str) -> list[Figure]:
    return [
        Figure("peer: build+destroy, bridge + 3 VMs + uplink, vs Mininet", None, "ms", note=note),
        Figure(f"peer: {SUITE_TESTS}-test pytest suite, vs Mininet", None, "s", note=note),
    ]


def labs(quick: bool) -> list[Figure]:
    blocks, per_block = (3, 5) if quick else (5, 10)
    vlab: list[float] = []
    mininet: list[float] = []
    build_lab()
    for _ in range(blocks):
        for _ in range(per_block):
            start = time.perf_counter()
            build_lab()
            vlab.append(time.perf_counter() - start)
        mininet += _mininet_labs(per_block)
    ms = 1e3
    return [
        Figure(
            "peer: build+destroy, bridge + 3 VMs + uplink",
            Stats.of(vlab).scaled(ms),
            "ms",
            "Mininet (LinuxBridge, no controller; 4 hosts)",
            Stats.of(mininet).scaled(ms),
            note="as the caller sees it; alternating blocks of trials",
        )
    ]


def _python_path() -> str:
    """The venv's site-packages, so Debian's python finds the same pytest as vlab's run."""
    paths = [p for p in site.getsitepackages() if "site-packages" in p]
    return os.pathsep.join(paths)


def suite(quick: bool) -> list[Figure]:
    runs = 1 if quick else 3
    vlab: list[float] = []
    fresh: list[float] = []  # vlab with switch namespaces never reused
    mininet: list[float] = []
    results: list[str] = []
    with tempfile.TemporaryDirectory(prefix="vlab-bench-peer-") as tmp:
        vdir, mdir = Path(tmp, "vlab"), Path(tmp, "mininet")
        vdir.mkdir()
        mdir.mkdir()
        (vdir / "test_vlab_suite.py").write_text(VLAB_SUITE.format(tests=SUITE_TESTS))
        (mdir / "test_mininet_suite.py").write_text(MININET_SUITE.format(tests=SUITE_TESTS))
        common = ["-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
        vargv = [sys.executable, "-m", "pytest", "--vlab", *common, str(vdir)]
        margv = ["unshare", "--net", SYSTEM_PYTHON, "-m", "pytest", *common, "-p", "no:vlab"]
        margv += [str(mdir)]
        menv = dict(os.environ, PYTHONPATH=_python_path())
        fenv = dict(os.environ, VLAB_REUSE_NAMESPACES="0")
        for _ in range(runs):
            for argv, env, out in (
                (vargv, None, vlab),
                (margv, menv, mininet),
                (vargv, fenv, fresh),
            ):
                start = time.perf_counter()
                proc = subprocess.run(
                    argv, cwd=tmp, env=env, capture_output=True, text=True, timeout=1200
                )
                out.append(time.perf_counter() - start)
                last = (proc.stdout.strip().splitlines() or [proc.stderr.strip()[-200:]])[-1]
                results.append(last)
                if proc.returncode != 0:
                    print(f"bench: peer suite exited {proc.returncode}: {last}")
    v, m = Stats.of(vlab), Stats.of(mininet)
    ratio = statistics.median(mininet) / statistics.median(vlab)
    inside = [_pytest_seconds(line) for line in results]
    v_in = statistics.median(inside[0::3]) if all(inside) else float("nan")
    m_in = statistics.median(inside[1::3]) if all(inside) else float("nan")
    f_in = statistics.median(inside[2::3]) if all(inside) else float("nan")
    return [
        Figure(
            f"peer: {SUITE_TESTS}-test pytest suite (build the lab, one endpoint reaches another)",
            v,
            "s wall",
            "the same suite on Mininet (`ping -c1`)",
            m,
            goal=">= 6x faster than Mininet",
            goal_met=ratio >= 6.0,
            note=f"{runs} alternating runs each, start-up included; pytest's own time "
            f"(without start-up): vlab {v_in:.2f} s, Mininet {m_in:.2f} s ({m_in / v_in:.1f}x); "
            "last lines: " + "; ".join(dict.fromkeys(results)),
        ),
        Figure(
            f"peer: {SUITE_TESTS}-test pytest suite, switch namespaces reused (the default)",
            v,
            "s wall",
            "the same vlab suite with `VLAB_REUSE_NAMESPACES=0`",
            Stats.of(fresh),
            note=f"interleaved with the runs above; pytest's own time {v_in:.2f} s against "
            f"{f_in:.2f} s; Mininet / vlab without reuse: "
            f"{statistics.median(mininet) / statistics.median(fresh):.1f}x",
        ),
    ]


def _pytest_seconds(line: str) -> float:
    """The "in 1.57s" of pytest's last line (0.0 when absent)."""
    found = re.search(r" in ([0-9.]+)s", line)
    return float(found.group(1)) if found else 0.0


def run(quick: bool) -> list[Figure]:
    why = missing()
    if why is not None:
        return _skipped(f"skipped: {why}")
    return labs(quick) + suite(quick)
