"""What a test could tell apart in a namespace, as comparable values (for vlab.nspool).

A reused namespace must be indistinguishable from a fresh one. :func:`snapshot` reads
everything a test could observe — links and their attributes, VLANs, addresses, routes, rules,
neighbours, fdb, mdb, nexthops, qdiscs, sockets, and (in full) sysctls, nftables and xtables
tables and the processes inside — and :func:`differences` names the sections in which a reset
namespace differs from the snapshot of a freshly made one.

Links kept for reuse (spare links: see vlab.nspool) are set apart: what the dumps say of each,
without its ifindex, name or peer, must be what they say of the reference spare of its kind.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
from collections.abc import Container, Iterable
from typing import Protocol

from vlab.netns import NetNS
from vlab.rtnl import (
    IFINFO,
    IFLA_ADDRESS,
    IFLA_IFNAME,
    IFLA_INFO_DATA,
    IFLA_INFO_KIND,
    IFLA_LINKINFO,
    IFLA_MASTER,
    LinkRequests,
    Rtnl,
    attrs,
    nla,
)

RTM_GETADDR = 22
RTM_GETROUTE = 26
RTM_GETNEIGH = 30
RTM_GETRULE = 34
RTM_GETQDISC = 38
RTM_GETMDB = 86
RTM_GETNEXTHOP = 106
IFLA_LINK = 5
IFLA_STATS64 = 23
IFLA_LINK_NETNSID = 37

# top-level link attributes that change by themselves or are read elsewhere (AF_SPEC: sysctls):
# stats, stats64, af_spec, carrier counts, and IFLA_TSO_MAX_SIZE (read-only; a bridge that once
# had ports keeps the no-port value 524280 where a new one says 65536, until a port joins and the
# kernel recomputes it from the ports)
VOLATILE_LINK = {7, 23, 26, 35, 47, 48, 59, IFLA_LINKINFO}
# bridge attributes that tick or are padding: hello/tcn/topology-change/gc timers, pad
VOLATILE_BRIDGE = {16, 17, 18, 19, 40}
# read-only bridge attributes (ids, root, flags, timers, querier state, learnt count)
READ_ONLY_BRIDGE = {10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 40, 47, 48}
_SOCKET_TABLES = (
    "packet",
    "raw",
    "raw6",
    "udp",
    "udp6",
    "tcp",
    "tcp6",
    "udplite",
    "udplite6",
    "icmp",
    "icmp6",
    "unix",
    "netlink",
)
_XTABLES = ("ip_tables_names", "ip6_tables_names", "arp_tables_names")


# what identifies a spare link rather than describes its state: its name, and a veth's peer;
# and its MAC, which the lab that takes it sets (vlab.nsspares)
_SPARE_IDENTITY = {IFLA_IFNAME, IFLA_LINK, IFLA_LINK_NETNSID, IFLA_ADDRESS}
# ... and as a port of the dormant bridge (IFLA_INFO_SLAVE_DATA): its number, the port id and
# designated port made of it, its STP timers, padding; every other port attribute is its state
IFLA_INFO_SLAVE_DATA = 5
IFLA_BRPORT_NO = 18
_PORT_IDENTITY = frozenset({15, 17, IFLA_BRPORT_NO, 21, 22, 23, 26})
NDA_LLADDR = 2
# A pooled namespace's dormant bridge: its name is left out of the links (a reset leaves it the
# name the last lab gave it, which the next lab most likely gives it again: a rename costs
# ~0.2 ms under rtnl, twice). It is still seen in the sysctl paths of a full check, for which
# a reset gives it its spare name.
BRIDGE_INDEX = 2
_SPARE_VOLATILE = frozenset(VOLATILE_LINK | _SPARE_IDENTITY)
_DORMANT = struct.pack("=I", BRIDGE_INDEX)  # IFLA_MASTER of a port of the dormant bridge
_BRIDGE_VOLATILE = frozenset(VOLATILE_LINK | {IFLA_IFNAME})


class Space(Protocol):
    """What the pool needs of a lab namespace (vlab.switch.Namespace)."""

    ns: NetNS
    rtnl: Rtnl
    links: LinkRequests
    next_index: int
    reserved: set[int]
    counter_base: dict[int, bytes]

    def index(self) -> int: ...

    def close(self) -> None: ...


# --- snapshots ------------------------------------------------------------------------------


def _strip(body: bytes, head: int, volatile: Iterable[int]) -> bytes:
    """A message body without the attributes in ``volatile`` (top level only)."""
    skip = set(volatile)
    out = body[:head]
    offset = head
    while offset + 4 <= len(body):
        length, kind = struct.unpack_from("=HH", body, offset)
        if length < 4:
            break
        if kind & 0x3FFF not in skip:
            out += body[offset : offset + ((length + 3) & ~3)]
        offset += (length + 3) & ~3
    return out


def port_number(info: dict[int, bytes]) -> int | None:
    """A bridge port's number (IFLA_BRPORT_NO) from its parsed IFLA_LINKINFO."""
    number = attrs(info.get(IFLA_INFO_SLAVE_DATA, b"")).get(IFLA_BRPORT_NO)
    return struct.unpack_from("=H", number)[0] if number is not None and len(number) >= 2 else None


