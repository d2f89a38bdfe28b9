"""What an interface accepts: promiscuous and all-multicast modes, secondary unicast addresses
and multicast group joins, set and read back from the kernel.

The kernel's ``local_termination.sh`` asks one question of a receiving interface: which frames
reach its stack? The answer depends on the device's receive filter: its own MAC, the unicast
addresses its uppers asked for (a macvlan or VLAN upper calls ``dev_uc_add`` on its lower
device; a device that cannot filter unicast, such as a bridge or a veth, turns promiscuous
instead), the multicast groups joined on it, and the promiscuous and all-multicast flags. These
are the words for those, for the endpoints that are an interface of their own (``host.peer`` of
a host in no bridge, ``br.local``):

* ``set_promisc(on)`` / ``set_allmulti(on)``: ``ip link set DEV promisc|allmulticast on|off``;
* ``add_mac(mac)`` / ``del_mac(mac)``: a private macvlan upper with that MAC, exactly what the
  selftest does for its secondary address;
* ``join(group)`` / ``leave(group)``: an IPv4 or IPv6 group joined on that interface by a socket
  vlab holds (what ``mreceive`` does), so the device's multicast list has the group's MAC and
  its stack reports the membership;
* ``rx_filter()``: all of it read back from the kernel (flags, promiscuity count, the uppers'
  MACs, the device's multicast MACs from ``/proc/net/dev_mcast``).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vlab import rtnl as nl
from vlab.errors import LabError, Unsupported
from vlab.guard import guarded
from vlab.options import normalize_mac

if TYPE_CHECKING:
    from vlab.guard import LabGuard
    from vlab.switch import Namespace, Switch

IFF_PROMISC, IFF_ALLMULTI = 0x100, 0x200
IFLA_LINK, IFLA_PROMISCUITY = 5, 30
IFLA_MACVLAN_MODE, MACVLAN_MODE_PRIVATE = 1, 1
SOL_PACKET, PACKET_ADD_MEMBERSHIP, PACKET_MR_MULTICAST = 263, 1, 0


@dataclass(frozen=True)
class RxFilter:
    """An interface's receive filter as the kernel reports it now."""

    promisc: bool  # promiscuous mode asked for by the user (``ip link set DEV promisc on``)
    allmulti: bool  # all-multicast mode asked for by the user
    promiscuity: int  # the kernel's count: the user's request plus uppers needing every frame
    macs: tuple[str, ...]  # secondary unicast addresses (the MACs of its macvlan uppers)
    groups: tuple[str, ...]  # multicast MACs on the device's list (joined groups, 33:33:..)


