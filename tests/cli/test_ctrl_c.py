"""Ctrl-C at any moment of ``vlab up`` ends it with one line and exit 130 (or a clean teardown).

The lab core (scapy, pyroute2, the lab modules) takes a fraction of a second to import when its
bytecode is cached and seconds when it is not; a SIGINT landing in there used to escape as a
KeyboardInterrupt traceback. Here every run gets a bytecode cache (PYTHONPYCACHEPREFIX) holding
only what the interpreter and the ``vlab`` entry point need, so the lab core is compiled while it
is imported, and slow. Each SIGINT is sent a chosen delay after ``main`` began importing it
(seen as ctypes, its first shared library, appearing in the process's memory map), so the sweep
lands in the imports, in the build and in the running lab. Against a CLI whose imports run
outside the reach of its ``except KeyboardInterrupt``, the first deliveries print tracebacks.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import DATA, ROOT, vlab_argv

pytestmark = pytest.mark.vlab
DELAYS = (0.0, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1.5, 3.0)
MARKER = "_ctypes"  # vlab.rootless -> vlab.netns -> ctypes: the first import main() makes


def _env(cache: Path, state: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "PYTHONPYCACHEPREFIX": str(cache),
        "VLAB_STATE_DIR": str(state),
    }


def _in_main(pid: int) -> bool:
    try:
        return MARKER in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def _interrupted_after(delay: float, cache: Path, state: Path) -> tuple[int, str, str]:
    env = _env(cache, state)
    # compile what runs before main() (the interpreter's startup, vlab.cli): the rest stays cold
    warm = "import argparse, vlab.cli"
    subprocess.run([sys.executable, "-c", warm], env=env, check=True, timeout=120)
    proc = subprocess.Popen(
        [*vlab_argv(), "up", str(DATA / "lab.yaml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
        # as in a terminal: this suite's runner may ignore SIGINT, and children inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 30
        while not _in_main(proc.pid) and proc.poll() is None:
            assert time.monotonic() < deadline, "vlab never started importing the lab core"
            time.sleep(0.001)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err


def test_ctrl_c_at_any_moment_of_up_is_quiet(tmp_path: Path) -> None:
    outcomes = []
    for i, delay in enumerate(DELAYS):
        code, out, err = _interrupted_after(delay, tmp_path / f"pyc{i}", tmp_path / "state")
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, (
            f"SIGINT {delay} s into the imports: exit {code}\n{err}"
        )
        if code == 130:
            assert err == "vlab: interrupted\n", err
        else:  # the lab was being built or was up: torn down in order
            assert code == 0, f"SIGINT {delay} s into the imports: exit {code}\n{out}\n{err}"
            assert "SIGINT: lab" in out and "torn down" in out, out
        outcomes.append(code)
    assert outcomes[0] == 130, f"the first SIGINT did not land in the imports: {outcomes}"
    assert list((tmp_path / "state").glob("*.json")) == []
