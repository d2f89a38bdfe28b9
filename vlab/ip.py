"""Hosts at the IP level: addresses, routes, IPv6 on request and ping without iputils.

A host of a quiet lab has IPv6 off (no link-local address, no DAD, RS or MLD chatter). Giving it
an IPv6 address (or ``ipv6=True``) turns IPv6 on for that host's ``lo`` and ``eth0`` only, with
router solicitations off and DAD skipped, so the rest of the lab stays quiet and the address is
usable at once. Everything goes through the lab's raw rtnetlink socket of that namespace.

``ping`` opens a raw ICMP socket inside the host's namespace (as root this needs no
``net.ipv4.ping_group_range``), so it works on machines without iputils and costs no process.
"""

from __future__ import annotations

import ipaddress
import os
import select
import socket
import struct
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from vlab import rtnl as nl
from vlab.errors import LabError

if TYPE_CHECKING:
    from vlab.netns import NetNS

Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
LOOPBACK_INDEX = 1
ICMP_ECHO, ICMP_ECHOREPLY = 8, 0
ICMP6_ECHO, ICMP6_ECHOREPLY = 128, 129


def interfaces(value: object, what: str) -> list[Interface]:
    """``"192.0.2.1/24"`` or a list of such (IPv4 or IPv6) as interfaces; LabError otherwise."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, Sequence) or isinstance(items, bytes):
        raise LabError(f"{what}: give an address with its prefix length, e.g. '192.0.2.1/24'")
    out: list[Interface] = []
    for item in items:
        if not isinstance(item, str) or "/" not in item:
            raise LabError(
                f"{what}: {item!r} needs a prefix length, e.g. '192.0.2.1/24' or '2001:db8::1/64'"
            )
        try:
            out.append(ipaddress.ip_interface(item))
        except ValueError:
            raise LabError(f"{what}: {item!r} is not an IPv4 or IPv6 address/prefix") from None
    return out


def address(value: object, what: str) -> Address:
    if not isinstance(value, str):
        raise LabError(f"{what}: give an IP address as a string, e.g. '192.0.2.2'")
    try:
        return ipaddress.ip_address(value.split("%")[0])
    except ValueError:
        raise LabError(f"{what}: {value!r} is not an IPv4 or IPv6 address") from None


def enable_ipv6(ns: NetNS, ifname: str) -> None:
    """IPv6 on one device of one namespace, without router solicitations or DAD delays."""
    for key, value in (("accept_dad", 0), ("router_solicitations", 0), ("accept_ra", 0)):
        ns.sysctl(f"net.ipv6.conf.{ifname}.{key}", value)
    ns.sysctl(f"net.ipv6.conf.{ifname}.disable_ipv6", 0)
    # The kernel sometimes leaves a host's first neighbour solicitation unanswered, right after
    # IPv6 came up; retransmitting after 100 ms instead of 1 s keeps one ping within 1 s.
    ns.sysctl(f"net.ipv6.neigh.{ifname}.retrans_time_ms", 100)


def add(rtnl: nl.Rtnl, index: int, iface: Interface, what: str) -> None:
    try:
        nl.addr_add(rtnl, index, iface.ip.packed, iface.network.prefixlen)
    except OSError as exc:
        raise LabError(f"{what}: cannot add address {iface}: {exc.strerror}") from None


def route(rtnl: nl.Rtnl, dst: str, via: str | None, oif: int | None, what: str) -> None:
    """``ip route add DST [via GW]``; DST is a prefix or ``default`` (IPv4) / ``default6``."""
    if not isinstance(dst, str):
        raise LabError(f"{what}: give the destination as a prefix such as '198.51.100.0/24'")
    gw = address(via, f"{what} via") if via is not None else None
    if dst in ("default", "default6"):
        six = dst == "default6" or (gw is not None and gw.version == 6)
        net = ipaddress.ip_network("::/0" if six else "0.0.0.0/0")
    else:
        try:
            net = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            raise LabError(f"{what}: {dst!r} is not a prefix such as '198.51.100.0/24'") from None
    if gw is not None and gw.version != net.version:
        raise LabError(f"{what}: gateway {gw} and destination {net} are not the same IP version")
    try:
        nl.route_add(
            rtnl,
            net.network_address.packed,
            net.prefixlen,
            gw.packed if gw is not None else None,
            oif,
        )
    except OSError as exc:
        raise LabError(f"{what}: cannot add route {net} via {gw}: {exc.strerror}") from None


def read_addresses(rtnl: nl.Rtnl, index: int) -> list[str]:
    """The addresses of one device as the kernel reports them, ``"192.0.2.1/24"`` style."""
    out = []
    for ifindex, raw, plen, _flags in nl.addr_dump(rtnl):
        if ifindex == index:
            out.append(f"{ipaddress.ip_address(raw)}/{plen}")
    return out


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int, payload: bytes, v6: bool) -> bytes:
    """An ICMP (or ICMPv6: the kernel fills its checksum) echo request."""
    kind = ICMP6_ECHO if v6 else ICMP_ECHO
    head = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
    if v6:
        return head + payload
    return struct.pack("!BBHHH", kind, 0, _checksum(head + payload), ident, seq) + payload


def is_reply(data: bytes, ident: int, seq: int, v6: bool) -> bool:
    """Whether ``data`` (read from a raw socket: IPv4 with its header) answers our request."""
    if not v6:
        if len(data) < 20:
            return False
        data = data[(data[0] & 0x0F) * 4 :]
    if len(data) < 8:
        return False
    kind, _code, _sum, rid, rseq = struct.unpack_from("!BBHHH", data)
    return kind == (ICMP6_ECHOREPLY if v6 else ICMP_ECHOREPLY) and (rid, rseq) == (ident, seq)


def ping(ns: NetNS, dst: Address, count: int, timeout: float) -> bool:
    """True when each of ``count`` echo requests to ``dst`` is answered within ``timeout``."""
    v6 = dst.version == 6
    family = socket.AF_INET6 if v6 else socket.AF_INET
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    with ns.entered():
        sock = socket.socket(family, socket.SOCK_RAW | socket.SOCK_CLOEXEC, proto)
    ident = int.from_bytes(os.urandom(2), "big")
    try:
        for seq in range(1, count + 1):
            packet = echo_request(ident, seq, b"vlab-ping" + os.urandom(8), v6)
            try:
                sock.sendto(packet, (str(dst), 0))
            except OSError:
                return False  # no route, unreachable: no reply will come
            if not _wait_reply(sock, ident, seq, v6, timeout):
                return False
        return True
    finally:
        sock.close()


def _wait_reply(sock: socket.socket, ident: int, seq: int, v6: bool, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([sock], [], [], remaining)
        if not ready:
            return False
        if is_reply(sock.recv(65535), ident, seq, v6):
            return True
    return False


def configure_host(
    ns: NetNS, rtnl: nl.Rtnl, ifname: str, index: int, ips: list[Interface], ipv6: bool
) -> None:
    """A new host's IP side: ``lo`` up, IPv6 on where asked, then its addresses on ``eth0``."""
    nl.LinkRequests(rtnl).set_link(LOOPBACK_INDEX, up=True)
    if ipv6 or any(i.version == 6 for i in ips):
        enable_ipv6(ns, "lo")
        enable_ipv6(ns, ifname)
    for iface in ips:
        add(rtnl, index, iface, f"host {ns.name}")
    if ipv6 or any(i.version == 6 for i in ips):
        wait_usable(rtnl, index, f"host {ns.name}")


