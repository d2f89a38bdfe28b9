"""The bridge's multicast database over raw rtnetlink: what ``bridge mdb`` shows and changes.

pyroute2 has no MDB support; the kernel's messages are small and stable (``struct
br_port_msg`` then nested MDBA_* attributes, each entry a ``struct br_mdb_entry`` followed by
its own attributes), so they are encoded and decoded here, with every field a test asserts on:
port, group, source list, filter mode, timer, permanent or temporary, and who installed it.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vlab import rtnl as nl
from vlab.errors import LabError

if TYPE_CHECKING:
    from vlab.bridge import Bridge

RTM_NEWMDB, RTM_DELMDB, RTM_GETMDB = 84, 85, 86
MDBA_MDB, MDBA_ROUTER = 1, 2
MDBA_MDB_ENTRY = 1
MDBA_MDB_ENTRY_INFO = 1
MDBA_MDB_EATTR_TIMER, MDBA_MDB_EATTR_SRC_LIST = 1, 2
MDBA_MDB_EATTR_GROUP_MODE, MDBA_MDB_EATTR_SOURCE, MDBA_MDB_EATTR_RTPROT = 3, 4, 5
MDBA_MDB_SRCLIST_ENTRY = 1
MDBA_MDB_SRCATTR_ADDRESS, MDBA_MDB_SRCATTR_TIMER = 1, 2
MDBA_SET_ENTRY, MDBA_SET_ENTRY_ATTRS = 1, 2
MDBE_ATTR_SOURCE, MDBE_ATTR_SRC_LIST, MDBE_ATTR_GROUP_MODE = 1, 2, 3
MDBE_SRC_LIST_ENTRY = 1
MDBE_SRCATTR_ADDRESS = 1
MDB_TEMPORARY, MDB_PERMANENT = 0, 1
MDB_FLAGS_OFFLOAD, MDB_FLAGS_FAST_LEAVE, MDB_FLAGS_STAR_EXCL, MDB_FLAGS_BLOCKED = 1, 2, 4, 8
MCAST_EXCLUDE, MCAST_INCLUDE = 0, 1
ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
RTPROT = {2: "kernel", 3: "boot", 4: "static"}
USER_HZ = 100  # the kernel reports MDB timers in clock ticks of 1/100 s

_PORT_MSG = struct.Struct("=BxxxI")
_ENTRY = struct.Struct("=IBBH16sH2x")  # struct br_mdb_entry: 28 bytes


@dataclass(frozen=True)
class Source:
    """One source of a (*, G) entry's source list and its timer (seconds)."""

    address: str
    timer: float


@dataclass(frozen=True)
class MdbEntry:
    """One row of ``bridge mdb show``: a port (or the bridge itself) joined to a group."""

    port: str  # port name, or the bridge's own name for a host join
    group: str  # IPv4/IPv6 group or, for L2 entries, a MAC
    permanent: bool
    source: str | None = None  # the S of an (S, G) entry
    sources: tuple[Source, ...] = field(default=())
    mode: str | None = None  # "include" / "exclude" (IGMPv3/MLDv2); None on v2 entries
    timer: float = 0.0  # seconds until a temporary entry expires
    protocol: str = "static"  # who installed it: static (user), kernel (snooping)...
    flags: int = 0  # MDB_FLAGS_*: offload, fast_leave, star_excl, blocked
    vlan: int | None = None  # the entry's VLAN on a VLAN-aware bridge (None: no VLAN)

    @property
    def state(self) -> str:
        return "permanent" if self.permanent else "temp"


def _addr(raw: bytes, proto: int) -> str:
    if proto == ETH_P_IP:
        return str(ipaddress.IPv4Address(raw[:4]))
    if proto == ETH_P_IPV6:
        return str(ipaddress.IPv6Address(raw[:16]))
    return ":".join(f"{b:02x}" for b in raw[:6])


def _u32(raw: bytes | None) -> int:
    return int(struct.unpack("=I", raw[:4])[0]) if raw else 0


def _items(buf: bytes) -> list[tuple[int, bytes]]:
    """Attributes in order, repeats kept (an MDB nest repeats its entry type)."""
    out, offset = [], 0
    while offset + 4 <= len(buf):
        length, kind = struct.unpack_from("=HH", buf, offset)
        if length < 4:
            break
        out.append((kind & 0x3FFF, buf[offset + 4 : offset + length]))
        offset += (length + 3) & ~3
    return out


