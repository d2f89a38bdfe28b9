"""Scratch directories that do not outlive their process for long, even when it is SIGKILLed.

A lab built outside pytest without ``artifacts=`` keeps its QEMU guests' boot logs in a temporary
directory, removed when the lab closes. A process killed by SIGKILL (or by SIGTERM, which Python
does not turn into an exception) never gets there. So instead of loose ``/tmp/vlab-*`` directories
each one lives in a private per-user root, named after the process that owns it and that
process's start time::

    /tmp/vlab-scratch-<uid>/<pid>.<start>.<lab name>.<random>

and whoever makes the next one removes every entry whose owner is gone (a pid that no longer
exists, or exists with another start time: reused). Leftovers thus last until the next guest lab
of the same user starts, never indefinitely. The root is made and checked like the state
directory (:func:`vlab.paths.open_private_dir`): nobody else can plant anything in it.

The boot log must stay a real file while the guest runs (QEMU writes it by path; a failing test
attaches its tail), which rules out an unlinked file.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from vlab import rootless
from vlab.paths import open_private_dir, safe_component

_ENTRY = re.compile(r"^([0-9]+)\.([0-9]+)\.")
_FIX = "set TMPDIR to a directory of your own"


def scratch_root() -> Path:
    """The private root of this user's scratch directories (by host uid, as state files)."""
    return Path(tempfile.gettempdir()) / f"vlab-scratch-{rootless.host_uid()}"


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            text = fh.read()
    except OSError:
        return None
    return int(text.rpartition(b")")[2].split()[19])


def _owner_alive(name: str) -> bool:
    found = _ENTRY.match(name)
    if found is None:
        return True  # not ours to judge
    return start_time(int(found.group(1))) == int(found.group(2))


def reap(root: Path | None = None) -> list[str]:
    """Remove the scratch directories of processes that are gone; returns their names."""
    root = root or scratch_root()
    try:
        dfd = open_private_dir(root, "vlab scratch directory", _FIX, create=False)
    except FileNotFoundError:
        return []
    try:
        dead = [name for name in os.listdir(dfd) if not _owner_alive(name)]
    finally:
        os.close(dfd)
    for name in dead:
        shutil.rmtree(root / name, ignore_errors=True)
    return dead


def make(label: str) -> Path:
    """A fresh scratch directory of this process, after reaping those of dead processes."""
    root = scratch_root()
    os.close(open_private_dir(root, "vlab scratch directory", _FIX))
    reap(root)
    pid = os.getpid()
    prefix = f"{pid}.{start_time(pid) or 0}.{safe_component(label, 20)}."
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))
