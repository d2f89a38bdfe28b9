"""RTM_NEWLINK requests for links stacked on other links: macvtap, vxlan, bond.

One request per link, as for every other lab link (:mod:`vlab.rtnl`): the link is created up,
with its name, MAC, MTU, queue length and lower device in the same message. The caller chooses
the ifindex so that it can use the link without a lookup.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from vlab.rtnl import (
    IFLA_INFO_DATA,
    IFLA_INFO_KIND,
    IFLA_LINKINFO,
    NLA_F_NESTED,
    NLM_F_ACK,
    NLM_F_REQUEST,
    LinkRequests,
    Rtnl,
    attrs,
    ifinfo,
    link_attrs,
    mac_bytes,
    nla,
)

IFLA_LINK = 5
IFLA_MACVLAN_MODE = 1
#: macvlan/macvtap modes (``enum macvlan_mode`` in include/uapi/linux/if_link.h)
MACVLAN_MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8}

IFLA_VXLAN_ID = 1
IFLA_VXLAN_LINK = 3
IFLA_VXLAN_LOCAL = 4
IFLA_VXLAN_TTL = 5
IFLA_VXLAN_LEARNING = 7
IFLA_VXLAN_PORT = 15  # network byte order
VXLAN_PORT_IANA = 4789

IFLA_BOND_MODE = 1
IFLA_BOND_MIIMON = 3
#: bonding modes (``BOND_MODE_*`` in include/net/bonding.h)
BOND_MODES = {"balance-rr": 0, "active-backup": 1, "balance-xor": 2, "broadcast": 3}


def _u32(value: int) -> bytes:
    return struct.pack("=I", value)


def _kind(kind: str, data: bytes) -> bytes:
    info = nla(IFLA_INFO_KIND, kind.encode() + b"\0")
    if data:
        info += nla(IFLA_INFO_DATA | NLA_F_NESTED, data)
    return nla(IFLA_LINKINFO | NLA_F_NESTED, info)


def add_macvtap(
    links: LinkRequests,
    name: str,
    index: int,
    lower: int,
    mode: str,
    mac: str,
    mtu: int | None,
    txqlen: int,
) -> None:
    """``ip link add link LOWER name NAME address MAC type macvtap mode MODE`` (up).

    ``txqlen`` is the length of the queue the char device reads from: the kernel sizes it
    from the link's queue length when the device is opened, so it is set here, first.
    """
    data = nla(IFLA_MACVLAN_MODE, _u32(MACVLAN_MODES[mode]))
    body = ifinfo(index, up=False) + link_attrs(name, mac, mtu, txqlen=txqlen)
    body += nla(IFLA_LINK, _u32(lower)) + _kind("macvtap", data)
    links.new(body, True)


def add_vxlan(
    links: LinkRequests,
    name: str,
    index: int,
    vni: int,
    local: str,
    dev: int,
    dstport: int,
    learning: bool,
    mtu: int | None,
    master: int | None,
    mac: str,
) -> None:
    """``ip link add NAME type vxlan id VNI local LOCAL dev DEV dstport PORT [nolearning]``,
    enslaved to ``master`` and up. Remote VTEPs are fdb entries (see :func:`vxlan_fdb_add`)."""
    data = nla(IFLA_VXLAN_ID, _u32(vni))
    data += nla(IFLA_VXLAN_LOCAL, ipaddress.IPv4Address(local).packed)
    data += nla(IFLA_VXLAN_LINK, _u32(dev))
    data += nla(IFLA_VXLAN_TTL, bytes([64]))
    data += nla(IFLA_VXLAN_LEARNING, bytes([int(learning)]))
    data += nla(IFLA_VXLAN_PORT, struct.pack("!H", dstport))
    body = ifinfo(index) + link_attrs(name, mac, mtu, master) + _kind("vxlan", data)
    links.new(body, True)


def add_bond(
    links: LinkRequests, name: str, index: int, mode: str, mac: str, miimon_ms: int
) -> None:
    """``ip link add NAME address MAC type bond mode MODE miimon MS`` (down: slaves join a
    bond that is down, then it is brought up)."""
    data = nla(IFLA_BOND_MODE, bytes([BOND_MODES[mode]]))
    data += nla(IFLA_BOND_MIIMON, _u32(miimon_ms))
    body = ifinfo(index, up=False) + link_attrs(name, mac) + _kind("bond", data)
    links.new(body, True)


NDA_DST = 1
NDA_LLADDR = 2
NDA_PORT = 6
NDA_VNI = 7
NDA_IFINDEX = 8
RTM_NEWNEIGH = 28
RTM_GETNEIGH = 30
AF_BRIDGE = 7
NTF_SELF = 0x02
NUD_PERMANENT = 0x80
NUD_NOARP = 0x40
NLM_F_CREATE = 0x400
NLM_F_APPEND = 0x800
_NDMSG = struct.Struct("=BxxxiHBB")
ALL_ZEROS = "00:00:00:00:00:00"


@dataclass(frozen=True)
class VtepEntry:
    """One entry of a vxlan device's own fdb: where frames for ``mac`` are sent.

    ``mac`` 00:00:00:00:00:00 is the default entry: broadcast, multicast and unknown unicast
    go to every such remote (head-end replication). ``vni``/``port`` are None when the entry
    uses the device's own.
    """

    mac: str
    dst: str
    vni: int | None
    port: int | None
    permanent: bool


def vtep_add(rtnl: Rtnl, index: int, mac: str, dst: str) -> None:
    """``bridge fdb append MAC dev VXLAN dst DST`` (self, permanent): one more remote."""
    body = _NDMSG.pack(AF_BRIDGE, index, NUD_PERMANENT | NUD_NOARP, NTF_SELF, 0)
    body += nla(NDA_LLADDR, mac_bytes(mac)) + nla(NDA_DST, ipaddress.ip_address(dst).packed)
    rtnl.transact(RTM_NEWNEIGH, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND, body)


def vtep_dump(rtnl: Rtnl, index: int) -> list[VtepEntry]:
    """The device's own fdb (``bridge fdb show dev VXLAN self``): entries with a remote."""
    out = []
    for body in rtnl.dump(RTM_GETNEIGH, _NDMSG.pack(AF_BRIDGE, 0, 0, 0, 0)):
        _family, ifindex, state, flags, _type = _NDMSG.unpack_from(body)
        a = attrs(body, _NDMSG.size)
        if ifindex != index or not flags & NTF_SELF or NDA_DST not in a or NDA_LLADDR not in a:
            continue
        vni = struct.unpack("=I", a[NDA_VNI])[0] if NDA_VNI in a else None
        port = struct.unpack("!H", a[NDA_PORT])[0] if NDA_PORT in a else None
        out.append(
            VtepEntry(
                ":".join(f"{b:02x}" for b in a[NDA_LLADDR]),
                str(ipaddress.ip_address(a[NDA_DST])),
                vni,
                port,
                bool(state & NUD_PERMANENT),
            )
        )
    return out


__all__ = [
    "ALL_ZEROS",
    "BOND_MODES",
    "MACVLAN_MODES",
    "VXLAN_PORT_IANA",
    "VtepEntry",
    "add_bond",
    "add_macvtap",
    "add_vxlan",
    "vtep_add",
    "vtep_dump",
]