def decode_info(info: bytes, names: dict[int, str]) -> MdbEntry:
    """One MDBA_MDB_ENTRY_INFO payload: the struct, then its attributes."""
    ifindex, state, flags, vid, addr, raw_proto = _ENTRY.unpack_from(info)
    proto = socket_order(raw_proto)
    a = nl.attrs(info, _ENTRY.size)
    sources = []
    for _kind, src in _items(a.get(MDBA_MDB_EATTR_SRC_LIST, b"")):
        sa = nl.attrs(src)
        address = sa.get(MDBA_MDB_SRCATTR_ADDRESS, b"")
        text = str(ipaddress.ip_address(address)) if len(address) in (4, 16) else address.hex()
        sources.append(Source(text, _u32(sa.get(MDBA_MDB_SRCATTR_TIMER)) / USER_HZ))
    mode = a.get(MDBA_MDB_EATTR_GROUP_MODE)
    source = a.get(MDBA_MDB_EATTR_SOURCE)
    rtprot = a.get(MDBA_MDB_EATTR_RTPROT)
    return MdbEntry(
        port=names.get(ifindex, f"ifindex {ifindex}"),
        group=_addr(addr, proto),
        permanent=state == MDB_PERMANENT,
        source=str(ipaddress.ip_address(source)) if source else None,
        sources=tuple(sorted(sources, key=lambda s: s.address)),
        mode=None if mode is None else ("include" if mode[0] == MCAST_INCLUDE else "exclude"),
        timer=_u32(a.get(MDBA_MDB_EATTR_TIMER)) / USER_HZ,
        protocol=RTPROT.get(rtprot[0], str(rtprot[0])) if rtprot else "static",
        flags=flags,
        vlan=vid or None,
    )


def decode(bodies: list[bytes], bridge_index: int, names: dict[int, str]) -> list[MdbEntry]:
    """Every MDB entry of one bridge from an RTM_GETMDB dump's message bodies."""
    out = []
    for body in bodies:
        _family, index = _PORT_MSG.unpack_from(body)
        if index != bridge_index:
            continue
        top = nl.attrs(body, _PORT_MSG.size)
        for _k, entry in _items(top.get(MDBA_MDB, b"")):
            for kind, info in _items(entry):
                if kind == MDBA_MDB_ENTRY_INFO:
                    out.append(decode_info(info, names))
    return out


def dump(rtnl: nl.Rtnl, bridge_index: int, names: dict[int, str]) -> list[MdbEntry]:
    bodies = rtnl.dump(RTM_GETMDB, _PORT_MSG.pack(nl.AF_BRIDGE, 0))
    return decode(bodies, bridge_index, names)


def group_key(group: str) -> tuple[bytes, int]:
    """``(16-byte address field, protocol)`` of an IPv4/IPv6 group or an L2 MAC group."""
    if group.count(":") == 5 and all(len(p) == 2 for p in group.split(":")):
        return nl.mac_bytes(group).ljust(16, b"\0"), 0
    addr = ipaddress.ip_address(group)
    proto = ETH_P_IP if addr.version == 4 else ETH_P_IPV6
    return addr.packed.ljust(16, b"\0"), proto


def set_body(
    bridge_index: int,
    port_index: int,
    group: str,
    permanent: bool = True,
    source: str | None = None,
    sources: tuple[str, ...] | None = None,
    mode: str | None = None,
    vlan: int | None = None,
) -> bytes:
    """RTM_NEWMDB/RTM_DELMDB body: ``bridge mdb add dev BR port P grp G [src S] [permanent]
    [filter_mode M] [source_list S1,S2] [vid V]``."""
    addr, proto = group_key(group)
    state = MDB_PERMANENT if permanent else MDB_TEMPORARY
    entry = _ENTRY.pack(port_index, state, 0, vlan or 0, addr, socket_order(proto))
    extra = b""
    if source is not None:
        extra += nl.nla(MDBE_ATTR_SOURCE, ipaddress.ip_address(source).packed)
    if sources is not None:
        items = b"".join(
            nl.nla(
                MDBE_SRC_LIST_ENTRY | nl.NLA_F_NESTED,
                nl.nla(MDBE_SRCATTR_ADDRESS, ipaddress.ip_address(s).packed),
            )
            for s in sources
        )
        extra += nl.nla(MDBE_ATTR_SRC_LIST | nl.NLA_F_NESTED, items)
    if mode is not None:
        value = MCAST_INCLUDE if mode == "include" else MCAST_EXCLUDE
        extra += nl.nla(MDBE_ATTR_GROUP_MODE, bytes([value]))
    body = _PORT_MSG.pack(nl.AF_BRIDGE, bridge_index) + nl.nla(MDBA_SET_ENTRY, entry)
    if extra:
        body += nl.nla(MDBA_SET_ENTRY_ATTRS | nl.NLA_F_NESTED, extra)
    return body


def with_vlan(body: bytes, vlan: int) -> bytes:
    """A :func:`set_body` with the entry's VLAN set (``struct br_mdb_entry.vid``)."""
    offset = _PORT_MSG.size + 4 + 6  # the entry nla's header, then ifindex, state and flags
    return body[:offset] + struct.pack("=H", vlan) + body[offset + 2 :]


