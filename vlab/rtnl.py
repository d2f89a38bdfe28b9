"""A minimal rtnetlink client for what pyroute2 cannot say or says too slowly.

pyroute2 0.9.7 does not know the bridge attributes IFLA_BR_MULTI_BOOLOPT (46) and
IFLA_BR_FDB_MAX_LEARNED (49) and drops them silently; and the quiescence check behind
``expect_none`` dumps link and qdisc statistics on every call, where pyroute2's generic decoding
costs ~0.5 ms a dump against ~20 µs for reading the few fields needed straight from the buffer.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import threading
from collections.abc import Iterator

from vlab.errors import LabError

NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLA_F_NESTED = 0x8000

RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_GETQDISC = 38
RTM_GETSTATS = 94

IFLA_LINKINFO = 18
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
IFLA_STATS_LINK_64 = 1
TCA_KIND = 1
TCA_STATS = 3

_HDR = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
IFINFO = _IFINFO  # struct ifinfomsg, for modules that build their own link messages
_NLA = struct.Struct("=HH")


def nla(kind: int, data: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    length = _NLA.size + len(data)
    return _NLA.pack(length, kind) + data + b"\0" * (-length % 4)


def attrs(buf: bytes, offset: int = 0, end: int | None = None) -> dict[int, bytes]:
    """Attributes of a message body as ``{type: payload}`` (nested flag stripped)."""
    out: dict[int, bytes] = {}
    end = len(buf) if end is None else end
    while offset + 4 <= end:
        length, kind = _NLA.unpack_from(buf, offset)
        if length < 4:
            break
        out[kind & 0x3FFF] = buf[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return out


def pick(buf: bytes, offset: int, wanted: frozenset[int]) -> dict[int, bytes]:
    """Only the top-level attributes of types in ``wanted``: the others are stepped over, not
    copied (a link message has ~50 of them, and a reset reads every link twice)."""
    out: dict[int, bytes] = {}
    end = len(buf)
    while offset + 4 <= end:
        length, kind = _NLA.unpack_from(buf, offset)
        if length < 4:
            break
        kind &= 0x3FFF
        if kind in wanted:
            out[kind] = buf[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return out


_RECV_SIZE = 1 << 18
_buffers = threading.local()


def recv(sock: socket.socket) -> bytes:
    """One netlink datagram (up to 256 KiB), read through a buffer each thread reuses.

    ``sock.recv(256 KiB)`` allocates a bytes object that large for every reply and shrinks it
    afterwards: above malloc's mmap threshold that is an mmap, page faults, an mremap and an
    munmap per reply, about a fifth of a namespace reset's CPU time. Reading into a buffer
    kept for the thread copies out only what arrived."""
    buf = getattr(_buffers, "buf", None)
    if buf is None:
        buf = _buffers.buf = bytearray(_RECV_SIZE)
    n = sock.recv_into(buf)
    return bytes(memoryview(buf)[:n])


def attr(buf: bytes, offset: int, kind: int) -> bytes | None:
    """The payload of the first top-level attribute of type ``kind``, scanning no further."""
    end = len(buf)
    while offset + 4 <= end:
        length, found = _NLA.unpack_from(buf, offset)
        if length < 4:
            return None
        if found & 0x3FFF == kind:
            return buf[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return None


NETLINK_TIMEOUT = 10.0
"""Longest wait for one netlink reply: the kernel answers in microseconds, so a reply that has
not come by then never will (a lost message, a full socket buffer) and waiting longer hangs."""

_REQUESTS = {
    16: "RTM_NEWLINK",
    17: "RTM_DELLINK",
    18: "RTM_GETLINK",
    19: "RTM_SETLINK",
    20: "RTM_NEWADDR",
    22: "RTM_GETADDR",
    24: "RTM_NEWROUTE",
    28: "RTM_NEWNEIGH",
    29: "RTM_DELNEIGH",
    30: "RTM_GETNEIGH",
    38: "RTM_GETQDISC",
    94: "RTM_GETSTATS",
}


_TIMEVAL = struct.Struct("=qq")


class Rtnl:
    """A raw NETLINK_ROUTE socket bound to the namespace it was opened in.

    One request and its reply are one transaction under a lock: two threads sharing the socket
    would otherwise each read (and discard) the other's replies and both wait forever. Every
    wait has a deadline (:data:`NETLINK_TIMEOUT`), kept by the kernel (SO_RCVTIMEO and
    SO_SNDTIMEO on a blocking socket) rather than by a Python socket timeout, which polls before
    every send and every receive: two system calls more per request, on the path of every
    negative check.
    """

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            self.sock.bind((0, 0))
            limit = _TIMEVAL.pack(int(NETLINK_TIMEOUT), int(NETLINK_TIMEOUT % 1 * 1e6))
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)
        except BaseException:
            self.sock.close()
            raise
        self.seq = 0
        self.lock = threading.RLock()

    def _send(self, msg_type: int, flags: int, body: bytes) -> int:
        self.seq += 1
        self.sock.send(_HDR.pack(_HDR.size + len(body), msg_type, flags, self.seq, 0) + body)
        return self.seq

    def transact(
        self, msg_type: int, flags: int, body: bytes, single: bool = False
    ) -> list[tuple[int, bytes]]:
        """Send one request and collect its reply messages, atomically and with a deadline."""
        with self.lock:
            try:
                return list(self._messages(self._send(msg_type, flags, body), single))
            except (TimeoutError, BlockingIOError):  # SO_RCVTIMEO/SO_SNDTIMEO ran out
                raise _stuck(msg_type) from None

    def _messages(self, seq: int, single: bool = False) -> Iterator[tuple[int, bytes]]:
        while True:
            data = recv(self.sock)
            offset = 0
            while offset + _HDR.size <= len(data):
                length, msg_type, _flags, mseq, _pid = _HDR.unpack_from(data, offset)
                body = data[offset + _HDR.size : offset + length]
                offset += (length + 3) & ~3
                if mseq != seq:
                    continue  # a late reply to a request that timed out
                if msg_type == NLMSG_DONE:
                    return
                if msg_type == NLMSG_ERROR:
                    (err,) = struct.unpack_from("=i", body)
                    if err:
                        raise OSError(-err, os.strerror(-err))
                    return
                yield msg_type, body
                if single:
                    return

    def request(self, msg_type: int, body: bytes) -> None:
        """Send a change and wait for the kernel's acknowledgement (OSError on refusal)."""
        self.transact(msg_type, NLM_F_REQUEST | NLM_F_ACK, body)

    def get(self, msg_type: int, body: bytes) -> list[bytes]:
        return [b for _, b in self.transact(msg_type, NLM_F_REQUEST, body, True)]

    def dump(self, msg_type: int, body: bytes) -> list[bytes]:
        flags = NLM_F_REQUEST | NLM_F_DUMP
        return [b for _, b in self.transact(msg_type, flags, body)]

    def close(self) -> None:
        self.sock.close()

    # --- the few requests vlab needs -------------------------------------------------------

    def set_bridge_data(self, index: int, data: bytes) -> None:
        """Set IFLA_INFO_DATA attributes of a bridge that pyroute2 cannot encode."""
        info = nla(IFLA_INFO_KIND, b"bridge\0") + nla(IFLA_INFO_DATA | NLA_F_NESTED, data)
        body = _IFINFO.pack(0, 0, index, 0, 0) + nla(IFLA_LINKINFO | NLA_F_NESTED, info)
        self.request(RTM_NEWLINK, body)

    def set_port_data(self, index: int, data: bytes) -> None:
        """Set bridge-port options the way ``bridge link set`` does (AF_BRIDGE, IFLA_PROTINFO).

        Not through IFLA_INFO_SLAVE_DATA: that RTM_NEWLINK also emits a link change event, on
        which the bridge re-checks carrier and re-enables a port just set to ``disabled``.
        """
        body = _IFINFO.pack(7, 0, index, 0, 0) + nla(12 | NLA_F_NESTED, data)  # IFLA_PROTINFO
        self.request(19, body)  # RTM_SETLINK

    def port_data(self, index: int) -> dict[int, bytes]:
        for body in self.get(RTM_GETLINK, _IFINFO.pack(0, 0, index, 0, 0)):
            top = attrs(body, _IFINFO.size)
            info = attrs(top.get(IFLA_LINKINFO, b""))
            return attrs(info.get(5, b""))
        return {}

    def bridge_data(self, index: int) -> dict[int, bytes]:
        """IFLA_INFO_DATA of a bridge, raw, including the attributes pyroute2 drops."""
        for body in self.get(RTM_GETLINK, _IFINFO.pack(0, 0, index, 0, 0)):
            top = attrs(body, _IFINFO.size)
            info = attrs(top.get(IFLA_LINKINFO, b""))
            return attrs(info.get(IFLA_INFO_DATA, b""))
        return {}

    def link_counters(self) -> list[tuple[int, bytes]]:
        """``(ifindex, rtnl_link_stats64 bytes)`` of every link in the namespace.

        Every settle round asks this of every lab namespace, so the reply is read straight from
        the receive buffer: with only IFLA_STATS_LINK_64 asked for, each message is a header,
        a struct if_stats_msg and that one attribute (anything else is decoded the long way).
        """
        out: list[tuple[int, bytes]] = []
        with self.lock:
            seq = self._send(RTM_GETSTATS, NLM_F_REQUEST | NLM_F_DUMP, _STATS_REQUEST)
            try:
                while True:
                    data = recv(self.sock)
                    if _stats_rows(data, seq, out):
                        return out
            except (TimeoutError, BlockingIOError):
                raise _stuck(RTM_GETSTATS) from None

    def qdiscs(self) -> list[tuple[int, int, str, int]]:
        """``(ifindex, handle, kind, queued packets)`` of every qdisc in the namespace.

        Queued packets are what a shaper (tbf) or a busy queue still holds: frames in flight.
        """
        out = []
        for body in self.dump(RTM_GETQDISC, struct.pack("=BxxxiIII", 0, 0, 0, 0, 0)):
            ifindex, handle = struct.unpack_from("=iI", body, 4)
            a = attrs(body, 20)
            kind = a.get(TCA_KIND, b"").rstrip(b"\0").decode()
            stats = a.get(TCA_STATS, b"")
            qlen = struct.unpack_from("=I", stats, 28)[0] if len(stats) >= 32 else 0
            out.append((ifindex, handle, kind, qlen))
        return out


