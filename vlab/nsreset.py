"""Putting a closed lab's switch namespace back as a fresh one is, and proving it (vlab.nspool).

One reset: the closed lab's taps and veth pairs that may stay are parked (vlab.nsspares),
every other link but ``lo`` and the bridge is deleted in one request, the spares are seated in
the bridge in order (most already are), the bridge is put back to a fresh default bridge (name,
MAC, every option, down, fdb flushed), and then the namespace, and each peer namespace that
stays with a pair, is compared with the snapshot of a freshly made one (vlab.nssnapshot). A
difference only a spare's leaving the bridge undoes (its port options, VLANs, static fdb
entries, permanent groups) has every spare leave and join again, and the check made again; any
other difference, any error, any doubt and the namespace is dropped.

It is plain data in, plain data out (:class:`Request`, :class:`Result`), over namespaces given
as fds, so that it can run in vlab's reset worker (vlab.nsresetd), a process of its own: most of
a reset is Python parsing netlink dumps, and in the lab's process it would hold the interpreter
lock while the next lab is being built. Where the worker cannot run, the lab's process runs the
same function itself.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
import time
from dataclasses import dataclass, field

from vlab import nsspares
from vlab.netns import NetNS
from vlab.nssnapshot import BRIDGE_INDEX, READ_ONLY_BRIDGE, differences, partial, snapshot
from vlab.rtnl import (
    IFINFO,
    IFLA_INFO_DATA,
    IFLA_INFO_KIND,
    IFLA_LINKINFO,
    IFLA_MTU,
    NLA_F_NESTED,
    LinkRequests,
    Rtnl,
    attr,
    attrs,
    ifinfo,
    link_attrs,
    nla,
)

SPARE_NAME = "vlab-spare"
SPARE_MAC = "02:00:00:5e:00:53"
IFLA_BR_FDB_FLUSH = 21
RTM_GETMDB = 86
MDBA_MDB = 1  # the nest of a bridge's groups: empty when it has none
MDB_DUMP = struct.pack("=BxxxI", 7, 0)  # struct br_port_msg: AF_BRIDGE, any bridge
MDB_EXPIRY = 0.05  # seconds a group whose last port left may take to go (a timer, next jiffy)


@dataclass(frozen=True)
class References:
    """What a fresh namespace looks like: the switch namespace (with a dormant bridge and one
    spare link of each kind; ``full``: the full snapshot, else what the cheap check compares),
    a peer namespace (with a spare pair's far end: what its cheap check compares), and the
    fresh bridge's options."""

    switch: dict[str, object]
    peer: dict[str, object]
    bridge_data: dict[int, bytes]
    full: bool = True


@dataclass
class Request:
    """One reset. ``keep``: the closed lab's taps fit for reuse, ``{ifindex: fd}``; ``taps``:
    spare taps from before, ``{name: ifindex}``; ``pairs``: spare pairs from before (their peer
    namespaces were checked then); ``parked``: the closed lab's pairs whose peer namespaces came
    along, each with that namespace's fd. The pool keeps spare links' packet sockets open
    (vlab.capture.recycled): ``held`` of them in the switch namespace, one in the peer of each
    port in ``peers_held``; the check does not count them. ``parked_counters``: the counters
    of the taps in ``keep`` that were spares, as they were when last parked (a tap whose queue
    took no frame since is not made anew). ``anew``: a port of the lab left the bridge and came
    back (or a building call was undone), so the order the ports joined in may not be the order
    of their numbers: every spare leaves and joins again."""

    touched: bool
    taps_max: int = nsspares.TAPS_MAX  # what the pool can still hold fds for
    taps: dict[str, int] = field(default_factory=dict)
    keep: dict[int, int] = field(default_factory=dict)
    pairs: list[nsspares.Pair] = field(default_factory=list)
    parked: list[tuple[nsspares.Pair, int]] = field(default_factory=list)
    held: int = 0  # packet sockets the pool keeps open in the switch namespace
    parked_counters: dict[int, bytes] = field(default_factory=dict)  # keep's, when last parked
    peers_held: list[str] = field(default_factory=list)  # ports whose parked peer has one
    anew: bool = False


@dataclass
class Result:
    """What stays: ``problems`` (the namespace is dropped if any), the spare taps and pairs
    kept (``pairs``: ports), the parked peers found fit (``peers``: ports), every spare
    link's counters so far (``counters`` by switch-side ifindex, ``far_counters`` by port), and
    the port number each spare holds in the dormant bridge (``seats``, as the check read it)."""

    problems: list[str] = field(default_factory=list)
    taps: dict[str, int] = field(default_factory=dict)
    pairs: list[str] = field(default_factory=list)
    peers: list[str] = field(default_factory=list)
    counters: dict[int, bytes] = field(default_factory=dict)
    far_counters: dict[str, bytes] = field(default_factory=dict)
    peer_problems: list[str] = field(default_factory=list)
    bridge_name: str = SPARE_NAME  # the dormant bridge's name
    seats: dict[int, int] = field(default_factory=dict)


class Target:
    """A namespace to reset or check, with a netlink socket of the resetter's own inside."""

    def __init__(self, ns: NetNS) -> None:
        self.ns = ns
        with ns.entered():
            self.rtnl = Rtnl()
        self.links = LinkRequests(self.rtnl)
        self.next_index = 2
        self.reserved: set[int] = set()
        self.counter_base: dict[int, bytes] = {}

    def index(self) -> int:
        self.next_index += 1
        return self.next_index - 1

    def close(self) -> None:
        self.rtnl.close()


def mtu_changed(events: socket.socket) -> bool:
    """Did the bridge ever have another MTU than 1500 since the last call (or were events lost)?

    Changing a bridge's MTU sets a flag (MTU set by user: it stops following its ports) that no
    dump shows; any MTU other than the default seen in a link event means doubt.
    """
    changed = False
    default = struct.pack("=I", 1500)
    while True:
        try:
            data = events.recv(1 << 16, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return changed
        except OSError:
            return True  # ENOBUFS: events were lost
        offset = 0
        while offset + 16 <= len(data):
            length, kind = struct.unpack_from("=IH", data, offset)
            body = data[offset + 16 : offset + length]
            offset += (length + 3) & ~3
            if kind != 16 or len(body) < IFINFO.size:  # RTM_NEWLINK
                continue
            if struct.unpack_from("=i", body, 4)[0] != BRIDGE_INDEX:
                continue
            mtu = attr(body, IFINFO.size, IFLA_MTU)  # early in the message: stop there
            if mtu is not None and mtu != default:
                changed = True


def _has_groups(rtnl: Rtnl) -> bool:
    """Whether the bridge has multicast groups (``bridge mdb show`` is not empty)."""
    return any(attrs(body, 8).get(MDBA_MDB) for body in rtnl.dump(RTM_GETMDB, MDB_DUMP))


def _await_mdb_expiry(rtnl: Rtnl) -> None:
    """Give the multicast groups whose last port just left the moment the kernel takes to
    delete them: a timer set to fire at once, which does nothing if the bridge is down by then,
    so the bridge stays up until they are gone (a group the bridge itself joined stays, and the
    check that follows sees it)."""
    deadline = time.monotonic() + MDB_EXPIRY
    while _has_groups(rtnl):
        if time.monotonic() > deadline:
            return
        time.sleep(0.002)


def _check_peer(
    ref: References, pair: nsspares.Pair, far: Target, held: int
) -> tuple[list[str], bytes]:
    """A parked peer namespace put back (its end of the pair parked) and checked; ``held``:
    packet sockets the pool keeps open there. The parking names the far end as it was (a
    gone one fails it, ENODEV) and the check compares it, kind included, with the reference."""
    try:
        nsspares.park_veth_end(far.rtnl, pair.far_index, pair.ifname)
    except OSError as exc:
        return [f"its end of the veth cannot be parked: {exc.strerror}"], b""
    counters: dict[int, bytes] = {}
    snap = snapshot(far, full=False, spares=[pair.far_index], counters=counters, held=held)
    return differences(partial(ref.peer), snap), counters.get(pair.far_index, b"")


def reset(
    ref: References,
    req: Request,
    switch: Target,
    events: socket.socket,
    peers: dict[str, Target],
    threads_of: int,
) -> Result:
    """Reset the switch namespace ``switch`` (``events``: its link events since it was made)
    and the parked peers (``peers`` by port); see the module doc. ``threads_of``: the lab's
    process, none of whose threads may still be inside."""
    out = Result()
    rtnl = switch.rtnl
    untouched = {i: req.parked_counters.get(i, b"") for i in req.keep}
    seats: dict[int, int] = {}
    kinds = nsspares.link_kinds(rtnl, untouched, seats)
    kept: dict[str, nsspares.Pair] = {}
    if not req.touched:
        # the peers first: a pair stays only if its far namespace is as a fresh one is
        fit: list[nsspares.Pair] = []
        for pair, _fd in req.parked:
            try:
                held = int(pair.port in req.peers_held)
                problems, far_counters = _check_peer(ref, pair, peers[pair.port], held)
            except Exception as exc:  # any surprise: that peer is dropped
                problems, far_counters = [f"reset failed: {exc}"], b""
            if problems:
                out.peer_problems.extend(f"{pair.node}: {p}" for p in problems)
            else:
                out.far_counters[pair.port] = far_counters
                fit.append(pair)
        taps = {n: i for n, i in req.taps.items() if kinds.get(i) == (n, b"tun")}
        taps = dict(list(taps.items())[: max(0, req.taps_max)])
        for index, fd in sorted(req.keep.items()):
            name, kind = kinds.get(index, ("", b""))
            if kind == b"tun" and name not in taps and len(taps) < req.taps_max:
                # and what its VM left unread dropped
                nsspares.park_tap(rtnl, index, name, fd, index in untouched)
                taps[name] = index
        for pair in [*req.pairs, *fit]:
            fits = kinds.get(pair.index) == (pair.port, b"veth") and pair.port not in kept
            if fits and len(kept) < nsspares.PAIRS_MAX:
                if pair in fit:
                    nsspares.park_veth_end(rtnl, pair.index, pair.port)
                kept[pair.port] = pair
        out.taps = taps
        out.pairs = list(kept)
        out.peers = [p.port for p in fit if p.port in kept]
    spares = [*out.taps.values(), *(p.index for p in kept.values())]
    nsspares.delete_links(rtnl, [i for i in kinds if i not in (1, BRIDGE_INDEX, *spares)])
    # a group the lab's ports joined stays on a port that stays (a permanent one even while the
    # port is down): with groups, the spares leave the bridge and join again, which ends them
    groups = _has_groups(rtnl)
    nsspares.seat_all(rtnl, spares, seats, req.anew or groups)
    if groups:
        _await_mdb_expiry(rtnl)
    current = rtnl.bridge_data(BRIDGE_INDEX)
    data = b"".join(
        nla(kind, value)
        for kind, value in sorted(ref.bridge_data.items())
        if kind not in READ_ONLY_BRIDGE and current.get(kind) != value
    )
    data += nla(IFLA_BR_FDB_FLUSH, b"")
    info = nla(IFLA_INFO_KIND, b"bridge\0") + nla(IFLA_INFO_DATA | NLA_F_NESTED, data)
    # the name the closed lab gave its bridge stays (the next lab most likely gives it the
    # same: no rename), unless the namespace gets a full check, whose sysctl paths name it
    now = kinds.get(BRIDGE_INDEX, ("", b""))[0]
    keep_name = now and not req.touched and now not in out.taps and now not in out.pairs
    name = now if keep_name else SPARE_NAME
    body = (
        ifinfo(BRIDGE_INDEX, up=False)
        + link_attrs(None if name == now else name, SPARE_MAC)
        + nla(IFLA_LINKINFO | NLA_F_NESTED, info)
    )
    rtnl.request(16, body)
    out.bridge_name = name
    # the lab's events and the reset's own (which leave the MTU alone: with only spares left,
    # each at 1500, a bridge whose MTU no one set is back at 1500)
    if mtu_changed(events):
        out.problems = ["the bridge's MTU changed during the lab"]
        return out
    counters: dict[int, bytes] = {}
    if req.touched:
        if not ref.full:  # the caller gives a touched namespace the full references
            out.problems = ["no full reference to check against"]
            return out
        snap = snapshot(switch, threads_of=threads_of, held=req.held)
        out.problems = differences(ref.switch, snap)
        return out
    out.problems = _check(ref, switch, spares, counters, seats, req.held)
    if out.problems and spares and set(out.problems) <= SEAT_UNDOES:
        # what the spares carry of the lab as ports goes with them when they leave the bridge
        nsspares.seat_all(rtnl, spares, seats, True)
        out.problems = _check(ref, switch, spares, counters, seats, req.held)
    if not out.problems:
        out.counters = {i: c for i, c in counters.items() if i in spares}
        out.seats = {i: n for i, n in seats.items() if i in spares}
    return out


# the sections in which a spare port's own state shows: its options and its link (spare links),
# its VLANs, its static fdb entries (its multicast groups: see above)
SEAT_UNDOES = frozenset({"spare links", "vlans", "fdb"})


def _check(
    ref: References,
    switch: Target,
    spares: list[int],
    counters: dict[int, bytes],
    seats: dict[int, int],
    held: int,
) -> list[str]:
    """The cheap check of a reset switch namespace; ``seats`` gets the spares' port numbers."""
    seats.clear()
    snap = snapshot(switch, full=False, spares=spares, counters=counters, held=held, seats=seats)
    return differences(partial(ref.switch), snap)


def run(
    ref: References, req: Request, ns_fd: int, events: socket.socket, threads_of: int
) -> Result:
    """:func:`reset` over namespaces given as fds (the caller keeps its fds)."""
    targets: list[Target] = []
    try:
        switch = Target(NetNS("switch", ns_fd))
        targets.append(switch)
        peers = {}
        for pair, fd in req.parked:
            peer = Target(NetNS(pair.node, fd))
            targets.append(peer)
            peers[pair.port] = peer
        return reset(ref, req, switch, events, peers, threads_of)
    except OSError as exc:
        if exc.errno == errno.EMFILE:
            raise
        return Result(problems=[f"reset failed: {exc}"])
    finally:
        for target in targets:
            with contextlib.suppress(OSError):
                target.close()
