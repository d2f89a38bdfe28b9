"""One lab's liveness and lock, shared by every object the lab hands out.

After ``lab.close()`` the lab's fds are closed and their numbers free for the next lab to reuse:
a bridge, port or endpoint that went on using them would send into, or read from, a different
lab. So every public method of those objects goes through :func:`guarded`, which refuses use
after close with a :class:`~vlab.errors.LabError`, and holds the lab's lock while it runs, which
makes a lab safe to drive from several threads (netlink replies, counters and the registry are
never interleaved). Waits for frames (``expect``) take the lock only between waits, so one thread
can wait while another sends.

The guard is also where a reused switch namespace's seated spares leave the bridge
(vlab.nsspares): the first call that is not a building call (or made by one) runs
:attr:`LabGuard.settle` before anything else, in :meth:`LabGuard.check`.
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
        # run once, before the first call that is not building (set by the lab: see vlab.nsspares)
        self.settle: Callable[[], None] | None = None
        self.building = 0  # building calls in progress (their inner calls do not settle)

    def check(self) -> None:
        """Refuse a closed lab; outside a building call, settle first (see :attr:`settle`)."""
        if self.closed:
            raise LabError(
                f"lab {self.name!r} is closed; its bridges, ports and endpoints cannot be used "
                "after lab.close(): build a new Lab()"
            )
        if self.settle is not None and not self.building:
            settle, self.settle = self.settle, None
            settle()


class _Guarded(Protocol):
    @property
    def _guard(self) -> LabGuard: ...


def guarded(method: F) -> F:
    """Run ``method`` under its lab's lock, refusing a closed lab; fd exhaustion as LabError."""
    return _wrap(method, building=False)


def building(method: F) -> F:
    """:func:`guarded` for the building calls that may take a seated spare where it sits
    (``bridge``, ``vm``, ``host``, ``uplink``): they settle themselves when they build
    anything else (``Switch.release_spares``), and the calls they make do not."""
    return _wrap(method, building=True)


def _wrap(method: F, building: bool) -> F:
    @functools.wraps(method)
    def wrapper(self: _Guarded, *args: Any, **kwargs: Any) -> Any:
        guard = self._guard
        with guard.lock:
            guard.building += building
            try:
                guard.check()
                return method(self, *args, **kwargs)
            except OSError as exc:
                problem = limits.fd_limit_error(exc, method.__qualname__)
                if problem is None:
                    raise
                raise problem from None
            finally:
                guard.building -= building

    return wrapper  # type: ignore[return-value]