_STATS_REQUEST = struct.pack("=BxHiI", 0, 0, 0, 1)  # every link, IFLA_STATS_LINK_64 only
_STATS_HEAD = struct.Struct("=BxHiIHH")  # if_stats_msg, then the first attribute's header


def _stats_rows(data: bytes, seq: int, out: list[tuple[int, bytes]]) -> bool:
    """Append the ``(ifindex, stats)`` rows of one receive buffer of a RTM_GETSTATS dump to
    ``out``; True once the dump's end (or its error) has been read."""
    offset, size = 0, len(data)
    while offset + _HDR.size <= size:
        length, msg_type, _flags, mseq, _pid = _HDR.unpack_from(data, offset)
        if length < _HDR.size:  # never from a sane kernel: refuse rather than spin or guess
            raise OSError(errno.EBADMSG, f"malformed RTM_GETSTATS reply (length {length})")
        if mseq == seq:
            if msg_type == NLMSG_DONE:
                return True
            if msg_type == NLMSG_ERROR:
                (err,) = struct.unpack_from("=i", data, offset + _HDR.size)
                if err:
                    raise OSError(-err, os.strerror(-err))
                return True
            body = offset + _HDR.size
            start = body + _STATS_HEAD.size
            _family, _pad, ifindex, _filled, alen, akind = _STATS_HEAD.unpack_from(data, body)
            if akind & 0x3FFF == IFLA_STATS_LINK_64 and alen >= 68 and start + 64 <= size:
                out.append((ifindex, data[start : start + 64]))
            else:  # not the layout asked for: decode every attribute
                stats = attrs(data[body : offset + length], 12).get(IFLA_STATS_LINK_64, b"")
                out.append((ifindex, stats[:64]))  # packets, bytes, errors, drops: rx and tx
        offset += (length + 3) & ~3
    return False


