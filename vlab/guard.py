"""One lab's liveness and lock, shared by every object the lab hands out.

After ``lab.close()`` the lab's fds are closed and their numbers free for the next lab to reuse:
a bridge, port or endpoint that went on using them would send into, or read from, a different
lab. So every public method of those objects goes through :func:`guarded`, which refuses use
after close with a :class:`~vlab.errors.LabError`, and holds the lab's lock while it runs, which
makes a lab safe to drive from several threads (netlink replies, counters and the registry are
never interleaved). Waits for frames (``expect``) take the lock only between waits, so one thread
can wait while another sends.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from vlab import limits
from vlab.errors import LabError

F = TypeVar("F", bound=Callable[..., Any])


class LabGuard:
    """Closed-or-open state and the lock of one lab."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.RLock()
        self.closed = False

    def check(self) -> None:
        if self.closed:
            raise LabError(
                f"lab {self.name!r} is closed; its bridges, ports and endpoints cannot be used "
                "after lab.close(): build a new Lab()"
            )


class _Guarded(Protocol):
    @property
    def _guard(self) -> LabGuard: ...


def guarded(method: F) -> F:
    """Run ``method`` under its lab's lock, refusing a closed lab; fd exhaustion as LabError."""

    @functools.wraps(method)
    def wrapper(self: _Guarded, *args: Any, **kwargs: Any) -> Any:
        guard = self._guard
        with guard.lock:
            guard.check()
            try:
                return method(self, *args, **kwargs)
            except OSError as exc:
                problem = limits.fd_limit_error(exc, method.__qualname__)
                if problem is None:
                    raise
                raise problem from None

    return wrapper  # type: ignore[return-value]
