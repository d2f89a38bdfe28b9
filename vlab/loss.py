"""Frames lost at the lab's edges: counted from the kernel, never passed over in silence.

A verdict about an endpoint is only as good as its capture. Under a flood the kernel drops what
vlab has not read yet — a tap's queue holds ``txqlen`` frames, a packet socket its receive
buffer — and a negative check that passed after such a drop would be a lie. So every place a
frame can be lost on its way into or out of vlab is read back from the kernel's own counters:

    socket   PACKET_STATISTICS drops of the packet socket an endpoint's frames are read from (a
             host's or uplink's far end; the VM's tap, watched from the switch namespace)
    port     tx_dropped of the endpoint's bridge port, in the switch namespace: a tap whose
             queue was full (the VM had not read), a veth whose peer's backlog was full
    sent     frames a host or uplink sent that never reached the bridge: tx_dropped of its own
             veth (the bridge side's input backlog was full). A VM's tap has no such queue: a
             write hands the frame to the bridge synchronously (and the tap's rx_dropped counts
             frames nobody wanted, such as link-local frames the bridge passes up, not losses)
    store    frames beyond vlab's own per-endpoint bound (:data:`PENDING_MAX`)

A loss is sticky: every later ``settle``/``expect_none``/``frames``/``lab.expect`` fails with the
counts until the test calls ``clear()`` on that endpoint (which means "forget what arrived, and
what was lost, so far"). ``expect`` fails too when its endpoint's socket or store lost frames
or its tap may have overflowed since the last read (what it can know without a netlink round
trip); a timed-out ``expect`` names every loss at its endpoint.

Why count rather than keep everything with a background drainer thread: a lab is
single-threaded, and a drainer would put a lock and a thread handoff on every send/expect (the
path whose cost is measured in tenths of a millisecond) and race the quiescence reasoning of
:mod:`vlab.quiesce`. Counting is exact, costs a few lookups per check, and a test that reads
during its flood (``frames()``/``expect()`` between batches) keeps every frame anyway;
``python -m benchmarks`` measures the frames/s that are kept so, with nothing lost.
"""

from __future__ import annotations

import struct
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vlab.rtnl import link_stats64

if TYPE_CHECKING:
    from vlab.endpoints import Endpoint
    from vlab.lab import Lab
    from vlab.quiesce import QdiscWatch
    from vlab.switch import Namespace

PENDING_MAX = 200_000  # frames one endpoint holds unconsumed; past it they are counted as lost
_TX_DROPPED = 56  # offset in struct rtnl_link_stats64
_U64 = struct.Struct("=Q")


class Ledger:
    """One endpoint's loss bookkeeping: frames past its store's bound, and the counter values
    ``clear()`` forgave (losses are counted from there)."""

    def __init__(self) -> None:
        """Nothing lost, nothing forgiven: the baseline is taken when the lab is ready."""
        self.overflow = 0  # frames past PENDING_MAX, counted as lost
        self.base: dict[str, int] = {}


class FramesLost(AssertionError):
    """The kernel (or vlab's bound) dropped frames at an endpoint: no verdict there is sound."""


@dataclass(frozen=True)
class Loss:
    """``count`` frames lost at one capture point of one endpoint, and what to do about it."""

    endpoint: str
    kind: str  # socket, port, sent, store
    count: int
    where: str
    counter: str
    hint: str

    def __str__(self) -> str:
        return f"{self.endpoint}: {self.count} frame(s) lost at {self.where} ({self.counter})"


def _port_index(ep: Endpoint) -> int:
    """The bridge-side link of ``ep``: its port, or the bridge device for ``br.local``."""
    return ep.loss_link()


def _counter(space: Namespace, index: int, offset: int, fresh: bool) -> int:
    if index == 0:  # no such link (see Endpoint.loss_link)
        return 0
    row = link_stats64(space.rtnl, index) if fresh else space.watch.last.get(index)
    if row is None or len(row) < offset + 8:
        return 0
    return int(struct.unpack_from("=Q", row, offset)[0])


def measure(ep: Endpoint, links: bool, fresh: bool) -> dict[str, int]:
    """Current totals of every loss counter of ``ep`` (link counters only with ``links``).

    ``fresh`` reads link counters now; otherwise from the dump the last ``settle`` made.
    """
    out = {"store": ep.ledger.overflow}
    drops = getattr(ep.io, "kernel_drops", None)
    if drops is not None:
        out["socket"] = drops()
    if links:
        index = _port_index(ep)
        out["port"] = _counter(ep.switch.space, index, _TX_DROPPED, fresh)
        nic = ep.nic()  # a tap hands a VM's frames to the bridge synchronously: no queue
        if nic is not None:
            out["sent"] = _counter(nic[0], nic[1], _TX_DROPPED, fresh)
    return out


