"""The two dumps host inspection needs: every link, and every bridge's forwarding database.

One RTM_GETLINK dump carries all of it for links — kind, tun/tap type and attached queues
(IFLA_TUN_*), macvtap mode and lower device, bridge master and the port's STP state
(IFLA_INFO_SLAVE_DATA) — and one AF_BRIDGE RTM_GETNEIGH dump every fdb entry of every bridge
with its VLAN (NDA_VLAN) and age (NDA_CACHEINFO). Two requests whatever the number of bridges
and taps: the article's way (``brctl showmacs`` bridge by bridge) costs a process per bridge.
Only dumps are sent; nothing here can change the namespace it reads.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from vlab.options import PORT_STATE_NAMES
from vlab.rtnl import (
    AF_BRIDGE,
    IFLA_ADDRESS,
    IFLA_IFNAME,
    IFLA_INFO_DATA,
    IFLA_INFO_KIND,
    IFLA_LINKINFO,
    IFLA_MASTER,
    IFLA_MTU,
    IFLA_OPERSTATE,
    NDA_CACHEINFO,
    NDA_FLAGS_EXT,
    NDA_LLADDR,
    NDA_MASTER,
    NTF_EXT_LEARNED,
    NTF_EXT_LOCKED,
    NTF_STICKY,
    NUD_NOARP,
    NUD_PERMANENT,
    RTM_GETLINK,
    RTM_GETNEIGH,
    Rtnl,
    attrs,
    nla,
    pick,
)

__all__ = ["FdbRecord", "Link", "dump_fdb", "dump_links", "parse_fdb", "parse_link"]

_IFINFO = struct.Struct("=BxHiII")
_NDMSG = struct.Struct("=BxxxiHBB")
IFLA_LINK = 5
IFLA_INFO_SLAVE_KIND = 4
IFLA_INFO_SLAVE_DATA = 5
IFLA_BRPORT_STATE = 1
IFLA_TUN_OWNER = 1
IFLA_TUN_TYPE = 3
IFLA_TUN_PERSIST = 6
IFLA_TUN_MULTI_QUEUE = 7
IFLA_TUN_NUM_QUEUES = 8
IFLA_MACVLAN_MODE = 1
NDA_VLAN = 5
NTF_OFFLOADED = 0x20
NTF_ROUTER = 0x80
OPER = {0: "unknown", 1: "notpresent", 2: "down", 3: "lowerlayerdown", 5: "dormant", 6: "up"}
TUN_TYPES = {1: "tun", 2: "tap"}
MACVLAN_MODES = {1: "private", 2: "vepa", 4: "bridge", 8: "passthru", 16: "source"}


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    mac: str
    kind: str  # IFLA_INFO_KIND: bridge, tun, macvtap, veth, ... ("" for lo, physical NICs)
    master: int  # ifindex of the bridge (or bond) it is enslaved to, 0 if none
    lower: int  # IFLA_LINK: a macvtap's lower device, a veth's peer index (0 if none)
    oper: str
    mtu: int
    port_state: str | None = None  # STP state, when a bridge port
    tun_type: str | None = None  # "tap" or "tun", for kind "tun"
    tun_queues: int | None = None  # fds attached now (0: nobody holds it, no carrier)
    tun_persist: bool | None = None
    tun_multi_queue: bool | None = None
    tun_owner: int | None = None  # uid allowed to attach, when set (TUNSETOWNER)
    macvtap_mode: str | None = None

    @property
    def is_tap(self) -> bool:
        """A VM's host-side NIC end: a tap (tun in TAP mode) or a macvtap."""
        return self.kind == "macvtap" or (self.kind == "tun" and self.tun_type == "tap")


@dataclass(frozen=True)
class FdbRecord:
    mac: str
    port: int  # ifindex of the port (the bridge's own index for its own entries)
    bridge: int  # NDA_MASTER
    vlan: int | None
    how: str  # local, static, learnt, extern_learn
    flags: tuple[str, ...]  # sticky, offload, router, locked
    updated: float | None  # seconds since a frame from this MAC last refreshed it
    used: float | None  # seconds since it last forwarded a frame


def _u32(raw: bytes | None) -> int | None:
    return struct.unpack_from("=I", raw)[0] if raw and len(raw) >= 4 else None


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


_LINK_ATTRS = frozenset(
    (IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER, IFLA_OPERSTATE, IFLA_LINKINFO)
)

_INFO_ATTRS = frozenset(
    (IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_INFO_SLAVE_KIND, IFLA_INFO_SLAVE_DATA)
)
_PORT_ATTRS = frozenset((IFLA_BRPORT_STATE,))