def _link_entry(
    body: bytes,
    volatile: Container[int],
    top: dict[int, bytes] | None = None,
    info: dict[int, bytes] | None = None,
    port: bool = False,
) -> tuple[object, ...]:
    """One link as comparable values: its header, its attributes but ``volatile`` ones (in the
    kernel's order, which is fixed), its kind, and its kind's attributes but those that tick;
    with ``port``, its attributes as a bridge port but those that only name it.

    Parsed once, never re-serialised: a reset compares a few dozen attributes of each link,
    and this is most of the Python a reset runs."""
    top = attrs(body, IFINFO.size) if top is None else top
    info = attrs(top.get(IFLA_LINKINFO, b"")) if info is None else info
    data = attrs(info.get(IFLA_INFO_DATA, b""))
    spec = attrs(top.get(26, b""))
    inet6 = attrs(spec.get(10, b""))  # AF_INET6: only the address generation mode, token
    slave: tuple[tuple[int, bytes], ...] = ()
    if port:
        ported = attrs(info.get(IFLA_INFO_SLAVE_DATA, b""))
        slave = tuple(sorted([(k, v) for k, v in ported.items() if k not in _PORT_IDENTITY]))
    return (
        body[: IFINFO.size],
        tuple([(k, v) for k, v in top.items() if k not in volatile]),
        info.get(IFLA_INFO_KIND, b""),
        tuple(sorted([(k, v) for k, v in data.items() if k not in VOLATILE_BRIDGE])),
        inet6.get(8, b""),
        inet6.get(7, b""),
        slave,
    )


def _anonymous(body: bytes) -> bytes:
    """A message about one link with its ifindex (at offset 4 in ifinfomsg, ifaddrmsg, ndmsg
    and tcmsg alike) zeroed: spare links are compared with the reference spare, not by number."""
    return body[:4] + b"\0\0\0\0" + body[8:]


def _links(
    rtnl: Rtnl,
    spares: Iterable[int] = (),
    counters: dict[int, bytes] | None = None,
    seats: dict[int, int] | None = None,
    macs: dict[int, bytes] | None = None,
) -> tuple[list[object], dict[int, object]]:
    """The links, and apart from them the spare links, nameless and numberless; ``counters``
    gets each link's ``rtnl_link_stats64`` from the same dump, ``seats`` each spare's port
    number in the dormant bridge, ``macs`` each spare's MAC."""
    keep = set(spares)
    out: list[tuple[object, ...]] = []
    spare: dict[int, object] = {}
    for body in rtnl.dump(18, IFINFO.pack(0, 0, 0, 0, 0)):
        index = struct.unpack_from("=i", body, 4)[0]
        top = attrs(body, IFINFO.size)
        if counters is not None:
            counters[index] = top.get(IFLA_STATS64, b"")[:64]
        if index in keep:
            info = attrs(top.get(IFLA_LINKINFO, b""))
            entry = _link_entry(_anonymous(body), _SPARE_VOLATILE, top, info, port=True)
            spare[index] = entry
            number = port_number(info) if top.get(IFLA_MASTER) == _DORMANT else None
            if seats is not None and number is not None:
                seats[index] = number
            if macs is not None:
                macs[index] = top.get(IFLA_ADDRESS, b"")
        elif index == BRIDGE_INDEX:
            out.append(_link_entry(body, _BRIDGE_VOLATILE, top))
        else:
            out.append(_link_entry(body, VOLATILE_LINK, top))
    return sorted(out), spare  # type: ignore[type-var, return-value]  # tuples of bytes, ints


