"""Lab tests on the kernel under test (``pytest --vlab --vlab-kernel``), against the host kernel.

Three figures: session start to the first guest-kernel test result (boot + the guest's Python
importing pytest and vlab, under TCG); the same lab test (build a lab, flood a frame, expect it)
timed inside the guest vs on the host; and the scenario library with ``-n 2`` under the guest
kernel vs the host kernel. Skipped with the reason where guests cannot boot.
"""

from __future__ import annotations

import glob
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from xml.etree import ElementTree

from benchmarks.timing import Figure, Stats

ROOT = Path(__file__).resolve().parents[1]
FIRST_RESULT_GOAL_S = 10.0
LIBRARY_GOAL_S = 180.0

TESTS = """
import statistics, time
import pytest
from scapy.layers.l2 import Ether

pytestmark = pytest.mark.vlab

def test_first(lab):
    lab.bridge("br0")

def test_timed(record_property):
    from vlab import Lab
    samples = []
    for i in range(TRIALS):
        start = time.perf_counter()
        with Lab(name=f"t{i}") as lab:
            br = lab.bridge("br0")
            vm1, vm2 = lab.vm("vm1", bridge=br), lab.vm("vm2", bridge=br)
            up = lab.uplink(br)
            frame = Ether(src=vm1.mac, dst="02:00:00:00:00:99", type=0x88B5) / b"x"
            vm1.send(frame)
            up.expect(frame)
            vm2.expect(frame)
        samples.append(time.perf_counter() - start)
    record_property("samples", ",".join(f"{s:.6f}" for s in samples))
"""


def _kernel() -> Path | None:
    found = sorted(glob.glob("/boot/vmlinuz-*-cloud-amd64"))
    return Path(found[-1]) if found else None


def _session(project: Path, kernel: str, trials: int) -> tuple[float, list[float]]:
    """(seconds from start to the first PASSED line, the timed test's per-lab seconds)."""
    (project / "test_bench.py").write_text(TESTS.replace("TRIALS", str(trials)))
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--vlab", "-v"]
    argv += [f"--vlab-kernel={kernel}", "--junitxml=out.xml", "test_bench.py"]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=project, stdout=subprocess.PIPE, text=True)
    first = None
    assert proc.stdout is not None
    for line in proc.stdout:
        if first is None and "PASSED" in line:
            first = time.perf_counter() - start
    if proc.wait() != 0 or first is None:
        raise RuntimeError(f"bench session on kernel {kernel} failed (exit {proc.returncode})")
    samples: list[float] = []
    for prop in ElementTree.parse(project / "out.xml").iter("property"):
        if prop.get("name") == "samples":
            samples = [float(s) for s in (prop.get("value") or "").split(",") if s]
    return first, samples


def _library(kernel: str) -> float:
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--vlab", "-q", "-n", "2"]
    argv += [f"--vlab-kernel={kernel}", "scenarios"]
    start = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def run(quick: bool) -> list[Figure]:
    from vlab.kernel.launcher import unavailable

    kernel = _kernel()
    reason = unavailable() or (None if kernel else "no /boot/vmlinuz-*-cloud-amd64")
    if reason is not None or kernel is None:
        print(f"bench: kernel under test skipped: {reason}")
        return [Figure("guest kernel: first result", None, "s", note=f"skipped: {reason}")]
    from vlab.kernel.image import inspect_kernel

    release = inspect_kernel(kernel).release
    trials = 5 if quick else 20
    sessions = 1 if quick else 2
    firsts, guest_labs, host_labs = [], [], []
    with tempfile.TemporaryDirectory(prefix="vlab-bench-kernel-") as tmp:
        for _ in range(sessions):
            first, samples = _session(Path(tmp), str(kernel), trials)
            firsts.append(first)
            guest_labs += samples
            host_labs += _session(Path(tmp), "host", trials)[1]
    library_guest = _library(str(kernel))
    library_host = _library("host")
    first_stats = Stats.of(firsts)
    return [
        Figure(
            f"guest kernel {release}: session start to first test result (TCG)",
            first_stats,
            "s",
            goal=f"<= {FIRST_RESULT_GOAL_S:g} s",
            goal_met=first_stats.median <= FIRST_RESULT_GOAL_S,
            note="boot ~6-10 s, then the guest's Python imports pytest/hypothesis/scapy/vlab",
        ),
        Figure(
            "lab test (build, flood, expect) in the guest kernel",
            Stats.of(guest_labs),
            "s",
            "same test on the host kernel",
            Stats.of(host_labs),
            note="the guest runs on an emulated CPU (TCG)",
        ),
        Figure(
            f"scenario library under guest kernel {release}, -n 2",
            Stats.of([library_guest]),
            "s",
            "same on the host kernel, -n 2",
            Stats.of([library_host]),
            goal=f"<= {LIBRARY_GOAL_S:g} s",
            goal_met=library_guest <= LIBRARY_GOAL_S,
        ),
    ]


if __name__ == "__main__":
    for figure in run(quick="--quick" in sys.argv):
        print(figure)