def wait_usable(rtnl: nl.Rtnl, index: int, what: str, timeout: float = 5.0) -> None:
    """Until the device has its IPv6 link-local address and no address is tentative.

    IPv6 starts on a link only once it has carrier (asynchronously, after the veth's peer came
    up): until then there is no link-local address, and even NODAD addresses stay tentative
    until the kernel's address work runs. A neighbour solicitation meanwhile goes unanswered,
    and the first ping would wait a full ND retransmission (1 s).
    """
    deadline = time.monotonic() + timeout
    while True:
        mine = [(a, f) for i, a, _p, f in nl.addr_dump(rtnl) if i == index]
        link_local = any(len(a) == 16 and a[:2] == b"\xfe\x80" for a, _f in mine)
        if link_local and not any(f & nl.IFA_F_TENTATIVE for _a, f in mine):
            return
        if time.monotonic() > deadline:
            raise LabError(f"{what}: IPv6 did not come up on its link within {timeout:g} s")
        time.sleep(0.001)


def ipv6_request(ipv6: object, what: str) -> tuple[bool, list[Interface]]:
    """``ipv6=True`` (IPv6 on, link-local only) or IPv6 addresses; IPv4 ones are refused."""
    if ipv6 is None or ipv6 is False:
        return False, []
    if ipv6 is True:
        return True, []
    ifaces = interfaces(ipv6, f"{what} ipv6")
    wrong = [str(i) for i in ifaces if i.version != 6]
    if wrong:
        raise LabError(f"{what} ipv6: {', '.join(wrong)} is IPv4; give it in ip= instead")
    return True, ifaces


# the Internet checksum, shared with vlab.mcast_frames
checksum = _checksum