def parse_link(body: bytes) -> Link:
    """One RTM_NEWLINK message of a dump (the ifinfomsg and its attributes)."""
    (index,) = struct.unpack_from("=i", body, 4)
    a = pick(body, _IFINFO.size, _LINK_ATTRS)
    info = pick(a.get(IFLA_LINKINFO, b""), 0, _INFO_ATTRS)
    kind = info.get(IFLA_INFO_KIND, b"").rstrip(b"\0").decode(errors="replace")
    data = attrs(info.get(IFLA_INFO_DATA, b"")) if kind in ("tun", "macvtap") else {}
    port_state = None
    if info.get(IFLA_INFO_SLAVE_KIND, b"").rstrip(b"\0") == b"bridge":
        slave = pick(info.get(IFLA_INFO_SLAVE_DATA, b""), 0, _PORT_ATTRS)
        raw_state = slave.get(IFLA_BRPORT_STATE)
        if raw_state:
            port_state = str(PORT_STATE_NAMES.get(raw_state[0], raw_state[0]))
    extra: dict[str, object] = {}
    if kind == "tun":
        raw_type = data.get(IFLA_TUN_TYPE)
        extra["tun_type"] = TUN_TYPES.get(raw_type[0], str(raw_type[0])) if raw_type else None
        extra["tun_queues"] = _u32(data.get(IFLA_TUN_NUM_QUEUES))
        if IFLA_TUN_PERSIST in data:
            extra["tun_persist"] = data[IFLA_TUN_PERSIST][:1] == b"\x01"
        if IFLA_TUN_MULTI_QUEUE in data:
            extra["tun_multi_queue"] = data[IFLA_TUN_MULTI_QUEUE][:1] == b"\x01"
        extra["tun_owner"] = _u32(data.get(IFLA_TUN_OWNER))
    elif kind == "macvtap":
        mode = _u32(data.get(IFLA_MACVLAN_MODE))
        extra["macvtap_mode"] = MACVLAN_MODES.get(mode, str(mode)) if mode is not None else None
    return Link(
        index=index,
        name=a.get(IFLA_IFNAME, b"\0").rstrip(b"\0").decode(errors="replace"),
        mac=_mac(a.get(IFLA_ADDRESS, b"")),
        kind=kind,
        master=_u32(a.get(IFLA_MASTER)) or 0,
        lower=_u32(a.get(IFLA_LINK)) or 0,
        oper=OPER.get(a.get(IFLA_OPERSTATE, b"\0")[0], "?"),
        mtu=_u32(a.get(IFLA_MTU)) or 0,
        port_state=port_state,
        **extra,  # type: ignore[arg-type]
    )


IFLA_EXT_MASK = 29
RTEXT_FILTER_SKIP_STATS = 1 << 3


def dump_links(rtnl: Rtnl) -> list[Link]:
    """Every link; without its counters (RTEXT_FILTER_SKIP_STATS), a third of each message."""
    body = _IFINFO.pack(0, 0, 0, 0, 0) + nla(
        IFLA_EXT_MASK, struct.pack("=I", RTEXT_FILTER_SKIP_STATS)
    )
    return [parse_link(msg) for msg in rtnl.dump(RTM_GETLINK, body)]


def parse_fdb(body: bytes, ticks: int) -> FdbRecord | None:
    """One AF_BRIDGE neighbour message; None for a device's own address-list entries ("self",
    no master: not the bridge's forwarding table)."""
    _family, ifindex, state, flags, _type = _NDMSG.unpack_from(body)
    a = attrs(body, _NDMSG.size)
    lladdr, master = a.get(NDA_LLADDR), _u32(a.get(NDA_MASTER))
    if lladdr is None or master is None:
        return None
    if state & NUD_PERMANENT:
        how = "local"
    elif state & NUD_NOARP:
        how = "static"
    elif flags & NTF_EXT_LEARNED:
        how = "extern_learn"
    else:
        how = "learnt"
    ext = _u32(a.get(NDA_FLAGS_EXT)) or 0
    named = (
        ("sticky", flags & NTF_STICKY),
        ("offload", flags & NTF_OFFLOADED),
        ("router", flags & NTF_ROUTER),
        ("extern_learn", flags & NTF_EXT_LEARNED and how != "extern_learn"),
        ("locked", ext & NTF_EXT_LOCKED),
    )
    vlan_raw = a.get(NDA_VLAN)
    cache = a.get(NDA_CACHEINFO)
    updated = used = None
    if cache and len(cache) >= 16:
        _confirmed, used_t, updated_t, _refcnt = struct.unpack_from("=IIII", cache)
        used, updated = used_t / ticks, updated_t / ticks
    return FdbRecord(
        mac=_mac(lladdr),
        port=ifindex,
        bridge=master,
        vlan=struct.unpack_from("=H", vlan_raw)[0] if vlan_raw and len(vlan_raw) >= 2 else None,
        how=how,
        flags=tuple(name for name, on in named if on),
        updated=updated,
        used=used,
    )


def dump_fdb(rtnl: Rtnl) -> list[FdbRecord]:
    """Every bridge's fdb in one dump; ages in seconds (the kernel reports USER_HZ ticks)."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = []
    for body in rtnl.dump(RTM_GETNEIGH, _NDMSG.pack(AF_BRIDGE, 0, 0, 0, 0)):
        entry = parse_fdb(body, ticks)
        if entry is not None:
            out.append(entry)
    return out
