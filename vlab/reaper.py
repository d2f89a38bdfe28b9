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

_queue: queue.SimpleQueue[socket.socket | threading.Event] = queue.SimpleQueue()
_thread: threading.Thread | None = None
_lock = threading.Lock()


def _run() -> None:
    while True:
        item = _queue.get()
        if isinstance(item, threading.Event):
            item.set()
            continue
        with contextlib.suppress(OSError):
            item.close()


def _ensure_thread() -> None:
    global _thread
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="vlab-reaper", daemon=True)
            _thread.start()


def reap(sockets: Iterable[socket.socket]) -> None:
    """Hand sockets over to be closed in the background, in order."""
    _ensure_thread()
    for sock in sockets:
        _queue.put(sock)


def drain(timeout: float = 5.0) -> bool:
    """Wait until every socket handed over so far is closed (leak checks need this)."""
    _ensure_thread()
    done = threading.Event()
    _queue.put(done)
    return done.wait(timeout)
