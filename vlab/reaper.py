"""Closing sockets off the critical path.

Closing an AF_PACKET socket waits for an RCU grace period (~12 ms each); a lab with a dozen
endpoints would spend most of its teardown there. Daemon threads do it instead; if the process
exits first, the kernel closes them anyway.

Several threads close at once: each close waits for *a* grace period, and closes waiting at the
same time share one, so a lab's sockets are gone after about one grace period rather than one
per socket. One thread per socket would be ~12 ms a socket again for the namespaces they hold
(which, until the last socket goes, stay alive: the pool of switch namespaces waits for them).
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
from collections.abc import Iterable

THREADS = 8  # closes waiting together; beyond a lab's sockets more would only sit idle


class Batch:
    """Sockets handed over together: :meth:`wait` returns once every one of them is closed
    (a pooled namespace is reset as soon as its own lab's sockets are gone, not everyone's)."""

    def __init__(self, count: int) -> None:
        self.left = count
        self.done = threading.Event()
        if count == 0:
            self.done.set()

    def closed_one(self) -> None:
        with _lock:
            self.left -= 1
            if self.left == 0:
                self.done.set()

    def wait(self, timeout: float = 5.0) -> bool:
        return self.done.wait(timeout)


_queue: queue.SimpleQueue[tuple[socket.socket, Batch]] = queue.SimpleQueue()
_threads: list[threading.Thread] = []
_lock = threading.Lock()
_idle = threading.Condition(_lock)
_pending = 0  # handed over and not closed yet


def _run() -> None:
    global _pending
    while True:
        item, batch = _queue.get()
        with contextlib.suppress(OSError):
            item.close()
        batch.closed_one()
        with _idle:
            _pending -= 1
            if _pending == 0:
                _idle.notify_all()


def _ensure_threads() -> None:
    with _lock:
        _threads[:] = [t for t in _threads if t.is_alive()]
        while len(_threads) < THREADS:
            thread = threading.Thread(target=_run, name="vlab-reaper", daemon=True)
            thread.start()
            _threads.append(thread)


def reap(sockets: Iterable[socket.socket]) -> Batch:
    """Hand sockets over to be closed in the background; the batch tells when they are."""
    global _pending
    _ensure_threads()
    items = list(sockets)
    batch = Batch(len(items))
    for sock in items:
        with _lock:
            _pending += 1
        _queue.put((sock, batch))
    return batch


def drain(timeout: float = 5.0) -> bool:
    """Wait until every socket handed over so far is closed (leak checks need this)."""
    with _idle:
        return _idle.wait_for(lambda: _pending == 0, timeout)
