"""A QEMU lab's scratch directory does not outlive its process beyond the next lab's start.

A lab outside pytest keeps its guests' boot logs in a scratch directory that ``close()`` removes;
SIGKILL and SIGTERM (which Python does not turn into an exception) skip ``close()``. The owner
killed here boots a real guest first; the next process that makes a scratch directory must remove
the dead owner's, and must leave a live owner's alone. Each child gets a TMPDIR of its own, so
nothing else on the machine is reaped, or counted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from vlab.qemu import qemu_unavailable

pytestmark = pytest.mark.vlab
ROOT = Path(__file__).resolve().parents[2]

OWNER = textwrap.dedent(
    """
    import sys, time
    from vlab import Lab
    lab = Lab(name=sys.argv[1])
    if sys.argv[2] == "qemu":
        lab.vm("vm1", bridge=lab.bridge("br0"), guest="qemu")
    print(lab.guest_dir(), flush=True)
    if sys.argv[3] == "stay":
        time.sleep(600)
    lab.close()
    """
)


def _start(tmpdir: Path, name: str, guest: str, stay: bool) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen(
        [sys.executable, "-c", OWNER, name, guest, "stay" if stay else "close"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmpdir)},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        err = proc.stderr.read() if proc.stderr else ""
        raise AssertionError(f"owner exited {proc.wait()}: {err}")
    return proc, Path(line.strip())


def _stop(proc: subprocess.Popen[str], sig: int) -> None:
    proc.send_signal(sig)
    proc.communicate(timeout=30)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_qemu_labs_dir_goes_at_the_next_start(tmp_path: Path, sig: int) -> None:
    reason = qemu_unavailable()
    if reason:
        pytest.skip(reason)
    owner, first = _start(tmp_path, "killme", "qemu", stay=True)
    try:
        deadline = time.monotonic() + 30
        while not (first / "vm1.boot.log").exists():
            assert time.monotonic() < deadline, "QEMU never opened its boot log"
            time.sleep(0.05)
    finally:
        _stop(owner, sig)
    assert owner.returncode == -sig
    assert first.is_dir()  # nothing in the dead process could remove it

    nxt, second = _start(tmp_path, "next", "none", stay=False)
    nxt.communicate(timeout=30)
    assert nxt.returncode == 0
    assert not first.exists(), f"{first} outlived its dead owner and the next start"
    assert not second.exists()  # closed normally: removed by close()
    assert second.parent == first.parent  # one private root per user
    assert first.parent.stat().st_mode & 0o777 == 0o700


def test_a_live_owners_dir_is_left_alone(tmp_path: Path) -> None:
    owner, first = _start(tmp_path, "alive", "none", stay=True)
    try:
        nxt, _second = _start(tmp_path, "next", "none", stay=False)
        nxt.communicate(timeout=30)
        assert first.is_dir(), "a live lab's scratch directory was reaped"
    finally:
        _stop(owner, signal.SIGKILL)