class _Membership:
    """A socket that keeps one group joined on one interface; closed with the lab."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def close(self) -> None:
        self.sock.close()


def _group(value: object, what: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        group = ipaddress.ip_address(value)  # type: ignore[arg-type]
    except ValueError:
        raise LabError(f"{what}: {value!r} is not an IPv4 or IPv6 multicast group") from None
    if not group.is_multicast:
        raise LabError(f"{what}: {group} is not a multicast group (224.0.0.0/4 or ff00::/8)")
    return group


def macvlan_body(name: str, mac: str, lower: int) -> bytes:
    """RTM_NEWLINK of a private macvlan ``name`` with ``mac`` on link ``lower``, up."""
    data = nl.nla(IFLA_MACVLAN_MODE, struct.pack("=I", MACVLAN_MODE_PRIVATE))
    info = nl.nla(nl.IFLA_INFO_KIND, b"macvlan\0") + nl.nla(
        nl.IFLA_INFO_DATA | nl.NLA_F_NESTED, data
    )
    return (
        nl.ifinfo(0, True)
        + nl.nla(nl.IFLA_IFNAME, name.encode() + b"\0")
        + nl.nla(nl.IFLA_ADDRESS, nl.mac_bytes(mac))
        + nl.nla(IFLA_LINK, struct.pack("=I", lower))
        + nl.nla(nl.IFLA_LINKINFO | nl.NLA_F_NESTED, info)
    )


def read(space: Namespace, index: int) -> RxFilter:
    """The receive filter of link ``index`` of ``space``, from one link dump and dev_mcast."""
    flags, promiscuity, macs = 0, 0, []
    for body in space.rtnl.dump(nl.RTM_GETLINK, nl.IFINFO.pack(0, 0, 0, 0, 0)):
        _f, _t, link_index, link_flags, _c = nl.IFINFO.unpack_from(body)
        a = nl.attrs(body, nl.IFINFO.size)
        if link_index == index:
            flags = link_flags
            raw = a.get(IFLA_PROMISCUITY)
            promiscuity = struct.unpack("=I", raw[:4])[0] if raw else 0
        lower = a.get(IFLA_LINK)
        kind = nl.attrs(a.get(nl.IFLA_LINKINFO, b"")).get(nl.IFLA_INFO_KIND, b"")
        if lower and struct.unpack("=I", lower[:4])[0] == index and kind.startswith(b"macvlan"):
            macs.append(":".join(f"{b:02x}" for b in a.get(nl.IFLA_ADDRESS, b"")))
    with space.ns.entered(), open("/proc/thread-self/net/dev_mcast") as fh:
        groups = [
            ":".join(f[4][i : i + 2] for i in range(0, 12, 2))
            for f in (line.split() for line in fh)
            if len(f) >= 5 and f[0] == str(index)
        ]
    return RxFilter(
        bool(flags & IFF_PROMISC),
        bool(flags & IFF_ALLMULTI),
        promiscuity,
        tuple(macs),
        tuple(groups),
    )


class ReceiveFilter:
    """The receive-filter words of an endpoint that is an interface of its own (see the module).

    A class using it says where its interface is (:meth:`_rx_target`) and how IPv6 is turned on
    there (:meth:`_rx_enable_ipv6`); the lab's lock is taken by each call.
    """

    switch: Switch
    name: str
    _guard: LabGuard

    def rx_target(self) -> tuple[Namespace, int, str]:
        """(namespace, ifindex, ifname) of the interface."""
        raise NotImplementedError

    def rx_enable_ipv6(self) -> None:
        """Turn IPv6 on for the interface (an IPv6 join needs it)."""
        raise NotImplementedError

    def _rx_memberships(self) -> dict[str, Any]:
        found: dict[str, Any] | None = getattr(self, "_joined", None)
        if found is None:
            found = {}
            self._joined = found
        return found

    def _set_flag(self, flag: int, on: object, what: str) -> None:
        from vlab import validate

        on = validate.flag(on, f"{self.name}: {what}(on)")
        space, index, ifname = self.rx_target()
        body = nl.IFINFO.pack(0, 0, index, flag if on else 0, flag)
        try:
            space.rtnl.request(nl.RTM_NEWLINK, body)
        except OSError as exc:
            raise LabError(f"{self.name}: {what} on {ifname} refused: {exc.strerror}") from None

    @guarded
    def set_promisc(self, on: bool) -> None:
        """``ip link set DEV promisc on|off``: the device takes every frame (read back in
        :meth:`rx_filter`)."""
        self._set_flag(IFF_PROMISC, on, "set_promisc")

    @guarded
    def set_allmulti(self, on: bool) -> None:
        """``ip link set DEV allmulticast on|off``: the device takes every multicast frame."""
        self._set_flag(IFF_ALLMULTI, on, "set_allmulti")

    @guarded
    def add_mac(self, mac: str) -> None:
        """A secondary unicast address: a private macvlan upper with ``mac``, as the selftest
        makes; a device without unicast filtering (bridge, veth) turns promiscuous for it."""
        mac = normalize_mac(mac, f"{self.name} add_mac")
        space, index, ifname = self.rx_target()
        if mac in read(space, index).macs:
            raise LabError(f"{self.name}: {mac} is already a secondary address of {ifname}")
        name = f"mv{os.urandom(4).hex()}"  # 10 characters: never a name vlab gives its links
        flags = nl.NLM_F_REQUEST | nl.NLM_F_ACK | nl.RTM_NEWLINK_FLAGS
        try:
            space.rtnl.transact(nl.RTM_NEWLINK, flags, macvlan_body(name, mac, index))
        except OSError as exc:
            if exc.errno == 95:
                raise Unsupported(f"{self.name}: this kernel has no macvlan links") from None
            raise LabError(f"{self.name}: add_mac({mac}) on {ifname}: {exc.strerror}") from None
        self.switch.topology_changed()

    @guarded
    def del_mac(self, mac: str) -> None:
        """Remove a secondary unicast address added with :meth:`add_mac`."""
        mac = normalize_mac(mac, f"{self.name} del_mac")
        space, index, ifname = self.rx_target()
        for body in space.rtnl.dump(nl.RTM_GETLINK, nl.IFINFO.pack(0, 0, 0, 0, 0)):
            a = nl.attrs(body, nl.IFINFO.size)
            lower = a.get(IFLA_LINK)
            own = ":".join(f"{b:02x}" for b in a.get(nl.IFLA_ADDRESS, b""))
            if lower and struct.unpack("=I", lower[:4])[0] == index and own == mac:
                space.links.delete(struct.unpack_from("=i", body, 4)[0])
                return
        raise LabError(f"{self.name}: {mac} is not a secondary address of {ifname}")

    @guarded
    def join(self, group: str) -> None:
        """Join ``group`` on this interface: an IPv4 or IPv6 group as ``mreceive`` does (its MAC
        goes on the device's multicast list and the stack reports the membership), or a
        multicast MAC as ``ip maddress add`` does (the list only, no report)."""
        key, family, mreq = self._membership(group, "join")
        joined = self._rx_memberships()
        if key in joined:
            raise LabError(f"{self.name}: {key} is already joined; leave() it first")
        space, _index, ifname = self.rx_target()
        if family == socket.AF_INET6:
            self.rx_enable_ipv6()
        level, option = {  # by address family
            socket.AF_INET: (socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP),
            socket.AF_INET6: (socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP),
            socket.AF_PACKET: (SOL_PACKET, PACKET_ADD_MEMBERSHIP),
        }[socket.AddressFamily(family)]
        kind = socket.SOCK_RAW if family == socket.AF_PACKET else socket.SOCK_DGRAM
        with space.ns.entered():
            sock = socket.socket(family, kind | socket.SOCK_CLOEXEC, 0)
        try:
            sock.setsockopt(level, option, mreq)
        except OSError as exc:
            sock.close()
            raise LabError(f"{self.name}: cannot join {key} on {ifname}: {exc.strerror}") from None
        member = _Membership(sock)
        joined[key] = member
        self.switch.own_socket(member)  # closed with the lab

    def _membership(self, group: object, what: str) -> tuple[str, int, bytes]:
        """(key, address family, the membership request) for an IP group or multicast MAC."""
        _space, index, _ifname = self.rx_target()
        if isinstance(group, str) and group.count(":") == 5 and "::" not in group:
            mac = normalize_mac(group, f"{self.name} {what}")
            if not int(mac[:2], 16) & 1:
                raise LabError(f"{self.name} {what}: {mac} is not a multicast MAC")
            mreq = struct.pack("=iHH8s", index, PACKET_MR_MULTICAST, 6, nl.mac_bytes(mac))
            return mac, socket.AF_PACKET, mreq
        addr = _group(group, f"{self.name} {what}")
        if addr.version == 4:  # struct ip_mreqn
            return str(addr), socket.AF_INET, addr.packed + bytes(4) + struct.pack("=i", index)
        return str(addr), socket.AF_INET6, addr.packed + struct.pack("=I", index)

    @guarded
    def leave(self, group: str) -> None:
        """Leave a group (or multicast MAC) joined with :meth:`join`."""
        key = self._membership(group, "leave")[0]
        member = self._rx_memberships().pop(key, None)
        if member is None:
            raise LabError(f"{self.name}: {key} is not joined here")
        self.switch.sockets.remove(member)
        member.close()

    @guarded
    def rx_filter(self) -> RxFilter:
        """The interface's receive filter, read back from the kernel."""
        space, index, _ifname = self.rx_target()
        return read(space, index)
