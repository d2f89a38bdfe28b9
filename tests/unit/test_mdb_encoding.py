"""MDB messages: the request encoder's struct layout and the dump decoder, on hand-built
kernel-format messages (the lab tests compare with iproute2 on a real kernel)."""

from __future__ import annotations

import ipaddress
import struct

import pytest

from vlab import LabError, mdb
from vlab import rtnl as nl


def test_set_body_layout() -> None:
    body = mdb.set_body(2, 5, "239.1.1.1", permanent=True)
    family, bridge = struct.unpack_from("=BxxxI", body)
    assert (family, bridge) == (nl.AF_BRIDGE, 2)
    entry = nl.attrs(body, 8)[mdb.MDBA_SET_ENTRY]
    assert len(entry) == 28
    ifindex, state, _flags, vid = struct.unpack_from("=IBBH", entry)
    assert (ifindex, state, vid) == (5, mdb.MDB_PERMANENT, 0)
    assert entry[8:12] == ipaddress.ip_address("239.1.1.1").packed
    assert entry[24:26] == b"\x08\x00"  # htons(ETH_P_IP)


def test_set_body_source_list_and_mode() -> None:
    body = mdb.set_body(2, 5, "ff0e::1", False, None, ("2001:db8::1", "2001:db8::2"), "include")
    extra = nl.attrs(nl.attrs(body, 8)[mdb.MDBA_SET_ENTRY_ATTRS])
    assert extra[mdb.MDBE_ATTR_GROUP_MODE] == bytes([mdb.MCAST_INCLUDE])
    items = mdb._items(extra[mdb.MDBE_ATTR_SRC_LIST])
    got = [nl.attrs(payload)[mdb.MDBE_SRCATTR_ADDRESS] for _kind, payload in items]
    assert got == [ipaddress.ip_address(a).packed for a in ("2001:db8::1", "2001:db8::2")]


def dump_message(bridge: int, infos: list[bytes]) -> bytes:
    entry = b"".join(nl.nla(mdb.MDBA_MDB_ENTRY_INFO, info) for info in infos)
    top = nl.nla(mdb.MDBA_MDB | nl.NLA_F_NESTED, nl.nla(mdb.MDBA_MDB_ENTRY, entry))
    return struct.pack("=BxxxI", nl.AF_BRIDGE, bridge) + top


def info(port: int, group: str, state: int, *attrs: bytes) -> bytes:
    addr, proto = mdb.group_key(group)
    raw = struct.pack("=IBBH16sH2x", port, state, 0, 0, addr, mdb.socket_order(proto))
    return raw + b"".join(attrs)


def test_decode_entries_of_one_bridge() -> None:
    src = nl.nla(
        mdb.MDBA_MDB_SRCLIST_ENTRY,
        nl.nla(mdb.MDBA_MDB_SRCATTR_ADDRESS, ipaddress.ip_address("192.0.2.1").packed)
        + nl.nla(mdb.MDBA_MDB_SRCATTR_TIMER, struct.pack("=I", 25000)),
    )
    first = info(
        5,
        "239.1.1.1",
        mdb.MDB_TEMPORARY,
        nl.nla(mdb.MDBA_MDB_EATTR_TIMER, struct.pack("=I", 12345)),
        nl.nla(mdb.MDBA_MDB_EATTR_SRC_LIST, src),
        nl.nla(mdb.MDBA_MDB_EATTR_GROUP_MODE, bytes([mdb.MCAST_INCLUDE])),
        nl.nla(mdb.MDBA_MDB_EATTR_RTPROT, bytes([2])),
    )
    second = info(2, "ff0e::1", mdb.MDB_PERMANENT)
    other_bridge = dump_message(9, [info(7, "239.9.9.9", 1)])
    entries = mdb.decode(
        [dump_message(2, [first, second]), other_bridge], 2, {5: "vnet0", 2: "br0"}
    )
    assert [e.group for e in entries] == ["239.1.1.1", "ff0e::1"]
    a, b = entries
    assert (a.port, a.permanent, a.timer, a.mode, a.protocol) == (
        "vnet0",
        False,
        123.45,
        "include",
        "kernel",
    )
    assert a.sources == (mdb.Source("192.0.2.1", 250.0),)
    assert (b.port, b.state, b.mode, b.protocol) == ("br0", "permanent", None, "static")


@pytest.mark.parametrize(
    ("group", "kw", "text"),
    [
        ("192.0.2.1", {}, "not a multicast"),
        (7, {}, "give a multicast"),
        ("239.1.1.1", {"mode": "both"}, "mode="),
        ("239.1.1.1", {"sources": "192.0.2.1"}, "list of source"),
        ("239.1.1.1", {"source": "nope"}, "not an IP"),
        ("239.1.1.1", {"permanent": 1}, "True or False"),
    ],
)
def test_request_validation(group: object, kw: dict[str, object], text: str) -> None:
    args = {"permanent": True, "source": None, "sources": None, "mode": None} | kw
    with pytest.raises(LabError, match=text):
        mdb.request(2, 5, group, args["permanent"], args["source"], args["sources"], args["mode"])


def test_l2_group_is_a_mac() -> None:
    addr, proto = mdb.group_key("01:00:5e:01:02:03")
    assert proto == 0 and addr[:6] == bytes.fromhex("01005e010203")
