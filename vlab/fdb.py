"""The whole bridge fdb over raw rtnetlink: every flag ``bridge fdb`` knows, and the timers.

``rtnl.fdb_dump`` reads the few fields forwarding assertions need; this reads the rest of an
entry (NDA_CACHEINFO's updated/used ages, extern_learn, offloaded, activity notification) and
adds entries the way ``bridge fdb add|replace ... [use] [extern_learn] [activity_notify]
[inactive] [norefresh]`` does.
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass

from vlab import rtnl as nl

NTF_USE = 0x01
NTF_OFFLOADED = 0x20
NUD_STALE = 0x04
NDA_VLAN = 5
NDA_FDB_EXT_ATTRS = 14
NFEA_ACTIVITY_NOTIFY, NFEA_DONT_REFRESH = 1, 2
FDB_NOTIFY_BIT, FDB_NOTIFY_INACTIVE_BIT = 0x1, 0x2
USER_HZ = 100  # nda_cacheinfo ages are in clock ticks of 1/100 s
_CACHEINFO = struct.Struct("=IIII")  # confirmed, used, updated, refcnt


@dataclass(frozen=True)
class Record:
    """One bridge fdb entry, every field the kernel reports."""

    mac: str
    ifindex: int
    master: int
    state: int
    flags: int
    ext: int
    used: float  # seconds since a frame was forwarded to it
    updated: float  # seconds since it was learnt or refreshed
    notify: int  # FDB_NOTIFY_* bits
    vlan: int | None = None  # the VLAN of the entry on a VLAN-aware bridge (NDA_VLAN)


def decode(body: bytes) -> Record | None:
    """One RTM_NEWNEIGH of an AF_BRIDGE dump; None for a device's own ("self") entries."""
    _family, ifindex, state, flags, _type = nl.NDMSG.unpack_from(body)
    a = nl.attrs(body, nl.NDMSG.size)
    lladdr, master = a.get(nl.NDA_LLADDR), a.get(nl.NDA_MASTER)
    if lladdr is None or master is None:
        return None
    ext = a.get(nl.NDA_FLAGS_EXT)
    cache = a.get(nl.NDA_CACHEINFO)
    _confirmed, used, updated, _ref = _CACHEINFO.unpack(cache[:16]) if cache else (0, 0, 0, 0)
    notify = nl.attrs(a.get(NDA_FDB_EXT_ATTRS, b"")).get(NFEA_ACTIVITY_NOTIFY)
    vlan = a.get(NDA_VLAN)
    return Record(
        mac=":".join(f"{b:02x}" for b in lladdr),
        ifindex=ifindex,
        master=struct.unpack("=I", master)[0],
        state=state,
        flags=flags,
        ext=struct.unpack("=I", ext)[0] if ext else 0,
        used=used / USER_HZ,
        updated=updated / USER_HZ,
        notify=notify[0] if notify else 0,
        vlan=struct.unpack_from("=H", vlan)[0] if vlan else None,
    )


def dump(rtnl: nl.Rtnl) -> list[Record]:
    """Every bridge fdb entry of the namespace, each once: kernels of 6.1 report an entry once
    through the bridge and once more through its port, which newer ones do not."""
    bodies = rtnl.dump(nl.RTM_GETNEIGH, nl.NDMSG.pack(nl.AF_BRIDGE, 0, 0, 0, 0))
    seen: dict[tuple[object, ...], Record] = {}
    for r in map(decode, bodies):
        if r is not None:  # the timers of the two copies may differ by a tick: not in the key
            seen.setdefault(dataclasses.astuple(dataclasses.replace(r, used=0, updated=0)), r)
    return list(seen.values())


def add_body(
    port_index: int,
    mac: str,
    static: bool,
    sticky: bool,
    use: bool = False,
    extern_learn: bool = False,
    activity_notify: bool = False,
    inactive: bool = False,
    norefresh: bool = False,
    vlan: int | None = None,
) -> bytes:
    """``bridge fdb replace MAC dev PORT master [static|dynamic] [sticky] [use]
    [extern_learn] [activity_notify] [inactive] [norefresh]``."""
    state = nl.NUD_NOARP if static else nl.NUD_REACHABLE
    flags = nl.NTF_MASTER | (nl.NTF_STICKY if sticky else 0)
    flags |= (NTF_USE if use else 0) | (nl.NTF_EXT_LEARNED if extern_learn else 0)
    body = nl.NDMSG.pack(nl.AF_BRIDGE, port_index, state, flags, 0)
    body += nl.nla(nl.NDA_LLADDR, nl.mac_bytes(mac))
    if vlan is not None:
        body += nl.nla(NDA_VLAN, struct.pack("=H", vlan))
    ext = b""
    bits = (FDB_NOTIFY_BIT if activity_notify else 0) | (FDB_NOTIFY_INACTIVE_BIT if inactive else 0)
    if bits:
        ext += nl.nla(NFEA_ACTIVITY_NOTIFY, bytes([bits]))
    if norefresh:
        ext += nl.nla(NFEA_DONT_REFRESH, b"")
    if ext:
        body += nl.nla(NDA_FDB_EXT_ATTRS | nl.NLA_F_NESTED, ext)
    return body


def delete_body(port_index: int, mac: str, vlan: int | None = None) -> bytes:
    """``bridge fdb del MAC dev PORT master [vlan VID]``."""
    body = nl.NDMSG.pack(nl.AF_BRIDGE, port_index, 0, nl.NTF_MASTER, 0)
    body += nl.nla(nl.NDA_LLADDR, nl.mac_bytes(mac))
    if vlan is not None:
        body += nl.nla(NDA_VLAN, struct.pack("=H", vlan))
    return body


def add(rtnl: nl.Rtnl, body: bytes) -> None:
    flags = nl.NLM_F_REQUEST | nl.NLM_F_ACK | 0x400 | 0x100  # CREATE | REPLACE
    rtnl.transact(nl.RTM_NEWNEIGH, flags, body)