def _names(rtnl: Rtnl, indexes: Iterable[int]) -> list[str]:
    """The names of the links ``indexes``."""
    wanted = set(indexes)
    if not wanted:
        return []
    out = []
    for body in rtnl.dump(18, IFINFO.pack(0, 0, 0, 0, 0)):
        if struct.unpack_from("=i", body, 4)[0] in wanted:
            out.append(attrs(body, IFINFO.size).get(IFLA_IFNAME, b"").rstrip(b"\0").decode())
    return out


def _split(
    section: list[bytes],
    spares: dict[int, list[object]],
    qdiscs: bool = False,
    macs: dict[int, bytes] | None = None,
) -> list[bytes]:
    """``section`` without the messages about spare links, which go to ``spares`` (a qdisc's
    without its handle too: the kernel numbers automatic handles machine-wide; with ``macs``,
    an fdb entry's MAC when it is the spare's own: its local entries)."""
    out = []
    for body in section:
        index = struct.unpack_from("=i", body, 4)[0] if len(body) >= 8 else 0
        if index in spares:
            body = _anonymous(body)
            if qdiscs:
                body = body[:8] + b"\0\0\0\0" + body[12:]
            elif macs is not None:
                body = _own_mac_hidden(body, macs.get(index))
            spares[index].append(body)
        else:
            out.append(body)
    return out


def _own_mac_hidden(body: bytes, mac: bytes | None) -> bytes:
    """An fdb entry (ndmsg) with its MAC zeroed if it is ``mac``: a spare port's local entries
    name the MAC its lab gave it, which the check leaves out (vlab.nsspares)."""
    offset = 12  # sizeof(struct ndmsg)
    while mac and offset + 4 <= len(body):
        length, kind = struct.unpack_from("=HH", body, offset)
        if length < 4:
            break
        if kind & 0x3FFF == NDA_LLADDR and body[offset + 4 : offset + length] == mac:
            zero = bytes(length - 4)
            return body[: offset + 4] + zero + body[offset + length :]
        offset += (length + 3) & ~3
    return body


def _vlans(rtnl: Rtnl) -> list[tuple[int, bytes]]:
    """Every link's VLAN list (``bridge vlan show``: AF_BRIDGE with RTEXT_FILTER_BRVLAN).

    A plain link dump leaves them out: a VLAN added to the bridge device itself would otherwise
    go unseen by the check.
    """
    body = IFINFO.pack(7, 0, 0, 0, 0) + nla(29, struct.pack("=I", 1 << 1))  # IFLA_EXT_MASK
    out = []
    for msg in rtnl.dump(18, body):
        index = struct.unpack_from("=i", msg, 4)[0]
        out.append((index, attrs(msg, IFINFO.size).get(26, b"")))  # IFLA_AF_SPEC
    return sorted(out)


def _dump(rtnl: Rtnl, msg_type: int, head: bytes, volatile: Iterable[int]) -> list[bytes]:
    try:
        bodies = rtnl.dump(msg_type, head)
    except OSError as exc:
        return [f"unavailable: {exc.strerror}".encode()]
    return sorted(_strip(b, len(head), volatile) for b in bodies)