def socket_order(proto: int) -> int:
    """The entry's protocol is big-endian (``htons(ETH_P_IP)``) inside a native-order struct."""
    return int(struct.unpack("=H", struct.pack("!H", proto))[0])


def add(rtnl: nl.Rtnl, body: bytes, replace: bool = False) -> None:
    flags = nl.NLM_F_REQUEST | nl.NLM_F_ACK | 0x400 | (0x100 if replace else 0x200)
    rtnl.transact(RTM_NEWMDB, flags, body)


def delete(rtnl: nl.Rtnl, body: bytes) -> None:
    rtnl.request(RTM_DELMDB, body)


def request(
    bridge_index: int,
    port_index: int,
    group: object,
    permanent: object,
    source: object,
    sources: object,
    mode: object,
) -> bytes:
    """A validated :func:`set_body`: every wrong argument is a LabError naming the fix."""
    if not isinstance(group, str):
        raise LabError(f"mdb group {group!r}: give a multicast IP ('239.1.1.1', 'ff0e::1') or MAC")
    try:
        _addr16, proto = group_key(group)
    except ValueError:
        raise LabError(f"mdb group {group!r} is not an IP address or a MAC") from None
    if proto and not ipaddress.ip_address(group).is_multicast:
        raise LabError(f"mdb group {group}: not a multicast address (224.0.0.0/4, ff00::/8)")
    if not isinstance(permanent, bool):
        raise LabError(f"mdb permanent={permanent!r}: give True or False")
    if mode not in (None, "include", "exclude"):
        raise LabError(f"mdb mode={mode!r}: give 'include' or 'exclude'")
    srcs: tuple[str, ...] | None = None
    if sources is not None:
        if isinstance(sources, str) or not isinstance(sources, list | tuple):
            raise LabError(f"mdb sources={sources!r}: give a list of source addresses")
        srcs = tuple(sources)
    for value in ([source] if source is not None else []) + list(srcs or ()):
        try:
            addr = ipaddress.ip_address(value)  # type: ignore[arg-type]
        except ValueError:
            raise LabError(f"mdb source {value!r} is not an IP address") from None
        if proto and addr.version != ipaddress.ip_address(group).version:
            raise LabError(f"mdb source {value} and group {group} are not the same IP version")
    return set_body(
        bridge_index, port_index, group, permanent, str_or_none(source), srcs, str_or_none(mode)
    )


def str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def refused(what: str, group: str, endpoint: object, exc: OSError) -> LabError:
    name = getattr(endpoint, "name", endpoint)
    hint = ""
    if exc.errno == 22:  # EINVAL
        hint = (
            "; source lists and filter modes need multicast_igmp_version=3 / "
            "multicast_mld_version=2, and snooping must be on"
        )
    return LabError(f"mdb {what} {group} on {name}: the kernel refused: {exc.strerror}{hint}")


def has_link_local(rtnl: nl.Rtnl, index: int) -> bool:
    """Whether a device has an IPv6 link-local address (what MLD queries are sent from)."""
    return any(
        i == index and len(a) == 16 and a[:2] == b"\xfe\x80" and not f & nl.IFA_F_TENTATIVE
        for i, a, _, f in nl.addr_dump(rtnl)
    )


READ_ONLY_PORT = {  # IFLA_BRPORT_*: counters and identities the kernel reports, never takes
    "port_id": 17,
    "port_no": 18,
    "designated_cost": 16,
    "mcast_n_groups": 41,
    "backup_port": 34,
}


def read_only_port(raw: dict[int, bytes], names: dict[int, str]) -> dict[str, object]:
    """The read-only attributes of a port's IFLA_INFO_SLAVE_DATA; backup_port as a name."""
    out: dict[str, object] = {}
    for key, kind in READ_ONLY_PORT.items():
        value = raw.get(kind)
        if value is None:
            continue
        number = int.from_bytes(value[:4], "little")  # u16 or u32, by what the kernel sent
        out[key] = names.get(number, number) if key == "backup_port" else number
    out.setdefault("backup_port", None)
    return out


def mdb_text(bridge: Bridge) -> list[str]:
    """A bridge's mdb for a failure report, next to its fdb (nothing when it is empty)."""
    entries = bridge.mdb()
    if not entries:
        return []
    lines = [f"mdb of {bridge.name}:"]
    for e in entries:
        group = f"({e.source}, {e.group})" if e.source else e.group
        extra = f" {e.mode}" if e.mode else ""
        if e.sources:
            extra += " sources " + ",".join(s.address for s in e.sources)
        timer = f" {e.timer:.2f} s" if not e.permanent else ""
        extra += f" vid {e.vlan}" if e.vlan is not None else ""
        lines.append(f"  {group} {e.port} {e.state}{timer} {e.protocol}{extra}")
    return lines
