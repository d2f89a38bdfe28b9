"""Ctrl-C held back while a lab lets go of its namespaces.

A lab's last step closes the fds that keep its namespaces alive. A KeyboardInterrupt landing in
the middle of that loop would skip the fds after it: the namespaces would then live on in the
process (a test run that goes on after the interrupt, or a pytest reporting it, still holds
them). Python runs signal handlers in the main thread only, between bytecodes, so blocking
SIGINT for that thread during the loop is enough: the kernel keeps the signal pending and
Python raises the KeyboardInterrupt the moment the loop is done.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Run the block with SIGINT blocked in the main thread (a no-op in other threads, where
    Python never raises it); a SIGINT sent meanwhile is delivered when the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