def _read(path: str) -> bytes:
    """A whole /proc or /sys file: a socket table of a lab with 64 VMs (a kept socket each) is
    well past one page, and a read capped at a page would count it short, or two tables that
    differ past that page as equal."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        return f"unreadable: {exc.errno}".encode()
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        return f"unreadable: {exc.errno}".encode()
    finally:
        os.close(fd)


def _sysctls(devices: Iterable[str] = ()) -> dict[str, bytes]:
    """Every net sysctl of the calling thread's namespace, by path, but those of ``devices``
    (``conf/DEV/...``, ``neigh/DEV/...``: spare links, held to their reference otherwise)."""
    out: dict[str, bytes] = {}
    skip = set(devices)
    for root, _dirs, files in os.walk("/proc/sys/net"):
        if os.path.basename(root) in skip:
            continue
        for name in files:
            path = f"{root}/{name}"
            out[path] = _read(path)
    return out


def _nft_tables() -> object:
    """How many nftables tables exist in the calling thread's namespace (any family)."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 12)
    except OSError as exc:
        return f"unavailable: {exc.strerror}"
    with sock:
        body = struct.pack("=BBH", 0, 0, 0)  # nfgenmsg: AF_UNSPEC, version 0, res_id
        msg_type = (10 << 8) | 1  # NFNL_SUBSYS_NFTABLES, NFT_MSG_GETTABLE
        sock.send(struct.pack("=IHHII", 16 + len(body), msg_type, 0x301, 1, 0) + body)
        tables = 0
        while True:
            data = sock.recv(1 << 16)
            offset = 0
            while offset + 16 <= len(data):
                length, kind, _f, _s, _p = struct.unpack_from("=IHHII", data, offset)
                if kind == 3:  # NLMSG_DONE
                    return tables
                if kind == 2:  # NLMSG_ERROR
                    (err,) = struct.unpack_from("=i", data, offset + 16)
                    return f"error {err}" if err else tables
                tables += 1
                offset += (length + 3) & ~3


def _processes(inode: int, threads_of: int | None) -> list[str]:
    """Processes (and the threads of process ``threads_of``, this one by default, other than
    the caller) inside the namespace."""
    found = []
    me = threading.get_native_id()
    owner = os.getpid() if threads_of is None else threads_of
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.stat(f"/proc/{pid}/ns/net").st_ino == inode and int(pid) not in (owner, me):
                found.append(pid)
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{owner}/task"):
            with contextlib.suppress(OSError):
                if int(tid) != me and os.stat(f"/proc/{owner}/task/{tid}/ns/net").st_ino == inode:
                    found.append(f"thread {tid}")
    return sorted(found)


# What only a program or a sysctl write can change: checked in full when the namespace was
# touched (NetNS.touched), skipped otherwise; vlab makes no routing rule and no nexthop.
FULL_ONLY = ("xtables", "sysctls", "nftables", "processes", "rules", "nexthops", "sockets")


def _protocols(held: int) -> dict[str, int]:
    """Sockets open in the calling thread's namespace, by protocol: ``/proc/net/protocols``,
    the kernel's per-namespace in-use counters (``sock_prot_inuse_get``), but the ``held``
    packet sockets the pool keeps open.

    Every protocol is counted, one read, ~35 us. The socket tables (``/proc/net/udp`` ...) each
    walk a machine-wide hash table, twice per read (the read that finds the end starts the walk
    again): ~190 us for the six a cheap check needed, TCP's ~4 ms each. A table lists the
    sockets a counter counts (UDP, TCP and ping sockets once bound, raw, packet, netlink and
    unix sockets from creation) but TCP's time-wait ones, which the full check reads the
    tables for."""
    out: dict[str, int] = {}
    for line in _read("/proc/thread-self/net/protocols").splitlines()[1:]:
        fields = line.split()
        if len(fields) > 2 and fields[2].lstrip(b"-").isdigit():
            out[fields[0].decode(errors="replace")] = int(fields[2])
        else:
            out[line.decode(errors="replace")] = -1  # a line this parser does not know
    if "PACKET" in out:
        out["PACKET"] -= held
    return out


