"""Closing sockets off the critical path.

Closing an AF_PACKET socket waits for an RCU grace period (~12 ms each); a lab with a dozen
endpoints would spend most of its teardown there. A daemon thread does it instead; if the process
exits first, the kernel closes them anyway.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
from collections.abc import Iterable

_queue: queue.SimpleQueue[socket.socket | None] = queue.SimpleQueue()
_thread: threading.Thread | None = None
_lock = threading.Lock()


def _run() -> None:
    while True:
        sock = _queue.get()
        if sock is None:
            return
        with contextlib.suppress(OSError):
            sock.close()


def reap(sockets: Iterable[socket.socket]) -> None:
    global _thread
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="vlab-reaper", daemon=True)
            _thread.start()
    for sock in sockets:
        _queue.put(sock)


def drain() -> None:
    """Wait until every socket handed over so far is closed (for leak checks in tests)."""
    done = threading.Event()

    class _Marker(socket.socket):
        pass

    # A sentinel that sets the event when the reaper reaches it.
    marker = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    original_close = marker.close

    def close_and_signal() -> None:
        original_close()
        done.set()

    marker.close = close_and_signal  # type: ignore[method-assign]
    reap([marker])
    done.wait(5)