def _stuck(msg_type: int) -> LabError:
    name = _REQUESTS.get(msg_type, f"netlink message type {msg_type}")
    return LabError(
        f"{name}: the kernel did not answer within {NETLINK_TIMEOUT:g} s; the lab's "
        "netlink socket is stuck (a lost reply or a full socket buffer)"
    )


RTNLGRP_TC = 4


def qdisc_events() -> socket.socket:
    """A socket the kernel tells of every qdisc added, changed or removed in this namespace."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
    try:
        sock.bind((0, 1 << (RTNLGRP_TC - 1)))
        sock.setblocking(False)
    except BaseException:
        sock.close()  # it holds the namespace: a failed build must not keep it
        raise
    return sock


IFF_UP = 0x1
IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_QDISC = 6
IFLA_MASTER = 10
IFLA_TXQLEN = 13
IFLA_OPERSTATE = 16
IFLA_CARRIER = 33
IFLA_NET_NS_FD = 28
VETH_INFO_PEER = 1
RTM_NEWLINK_FLAGS = 0x400 | 0x200  # NLM_F_CREATE | NLM_F_EXCL


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def set_addrgenmode_none(rtnl: Rtnl, index: int) -> None:
    """No IPv6 link-local address on a device: IPv6 can be on without DAD, RS or MLD chatter."""
    set_addrgenmode(rtnl, index, 1)


def set_addrgenmode(rtnl: Rtnl, index: int, mode: int) -> None:
    """IFLA_INET6_ADDR_GEN_MODE: 0 EUI-64 (a link-local address), 1 none."""
    inet6 = nla(8, bytes([mode]))  # IFLA_INET6_ADDR_GEN_MODE
    spec = nla(10 | NLA_F_NESTED, inet6)  # AF_INET6
    rtnl.request(RTM_NEWLINK, _IFINFO.pack(0, 0, index, 0, 0) + nla(26 | NLA_F_NESTED, spec))


def link_attrs(
    ifname: str | None = None,
    mac: str | None = None,
    mtu: int | None = None,
    master: int | None = None,
    txqlen: int | None = None,
    netns_fd: int | None = None,
) -> bytes:
    out = b""
    if ifname is not None:
        out += nla(IFLA_IFNAME, ifname.encode() + b"\0")
    if mac is not None:
        out += nla(IFLA_ADDRESS, mac_bytes(mac))
    if mtu is not None:
        out += nla(IFLA_MTU, struct.pack("=I", mtu))
    if master is not None:
        out += nla(IFLA_MASTER, struct.pack("=I", master))
    if txqlen is not None:
        out += nla(IFLA_TXQLEN, struct.pack("=I", txqlen))
    if netns_fd is not None:
        out += nla(IFLA_NET_NS_FD, struct.pack("=I", netns_fd))
    return out


def ifinfo(index: int = 0, up: bool = True) -> bytes:
    flag = IFF_UP if up else 0
    return _IFINFO.pack(0, 0, index, flag, IFF_UP)


def ifinfo_as_is(index: int) -> bytes:
    """An ifinfomsg for link ``index`` that changes none of its flags (up stays up)."""
    return _IFINFO.pack(0, 0, index, 0, 0)


class LinkRequests:
    """Link creation in one request each: fewer round trips is most of a fast lab build."""

    def __init__(self, rtnl: Rtnl) -> None:
        self.rtnl = rtnl

    def new(self, body: bytes, create: bool) -> None:
        """One RTM_NEWLINK (``create``: a new link, refused if it exists) with ``body``."""
        flags = NLM_F_REQUEST | NLM_F_ACK | (RTM_NEWLINK_FLAGS if create else 0)
        self.rtnl.transact(RTM_NEWLINK, flags, body)

    def delete(self, index: int) -> None:
        """Remove a link now (a veth takes its peer along): undoing a failed build only."""
        self.rtnl.request(RTM_DELLINK, _IFINFO.pack(0, 0, index, 0, 0))

    def add_bridge(
        self, name: str, index: int, mac: str, data: bytes = b"", mtu: int | None = None
    ) -> None:
        info = nla(IFLA_INFO_KIND, b"bridge\0")
        if data:
            info += nla(IFLA_INFO_DATA | NLA_F_NESTED, data)
        body = ifinfo(index) + link_attrs(name, mac, mtu) + nla(IFLA_LINKINFO | NLA_F_NESTED, info)
        self.new(body, True)

    def add_veth(
        self,
        name: str,
        index: int,
        mac: str,
        master: int | None,
        peer_name: str,
        peer_mac: str,
        peer_netns_fd: int,
        peer_index: int,
        mtu: int | None = None,
    ) -> None:
        """Near end up and enslaved, far end created in its namespace with a chosen ifindex.

        The far end cannot be brought up in the same request (veth_open finds no peer yet:
        ENOTCONN); choosing its ifindex lets the caller bring it up without a lookup.
        """
        peer = _IFINFO.pack(0, 0, peer_index, 0, 0) + link_attrs(
            peer_name, peer_mac, mtu, netns_fd=peer_netns_fd
        )
        data = nla(VETH_INFO_PEER, peer)
        info = nla(IFLA_INFO_KIND, b"veth\0") + nla(IFLA_INFO_DATA | NLA_F_NESTED, data)
        body = (
            ifinfo(index)  # 0: the kernel picks (its per-namespace cursor, not the lowest free)
            + link_attrs(name, mac, mtu, master)
            + nla(IFLA_LINKINFO | NLA_F_NESTED, info)
        )
        self.new(body, True)

    def set_link(self, index: int, up: bool | None = True, **kw: object) -> None:
        head = _IFINFO.pack(0, 0, index, 0, 0) if up is None else ifinfo(index, up)
        self.new(head + link_attrs(**kw), False)  # type: ignore[arg-type]

    def index_of(self, name: str) -> int:
        """A link's ifindex by name over this socket (``if_nametoindex`` opens a socket of its
        own, so under an fd limit it fails, misreported as "no interface with this name")."""
        body = _IFINFO.pack(0, 0, 0, 0, 0) + nla(IFLA_IFNAME, name.encode() + b"\0")
        for reply in self.rtnl.get(RTM_GETLINK, body):
            return int(struct.unpack_from("=i", reply, 4)[0])
        raise OSError(19, f"no link named {name}")  # ENODEV

    def link_states(self) -> dict[str, tuple[int, int, str]]:
        """``{ifname: (ifindex, operstate, qdisc)}`` for readiness checks."""
        out = {}
        for body in self.rtnl.dump(RTM_GETLINK, _IFINFO.pack(0, 0, 0, 0, 0)):
            (index,) = struct.unpack_from("=i", body, 4)
            a = attrs(body, _IFINFO.size)
            name = a.get(IFLA_IFNAME, b"\0").rstrip(b"\0").decode()
            oper = a.get(IFLA_OPERSTATE, b"\0")[0]
            qdisc = a.get(IFLA_QDISC, b"\0").rstrip(b"\0").decode()
            out[name] = (index, oper, qdisc)
        return out

    def link_state(self, index: int) -> tuple[int, str, bool]:
        """``(operstate, qdisc, carrier)`` of one link, *after* its pending link events ran.

        A single-link RTM_GETLINK makes the kernel run that device's pending linkwatch work
        first (rtnl_getlink -> linkwatch_sync_dev); only then has a carrier-on been acted on
        (qdisc activated, operstate set). A dump does not do this, and reading a dump right
        after a veth comes up shows a link that still drops what it is given.
        """
        for body in self.rtnl.get(RTM_GETLINK, _IFINFO.pack(0, 0, index, 0, 0)):
            a = attrs(body, _IFINFO.size)
            oper = a.get(IFLA_OPERSTATE, b"\0")[0]
            qdisc = a.get(IFLA_QDISC, b"\0").rstrip(b"\0").decode()
            carrier = a.get(IFLA_CARRIER, b"\0")[0] == 1
            return oper, qdisc, carrier
        return -1, "", False

    def port_states(self) -> dict[str, int]:
        """``{ifname: STP state}`` of every bridge port in the namespace (AF_BRIDGE dump)."""
        out = {}
        for body in self.rtnl.dump(RTM_GETLINK, _IFINFO.pack(7, 0, 0, 0, 0)):
            a = attrs(body, _IFINFO.size)
            name = a.get(IFLA_IFNAME, b"\0").rstrip(b"\0").decode()
            protinfo = a.get(12)  # IFLA_PROTINFO
            if protinfo:
                state = attrs(protinfo).get(1)  # IFLA_BRPORT_STATE
                if state:
                    out[name] = state[0]
        return out


RTM_NEWNEIGH = 28
RTM_DELNEIGH = 29
RTM_GETNEIGH = 30
AF_BRIDGE = 7
NDA_DST = 1
NDA_LLADDR = 2
NDA_CACHEINFO = 3
NDA_MASTER = 9
NDA_FLAGS_EXT = 15
NTF_SELF = 0x02
NTF_MASTER = 0x04
NTF_EXT_LEARNED = 0x10
NTF_STICKY = 0x40
NTF_EXT_LOCKED = 0x2
NUD_REACHABLE = 0x02
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80
_NDMSG = struct.Struct("=BxxxiHBB")
NDMSG = _NDMSG  # struct ndmsg, for the fdb module


def fdb_request(
    rtnl: Rtnl, add: bool, port_index: int, mac: str, static: bool = True, sticky: bool = False
) -> None:
    """``bridge fdb add|del MAC dev PORT master [static|dynamic] [sticky]`` in one message."""
    state = NUD_NOARP if static else NUD_REACHABLE
    flags = NTF_MASTER | (NTF_STICKY if sticky else 0)
    body = _NDMSG.pack(AF_BRIDGE, port_index, state, flags, 0) + nla(NDA_LLADDR, mac_bytes(mac))
    if add:
        flags = NLM_F_REQUEST | NLM_F_ACK | 0x400 | 0x100  # CREATE | REPLACE
        rtnl.transact(RTM_NEWNEIGH, flags, body)
    else:
        rtnl.request(RTM_DELNEIGH, body)


def neigh_add(rtnl: Rtnl, index: int, ip: bytes, mac: str) -> None:
    """A permanent neighbour on a device (what neigh_suppress answers ARP and NS from)."""
    family = 2 if len(ip) == 4 else 10  # AF_INET, AF_INET6
    body = (
        _NDMSG.pack(family, index, NUD_PERMANENT, 0, 0)
        + nla(NDA_DST, ip)
        + nla(NDA_LLADDR, mac_bytes(mac))
    )
    rtnl.transact(RTM_NEWNEIGH, NLM_F_REQUEST | NLM_F_ACK | 0x500, body)


def fdb_dump(rtnl: Rtnl) -> list[tuple[str, int, int, int, int, int]]:
    """``(mac, port ifindex, master ifindex, NUD state, flags, ext flags)`` per bridge entry."""
    out = []
    for body in rtnl.dump(RTM_GETNEIGH, _NDMSG.pack(AF_BRIDGE, 0, 0, 0, 0)):
        _family, ifindex, state, flags, _type = _NDMSG.unpack_from(body)
        a = attrs(body, _NDMSG.size)
        lladdr = a.get(NDA_LLADDR)
        master = a.get(NDA_MASTER)
        if lladdr is None or master is None:
            continue  # device "self" entries, not the bridge's table
        ext = a.get(NDA_FLAGS_EXT)
        out.append(
            (
                ":".join(f"{b:02x}" for b in lladdr),
                ifindex,
                struct.unpack("=I", master)[0],
                state,
                flags,
                struct.unpack("=I", ext)[0] if ext else 0,
            )
        )
    return out


def link_stats64(rtnl: Rtnl, index: int) -> bytes | None:
    """One link's ``struct rtnl_link_stats64`` now (RTM_GETSTATS for that ifindex alone).

    The full structure: rx/tx packets, bytes, errors, dropped first, then the detailed error
    counters. None when the link is gone.
    """
    body = struct.pack("=BxHiI", 0, 0, index, 1)  # filter_mask: IFLA_STATS_LINK_64
    try:
        replies = rtnl.get(RTM_GETSTATS, body)
    except OSError:
        return None
    for reply in replies:
        return attrs(reply, 12).get(IFLA_STATS_LINK_64)
    return None


RTM_NEWQDISC = 36
TC_H_ROOT = 0xFFFFFFFF


def set_noqueue(rtnl: Rtnl, index: int) -> None:
    """``tc qdisc replace dev IFINDEX root noqueue`` in one request.

    A tap never pushes back (its driver drops when the VM's queue is full), so a qdisc in
    front of it only adds a place where frames can wait unseen — one more queue for every
    quiescence check to dump.
    """
    body = struct.pack("=BxxxiIII", 0, index, 0, TC_H_ROOT, 0) + nla(TCA_KIND, b"noqueue\0")
    flags = NLM_F_REQUEST | NLM_F_ACK | 0x400 | 0x100  # CREATE | REPLACE
    for _ in rtnl._messages(rtnl._send(RTM_NEWQDISC, flags, body)):
        pass


# --- addresses and routes (IP-level hosts) -----------------------------------------------------

RTM_NEWADDR = 20
RTM_GETADDR = 22
RTM_NEWROUTE = 24
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_FLAGS = 8
IFA_F_NODAD = 0x02
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RT_TABLE_MAIN = 254
RTPROT_STATIC = 4
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253
RTN_UNICAST = 1
_IFADDRMSG = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")


def family_of(address: bytes) -> int:
    return 2 if len(address) == 4 else 10  # AF_INET, AF_INET6


def addr_body(index: int, address: bytes, prefixlen: int) -> bytes:
    """RTM_NEWADDR body: ``ip addr add ADDRESS/PREFIXLEN dev INDEX`` (IPv6 without DAD).

    DAD would keep a new IPv6 address "tentative" (unusable) for a second or more; a lab's
    addresses are unique by construction, so they are usable at once.
    """
    family = family_of(address)
    flags = IFA_F_NODAD if family == 10 else 0
    body = _IFADDRMSG.pack(family, prefixlen, flags, RT_SCOPE_UNIVERSE, index)
    body += nla(IFA_LOCAL if family == 2 else IFA_ADDRESS, address)
    if family == 2:
        body += nla(IFA_ADDRESS, address)  # the peer is the address itself on a broadcast link
    return body + nla(IFA_FLAGS, struct.pack("=I", flags))


def addr_add(rtnl: Rtnl, index: int, address: bytes, prefixlen: int) -> None:
    flags = NLM_F_REQUEST | NLM_F_ACK | 0x400 | 0x200  # CREATE | EXCL
    rtnl.transact(RTM_NEWADDR, flags, addr_body(index, address, prefixlen))


IFA_F_TENTATIVE = 0x40


def addr_dump(rtnl: Rtnl) -> list[tuple[int, bytes, int, int]]:
    """``(ifindex, address, prefixlen, IFA_F_* flags)`` of every address in the namespace."""
    out = []
    for body in rtnl.dump(RTM_GETADDR, _IFADDRMSG.pack(0, 0, 0, 0, 0)):
        family, prefixlen, flags, _scope, index = _IFADDRMSG.unpack_from(body)
        a = attrs(body, _IFADDRMSG.size)
        address = a.get(IFA_LOCAL) if family == 2 else a.get(IFA_ADDRESS)
        if IFA_FLAGS in a:
            flags = struct.unpack("=I", a[IFA_FLAGS][:4])[0]
        if address is not None:
            out.append((index, address, prefixlen, flags))
    return out


def route_body(dst: bytes, dst_len: int, gateway: bytes | None, oif: int | None) -> bytes:
    """RTM_NEWROUTE body: ``ip route add DST/LEN [via GATEWAY] [dev OIF]`` in the main table."""
    family = family_of(dst)
    scope = RT_SCOPE_UNIVERSE if gateway is not None else RT_SCOPE_LINK
    body = _RTMSG.pack(family, dst_len, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC, scope, RTN_UNICAST, 0)
    if dst_len:
        body += nla(RTA_DST, dst)
    if gateway is not None:
        body += nla(RTA_GATEWAY, gateway)
    if oif is not None:
        body += nla(RTA_OIF, struct.pack("=I", oif))
    return body


def route_add(rtnl: Rtnl, dst: bytes, dst_len: int, gateway: bytes | None, oif: int | None) -> None:
    flags = NLM_F_REQUEST | NLM_F_ACK | 0x400 | 0x200  # CREATE | EXCL
    rtnl.transact(RTM_NEWROUTE, flags, route_body(dst, dst_len, gateway, oif))
