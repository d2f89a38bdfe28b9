"""Helper process for the "killed test process leaves no QEMU" test (run as a script).

``reaper`` mode makes itself a child subreaper, runs ``owner`` mode as a child, SIGKILLs it once its
guest is up, then waits for the orphaned QEMU (re-parented to the reaper, which can therefore reap
it and learn how it died). It prints one JSON line: the QEMU pid and how it ended.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36


def owner() -> None:
    from qemu_wire import open_wire

    from vlab.qemu import QemuGuest

    wire = open_wire()
    guest = QemuGuest.start(
        name="doomed", tap_fd=wire.tap_fd, mac="52:54:00:de:ad:01", workdir=Path(sys.argv[2])
    )
    print(guest.pid, flush=True)
    guest.wait_ready(60)
    print("ready", flush=True)
    time.sleep(300)


def reaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_CHILD_SUBREAPER")
    workdir = tempfile.mkdtemp(prefix="vlab-owner-")
    child = subprocess.Popen(
        [sys.executable, __file__, "owner", workdir], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    qemu_pid = int(child.stdout.readline())
    ready = child.stdout.readline().strip()
    child.kill()
    child.wait()
    killed = time.monotonic()
    how = "survived"
    while time.monotonic() - killed < 10:
        pid, status = os.waitpid(qemu_pid, os.WNOHANG)
        if pid == qemu_pid:
            how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else "exited"
            break
        time.sleep(0.01)
    else:
        os.kill(qemu_pid, signal.SIGKILL)
        os.waitpid(qemu_pid, 0)
    elapsed = time.monotonic() - killed
    shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps({"pid": qemu_pid, "ready": ready, "how": how, "seconds": elapsed}))


if __name__ == "__main__":
    {"owner": owner, "reaper": reaper}[sys.argv[1]]()