def snapshot(
    space: Space,
    full: bool = True,
    spares: Iterable[int] = (),
    threads_of: int | None = None,
    counters: dict[int, bytes] | None = None,
    held: int = 0,
    seats: dict[int, int] | None = None,
) -> dict[str, object]:
    """Everything of a switch namespace a test could tell apart, as comparable values.

    ``full=False`` leaves out :data:`FULL_ONLY` (the socket tables among them; the sockets are
    still counted, by protocol: :func:`_protocols`): what changes only
    through a sysctl write, a program or a socket of the test's own, each of which marks the
    namespace touched. It costs about a millisecond where the full snapshot costs ~15.
    ``spares``: ifindexes of links kept for reuse; what the dumps say of each of them goes,
    without its number and name, into the ``spare`` section: the set of their distinct states.
    ``held``: packet sockets the pool keeps open there for spare links, left out of the count.
    ``seats`` gets each spare's port number in the dormant bridge.
    """
    rtnl = space.rtnl
    snap: dict[str, object] = {}
    with space.ns.entered():
        snap["protocols"] = _protocols(held)
        if full:
            sockets = {
                name: len(_read(f"/proc/thread-self/net/{name}").splitlines())
                for name in _SOCKET_TABLES
            }
            sockets["packet"] -= held
            snap["sockets"] = sockets
            snap["xtables"] = {name: _read(f"/proc/thread-self/net/{name}") for name in _XTABLES}
            snap["sysctls"] = _sysctls(_names(rtnl, spares))
            snap["nftables"] = _nft_tables()
    macs: dict[int, bytes] = {}
    snap["links"], spare_links = _links(rtnl, spares, counters, seats, macs)
    per_spare: dict[int, list[object]] = {i: [entry] for i, entry in spare_links.items()}
    vlans = []
    for index, vlan in _vlans(rtnl):
        if index in per_spare:
            per_spare[index].append(b"vlans " + vlan)  # a spare port's own, nameless
        else:
            vlans.append((index, vlan))
    snap["vlans"] = vlans
    snap["addresses"] = _dump(rtnl, RTM_GETADDR, struct.pack("=BBBBI", 0, 0, 0, 0, 0), {6})
    snap["routes"] = _dump(
        rtnl, RTM_GETROUTE, struct.pack("=BBBBBBBBI", 0, 0, 0, 0, 0, 0, 0, 0, 0), {12}
    )
    if full:
        snap["rules"] = _dump(
            rtnl, RTM_GETRULE, struct.pack("=BBBBBBBBI", 0, 0, 0, 0, 0, 0, 0, 0, 0), ()
        )
    neigh = struct.pack("=BxxxiHBB", 0, 0, 0, 0, 0)
    snap["neighbours"] = _dump(rtnl, RTM_GETNEIGH, neigh, {3, 4})
    snap["fdb"] = _dump(rtnl, RTM_GETNEIGH, struct.pack("=BxxxiHBB", 7, 0, 0, 0, 0), {3, 4})
    snap["mdb"] = _dump(rtnl, RTM_GETMDB, struct.pack("=BxxxI", 7, 0), ())
    if full:
        snap["nexthops"] = _dump(rtnl, RTM_GETNEXTHOP, struct.pack("=BBBBI", 0, 0, 0, 0, 0), ())
    qdisc = struct.pack("=BxxxiIII", 0, 0, 0, 0, 0)
    snap["qdiscs"] = _dump(rtnl, RTM_GETQDISC, qdisc, {3, 4, 7})  # stats, xstats, stats2
    for key in ("addresses", "neighbours", "fdb", "qdiscs"):
        section = snap[key]
        assert isinstance(section, list)
        snap[key] = _split(section, per_spare, key == "qdiscs", macs if key == "fdb" else None)
    # each spare's state: its link, then what the other dumps say of it (bytes), in order
    states = {(v[0], tuple(sorted(v[1:]))) for v in per_spare.values()}  # type: ignore[type-var]
    snap["spare"] = sorted(states)  # type: ignore[type-var]  # tuples of bytes, ints
    if full:
        snap["processes"] = _processes(space.ns.inode, threads_of)
    return snap


def partial(reference: dict[str, object]) -> dict[str, object]:
    """The part of a full snapshot that a ``full=False`` snapshot has."""
    return {k: v for k, v in reference.items() if k not in FULL_ONLY}


def differences(a: dict[str, object], b: dict[str, object]) -> list[str]:
    """Names of the sections (and sysctls) in which snapshot ``b`` differs from the reference
    ``a``; ``b``'s spare links must each be in the state of one of ``a``'s."""
    out: list[str] = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if x == y:
            continue
        if key == "spare" and isinstance(x, list) and isinstance(y, list):
            if set(y) - set(x):  # a spare link of ``b`` in a state no spare of ``a`` is in
                out.append("spare links")
            continue
        if key == "sysctls" and isinstance(x, dict) and isinstance(y, dict):
            out.extend(f"sysctl {p}" for p in sorted(set(x) | set(y)) if x.get(p) != y.get(p))
        else:
            out.append(key)
    return out
