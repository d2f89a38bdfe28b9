"""Links a pooled namespace keeps for the next lab: spare taps and spare veth pairs.

Creating a link and destroying it is most of what a small lab costs once its namespaces are
reused (vlab.nspool): a tap costs ~0.15 ms to create and its unregister, when it goes, waits for
RCU under rtnl; a veth into another namespace ~0.8 ms, and that namespace ~1 ms more, plus the
kernel's cleanup after it. So when a lab closes, the links only vlab ever handled stay where they
are, *with the names they had*: a VM's tap ``vnet0``, an uplink's veth ``eth0`` with its far end
``eth0`` in the ``upstream`` namespace (which stays too). They are put back in one known state
(down, default MTU, and *seated*: still ports of the dormant bridge, numbered 1, 2, ... in the
order they joined it) and checked against a reference spare made fresh in that state
(vlab.nssnapshot: port options, VLANs and fdb entries included). A spare keeps the MAC its lab
gave it: the lab that takes it gives it its own in the request that attaches it, and until then
no one sees it, so the check leaves a spare's MAC out (a MAC change runs the netdev notifier
chain under rtnl: ~30 us a link).

A lab of the same shape (the usual case in a suite: port names are counters) then attaches to
``vnet0`` instead of creating it, and brings ``eth0`` up instead of cabling a veth: one request
each, and none of them a bridge join. Joining a bridge and leaving it is most of what is left of
a reused lab's cost (~0.15 ms a port in the kernel each way: sysfs files, an RCU wait on
leaving), so a seated spare is taken where it sits when it holds the number a fresh port would
get (the k-th port the lab attaches is port k) and the lab asks for no MTU of its own. Any other
building, and the first call that is not building (a frame, a look, a setting), first takes the
seated spares nobody took out of the bridge (``Spares.release`` in vlab.nspool): until then they
are disabled ports nothing can reach; after it the bridge holds the lab's ports only, numbered
as a fresh bridge would have numbered them. Renaming a spare would cost more than creating a
link (~0.2 ms: sysfs renames), so a spare is only ever taken by the name it has.

Only links nothing but vlab touched are kept: the taps of emulated VMs (a QEMU guest's tap fd
was another program's), and veths whose far namespace held that one link and was never handed
to a test or a program. Until a lab takes them, spares are invisible to it: a test that looks
into the switch namespace (``lab.run("switch", ...)``, ``lab.namespaces()``) has them deleted
first, in one request. What a reused link cannot hide is the same as for the bridge: the kernel's
counters and ifindex; vlab reports a reused link's counters from the moment the lab took it
(:mod:`vlab.stats`), and never depends on ifindex numbers.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from vlab import tap as taplib
from vlab.nssnapshot import BRIDGE_INDEX, Space, port_number
from vlab.rtnl import (
    IFINFO,
    IFLA_INFO_KIND,
    IFLA_LINKINFO,
    Rtnl,
    attrs,
    ifinfo,
    link_attrs,
    nla,
    pick,
    set_noqueue,
)

VETH_MAC = "02:00:00:5e:00:55"  # the reference pair's ends' (a spare keeps its lab's MAC)
TAPS_MAX = 64  # spare taps a pooled namespace keeps
PAIRS_MAX = 16  # spare veth pairs (each with its far namespace) a pooled namespace keeps
PORT_GROUP = 0x7653  # links in this group are deleted in one request
RTM_NEWLINK = 16
RTM_DELLINK = 17
IFLA_MASTER = 10
IFLA_GROUP = 27
_DORMANT = struct.pack("=I", BRIDGE_INDEX)  # IFLA_MASTER of a port of the dormant bridge
IFLA_TXQLEN = 13
IFLA_STATS64 = 23
# what link_kinds reads of a link: name, master, txqlen, stats64, linkinfo
_KINDS_READ = frozenset({3, IFLA_MASTER, IFLA_TXQLEN, IFLA_STATS64, IFLA_LINKINFO})
_TX_COUNTS = struct.Struct("=8xQ40xQ")  # rtnl_link_stats64: tx_packets, tx_dropped
VETH_DEFAULT_TXQLEN = 1000


@dataclass(frozen=True)
class Pair:
    """A veth a lab cabled from its switch namespace (``index``, named ``port``) to a peer
    namespace (``node``: the upstream, a host), where its far end is ``ifname``/``far_index``."""

    port: str
    index: int
    node: str
    ifname: str
    far_index: int


def link_kinds(
    rtnl: Rtnl, untouched: dict[int, bytes] | None = None, seats: dict[int, int] | None = None
) -> dict[int, tuple[str, bytes]]:
    """``{ifindex: (name, link kind)}`` of every link in the namespace (kind b"" for lo).

    ``untouched``: taps by ifindex, each with its counters when it was last parked (b"": a new
    tap's zeros); those whose queue nothing used since are left in it (see :func:`park_tap`).
    ``seats`` gets the port number of each port of the dormant bridge.
    """
    out = {}
    for body in rtnl.dump(18, IFINFO.pack(0, 0, 0, 0, 0)):
        index = struct.unpack_from("=i", body, 4)[0]
        top = pick(body, IFINFO.size, _KINDS_READ)
        info = attrs(top.get(IFLA_LINKINFO, b""))
        name = top.get(3, b"").rstrip(b"\0").decode(errors="replace")
        out[index] = (name, info.get(IFLA_INFO_KIND, b"").rstrip(b"\0"))
        if seats is not None and top.get(IFLA_MASTER) == _DORMANT:
            number = port_number(info)
            if number is not None:
                seats[index] = number
        if untouched is not None and index in untouched:
            txqlen = top.get(IFLA_TXQLEN, b"")
            if txqlen != struct.pack("=I", taplib.TXQLEN) or _queued(
                top.get(IFLA_STATS64, b""), untouched[index]
            ):
                del untouched[index]
    return out


def _queued(now: bytes, then: bytes) -> bool:
    """Whether a tap queued frames between two counter readings (rtnl_link_stats64): every
    frame its queue took was either read from it (tx_packets) or refused (tx_dropped)."""
    then = then or bytes(64)
    if len(now) < 64 or len(then) < 64:
        return True
    return _TX_COUNTS.unpack_from(now) != _TX_COUNTS.unpack_from(then)


def seat_all(rtnl: Rtnl, spares: Iterable[int], seats: dict[int, int], anew: bool) -> None:
    """Seat every spare in the dormant bridge, numbered 1, 2, ... in the order they join it.

    ``seats``: the port numbers they hold now (those not in it are in no bridge). Spares holding
    1..k already stay where they are (a lab that took them in that order never made the bridge
    join them in another, unless ``anew``: a port of the lab left and came back); the others
    leave it and join again, in the order they joined it before, so they get k+1, k+2, ... (the
    kernel gives a joining port the lowest number free) with the bridge's list of ports in the
    order of their numbers, as a fresh bridge's would be."""
    spares = list(spares)
    numbers = sorted(seats[i] for i in spares if i in seats)
    held = 0
    while not anew and held < len(numbers) and numbers[held] == held + 1:
        held += 1
    moving = sorted(
        (i for i in spares if not 0 < seats.get(i, 0) <= held),
        key=lambda i: (seats.get(i, 1 << 16), i),
    )
    for index in moving:
        if index in seats:
            set_master(rtnl, index, 0)
    for index in moving:
        set_master(rtnl, index, BRIDGE_INDEX)


def set_master(rtnl: Rtnl, index: int, master: int) -> None:
    rtnl.request(RTM_NEWLINK, IFINFO.pack(0, 0, index, 0, 0) + link_attrs(master=master))


def delete_links(rtnl: Rtnl, indexes: Iterable[int]) -> None:
    """Delete links in one request: grouped first, then the group deleted, so the kernel
    unregisters them together (one RCU wait for all, not one each)."""
    grouped = 0
    for index in indexes:
        try:
            rtnl.request(
                RTM_NEWLINK,
                IFINFO.pack(0, 0, index, 0, 0) + nla(IFLA_GROUP, struct.pack("=I", PORT_GROUP)),
            )
            grouped += 1
        except OSError as exc:
            # a veth goes with its peer: the kernel may be deleting it with the far namespace
            if exc.errno != errno.ENODEV:
                raise
    if grouped:
        try:
            rtnl.request(
                RTM_DELLINK,
                IFINFO.pack(0, 0, 0, 0, 0) + nla(IFLA_GROUP, struct.pack("=I", PORT_GROUP)),
            )
        except OSError as exc:
            if exc.errno != errno.ENODEV:  # the group emptied itself meanwhile
                raise


def park_tap(
    rtnl: Rtnl, index: int, name: str, fd: int | None = None, untouched: bool = False
) -> int:
    """A closed lab's tap back to the spare state: down (where it sits: :func:`seat_all`), its
    queue emptied (``fd``: the fd the pool keeps on it) and made anew. Returns how many frames
    were dropped.

    The queue is a ring whose consumer frees slots in batches: after a VM read part of a batch,
    a few slots stay taken, and a tap reused as it is would hold up to 15 frames fewer than a
    fresh one before it drops (4088 instead of 4096). Changing the queue length makes the kernel
    build the ring again; changing it back leaves a ring like a new tap's. A queue that took no
    frame since it was last made (``untouched``, from the counters: :func:`link_kinds`) and
    holds none is as new already: one request instead of two, and no ring to allocate.
    """
    rebuild = None if untouched else taplib.TXQLEN - 1
    rtnl.request(RTM_NEWLINK, ifinfo(index, up=False) + link_attrs(name, None, 1500, None, rebuild))
    dropped = drain_tap(fd) if fd is not None else 0
    if untouched and not dropped:
        return 0
    if rebuild is None:
        set_txqlen(rtnl, index, taplib.TXQLEN - 1)
    set_txqlen(rtnl, index, taplib.TXQLEN)
    return dropped


def set_txqlen(rtnl: Rtnl, index: int, txqlen: int) -> None:
    rtnl.request(RTM_NEWLINK, IFINFO.pack(0, 0, index, 0, 0) + link_attrs(txqlen=txqlen))


def park_veth_end(rtnl: Rtnl, index: int, name: str) -> None:
    """One end of a closed lab's veth back to the spare state (the near end's seat: see
    :func:`seat_all`)."""
    rtnl.request(
        RTM_NEWLINK,
        ifinfo(index, up=False) + link_attrs(name, None, 1500, None, VETH_DEFAULT_TXQLEN),
    )


def drain_tap(fd: int) -> int:
    """Read and drop what a tap queued for its VM (a parked tap is down: nothing more comes)."""
    dropped = 0
    while True:
        try:
            os.read(fd, 65536)
        except (BlockingIOError, OSError):
            return dropped
        dropped += 1


def reference_tap(space: Space, name: str, master: int) -> tuple[int, int]:
    """A tap made the way a VM's is (in bridge ``master``, the dormant one), then parked: the
    state every spare tap must be in. Returns ``(ifindex, fd)``."""
    with space.ns.entered():
        fd = taplib.open_tap(name)
    try:
        index = space.links.index_of(name)
        set_noqueue(space.rtnl, index)
        space.links.set_link(index, mtu=1500, txqlen=taplib.TXQLEN, master=master)
        park_tap(space.rtnl, index, name, fd)
    except BaseException:
        taplib.release_tap(fd)
        raise
    return index, fd


def reference_pair(space: Space, far: Space, port: str, ifname: str, master: int) -> Pair:
    """A veth made the way an uplink's is (near end in bridge ``master``), then parked at both
    ends: the state every spare pair must be in."""
    index = space.index()
    far_index = far.index()
    space.links.add_veth(port, index, VETH_MAC, master, ifname, VETH_MAC, far.ns.fd, far_index)
    far.links.set_link(far_index)
    park_veth_end(space.rtnl, index, port)
    park_veth_end(far.rtnl, far_index, ifname)
    return Pair(port, index, far.ns.name, ifname, far_index)
