"""Ctrl-C held back while a lab lets go of its namespaces.

A lab's last step closes the fds that keep its namespaces alive. A KeyboardInterrupt landing in
the middle of that loop would skip the fds after it: the namespaces would then live on in the
process (a test run that goes on after the interrupt, or a pytest reporting it, still holds
them). Python raises KeyboardInterrupt from its SIGINT handler, which runs in the main thread
between bytecodes. Blocking SIGINT for the main thread is not enough once vlab has other
threads (the reaper's, the pool's): the kernel then delivers the signal to one of those, and
Python still runs its handler in the main thread at once. So for the length of the block the
Python-level handler is one that only notes the signal; the original handler runs (and raises)
when the block ends.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Run the block with Ctrl-C noted but not acted on (a no-op in other threads, where Python
    never raises it); a SIGINT that came meanwhile is handled as it would have been, at the end."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[FrameType | None] = []

    def note(_signum: int, frame: FrameType | None) -> None:
        caught.append(frame)

    try:
        old = signal.signal(signal.SIGINT, note)
    except ValueError:  # not the main interpreter's main thread after all
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if caught and callable(old):
            old(signal.SIGINT, caught[0])  # Python's default raises KeyboardInterrupt here