def _describe(ep: Endpoint, kind: str, count: int) -> Loss:
    port, br = ep.port, ep.bridge.name if ep.bridge is not None else "no bridge"
    ifname = getattr(ep, "ifname", port)
    drain = "read it during the flood (expect()/frames() between batches), or send in batches"
    if kind == "socket":
        where = f"{ep.name}'s packet socket on {ifname}"
        counter = "PACKET_STATISTICS drops: its receive buffer was full"
        hint = drain
    elif kind == "port" and ep.tap:
        txqlen = getattr(ep.io, "txqlen", 0) or "txqlen"
        where = f"tap {port} on {br}"
        counter = f"tx_dropped of {port} in the switch namespace: its queue of {txqlen} was full"
        hint = (
            f"{drain}; or give the tap a longer queue: "
            f"lab.run('switch', 'ip', 'link', 'set', '{port}', 'txqueuelen', '65536')"
        )
    elif kind == "port" and ep.bridge is None:
        where = f"{port} in the switch namespace, the cable to {ep.name}"
        counter = f"tx_dropped of {port}: the input backlog was full"
        hint = f"{drain}; or raise net.core.netdev_max_backlog"
    elif kind == "port":
        where = f"port {port} on {br}, the cable to {ep.name}"
        counter = f"tx_dropped of {port} in the switch namespace: the input backlog was full"
        hint = f"{drain}; or raise net.core.netdev_max_backlog"
    elif kind == "sent":
        where = f"{ep.name}'s {ifname}"
        counter = f"tx_dropped of {ifname}: frames it sent never reached the bridge"
        hint = "send fewer frames at once (the kernel's input backlog was full)"
    else:
        where = f"vlab's store for {ep.name}"
        counter = f"more than {PENDING_MAX} frames received and not consumed"
        hint = "consume frames during the flood (frames(), expect(), clear())"
    return Loss(ep.name, kind, count, where, counter, hint)


def losses(ep: Endpoint, links: bool = True, fresh: bool = False) -> list[Loss]:
    """Losses at ``ep`` not yet forgiven by ``clear()``."""
    now = measure(ep, links, fresh)
    base = ep.ledger.base
    return [_describe(ep, k, v - base.get(k, 0)) for k, v in now.items() if v > base.get(k, 0)]


def quick(ep: Endpoint) -> list[Loss]:
    """The checks cheap enough for every ``expect``: socket and store, the tap when it may
    have overflowed (a read found its queue full)."""
    io, base = ep.io, ep.ledger.base
    maybe = getattr(io, "maybe_dropped", False)
    if not maybe and ep.ledger.overflow <= base.get("store", 0):
        drops = getattr(io, "kernel_drops", None)
        if drops is None or drops() <= base.get("socket", 0):
            return []  # the common case, in a getsockopt
    found = losses(ep, links=maybe, fresh=True)
    if maybe and not found:
        ep.io.maybe_dropped = False  # type: ignore[attr-defined]
    return found


def forgive(ep: Endpoint) -> None:
    """``clear()``: what was lost so far no longer fails assertions."""
    ep.ledger.base.update(measure(ep, links=True, fresh=True))
    resync = getattr(ep.io, "resync", None)
    if resync is not None:
        resync()


def baseline(lab: Lab) -> None:
    """Start counting at an endpoint once its links are up: what the kernel dropped before
    (its own chatter on a link whose peer was not up yet, with ``quiet=False``) was never a
    frame of the test's — vlab's sends wait for the lab to be ready. One counter dump per
    namespace, however many endpoints are new."""
    dumps: dict[int, dict[int, bytes]] = {}

    def row(space: Namespace, index: int) -> int:
        if id(space) not in dumps:
            dumps[id(space)] = dict(space.rtnl.link_counters())
        raw = dumps[id(space)].get(index, b"")
        return int(_U64.unpack_from(raw, _TX_DROPPED)[0]) if len(raw) >= 64 else 0

    for ep in lab.endpoints.values():
        if ep.ledger.base:
            continue
        base = {"store": 0, "port": row(ep.switch.space, _port_index(ep))}
        nic = ep.nic()
        if nic is not None:
            base["sent"] = row(*nic)
        ep.ledger.base.update(base)


class _Probe:
    """Where one endpoint's losses are read, looked up once per topology, not per check."""

    __slots__ = ("drops", "ep", "far", "far_index", "port_index", "switch")

    def __init__(self, ep: Endpoint) -> None:
        self.ep = ep
        self.drops: Callable[[], int] | None = getattr(ep.io, "kernel_drops", None)
        self.port_index = _port_index(ep)
        self.switch = ep.switch.watch
        nic = ep.nic()
        self.far: QdiscWatch | None = nic[0].watch if nic is not None else None
        self.far_index: int = nic[1] if nic is not None else 0

    def suspect(self) -> bool:
        ep, base = self.ep, self.ep.ledger.base
        switch = self.switch.last
        if ep.ledger.overflow > base.get("store", 0):
            return True
        if self.drops is not None and self.drops() > base.get("socket", 0):
            return True
        row = switch.get(self.port_index)
        if row is not None and _U64.unpack_from(row, _TX_DROPPED)[0] > base.get("port", 0):
            return True
        row = self.far.last.get(self.far_index) if self.far is not None else None
        return row is not None and _U64.unpack_from(row, _TX_DROPPED)[0] > base.get("sent", 0)


_probes: weakref.WeakKeyDictionary[Lab, tuple[list[object], list[_Probe]]] = (
    weakref.WeakKeyDictionary()
)


def _suspects(lab: Lab) -> list[Endpoint]:
    """Endpoints that could have lost anything: the fast test behind every settle, read from
    the counters the settle just dumped (a few lookups per endpoint when nothing was lost)."""
    key: list[object] = [ep.io for ep in lab.endpoints.values()]
    cached = _probes.get(lab)
    if cached is None or cached[0] != key:
        cached = (key, [_Probe(ep) for ep in lab.endpoints.values()])
        _probes[lab] = cached
    return [probe.ep for probe in cached[1] if probe.suspect()]


def lab_losses(lab: Lab, fresh: bool = False) -> list[Loss]:
    """Losses at every endpoint of the lab (after a settle, from its last counter dump)."""
    endpoints = list(lab.endpoints.values()) if fresh else _suspects(lab)
    return [loss for ep in endpoints for loss in losses(ep, True, fresh)]
