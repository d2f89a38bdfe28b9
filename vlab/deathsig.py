"""Children that die with their parent: the kernel's PR_SET_PDEATHSIG, set in the child.

QEMU, virtiofsd and the guest-kernel launcher must not outlive the process (or thread) that
started them, SIGKILL of it included: only the kernel can promise that, by signalling the child
when its parent thread exits.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent() -> None:
    """Ask for SIGKILL when this process's parent thread exits."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def child_setup(parent: int) -> Callable[[], None]:
    """A ``preexec_fn``: die with the forking thread; bail out if it already died (the race
    between fork and prctl, seen as a changed parent pid)."""

    def setup() -> None:
        die_with_parent()
        if os.getppid() != parent:
            os._exit(1)

    return setup
