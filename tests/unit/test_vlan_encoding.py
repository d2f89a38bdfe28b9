"""VLAN arguments and their netlink, without a kernel: ranges, options, message layouts."""

from __future__ import annotations

import struct

import pytest

from vlab import LabError
from vlab import mdb as mdblib
from vlab import vlan as vlanlib
from vlab.options import (
    BRIDGE_OPTIONS,
    IFLA_BR_MULTI_BOOLOPT,
    encode_bridge,
    pack_data,
    unpack_data,
)
from vlab.rtnl import attrs, nla


@pytest.mark.parametrize(
    ("value", "ranges"),
    [
        (10, [(10, 10)]),
        ("10-20", [(10, 20)]),
        (" 7 ", [(7, 7)]),
        (range(10, 21), [(10, 20)]),
        ([30, "10-12", 13, range(1, 3)], [(1, 2), (10, 13), (30, 30)]),
        ({5, 6}, [(5, 6)]),
    ],
)
def test_vid_ranges(value: object, ranges: list[tuple[int, int]]) -> None:
    assert vlanlib.vid_ranges(value, "x") == ranges


@pytest.mark.parametrize("value", [0, 4095, -1, True, 1.0, "1-4095", "a-b", range(5, 5), []])
def test_vid_ranges_refuse(value: object) -> None:
    with pytest.raises(LabError):
        vlanlib.vid_ranges(value, "x")


def test_one_pvid() -> None:
    assert vlanlib.check_membership([(10, 10)], True, 1, "x") == (True, True)
    with pytest.raises(LabError, match="one PVID"):
        vlanlib.check_membership([(10, 11)], True, False, "x")


def test_vlan_bridge_options_round_trip_and_share_one_boolopt() -> None:
    enc = encode_bridge(
        {"default_pvid": 7, "vlan_protocol": "802.1ad", "multicast_vlan_snooping": True,
         "no_linklocal_learn": True}
    )  # fmt: skip
    data = pack_data(BRIDGE_OPTIONS, enc)
    raw = attrs(data)
    assert raw[8] == b"\x88\xa8"  # network order, as the kernel wants it
    assert struct.unpack("=II", raw[IFLA_BR_MULTI_BOOLOPT]) == (0b11, 0b11)
    assert data.count(struct.pack("=HH", 12, IFLA_BR_MULTI_BOOLOPT)) == 1  # one attribute
    back = unpack_data(BRIDGE_OPTIONS, raw)
    assert back["default_pvid"] == 7 and back["vlan_protocol"] == "802.1ad"
    assert back["multicast_vlan_snooping"] and back["no_linklocal_learn"]
    with pytest.raises(LabError, match=r"802\.1Q"):
        encode_bridge({"vlan_protocol": "802.1x"})


def test_vlan_options_need_filtering() -> None:
    vlanlib.check_bridge_options({"default_pvid": 3}, True, "br0")
    vlanlib.check_bridge_options({"default_pvid": 3, "vlan_filtering": 1}, False, "br0")
    with pytest.raises(LabError, match="vlan_filtering=True"):
        vlanlib.check_bridge_options({"vlan_protocol": 0x88A8}, False, "br0")
    with pytest.raises(LabError, match="vlan_filtering=True"):
        vlanlib.check_bridge_options({"default_pvid": 3, "vlan_filtering": 0}, True, "br0")


def test_membership_body_is_a_begin_end_pair_for_a_range() -> None:
    body = vlanlib.membership_body(5, [(10, 20), (30, 30)], False, True, self_=True)
    spec = attrs(body, 16)[vlanlib.IFLA_AF_SPEC]
    items = list(vlanlib.attr_list(spec))
    assert items[0] == (vlanlib.IFLA_BRIDGE_FLAGS, struct.pack("=H", vlanlib.BRIDGE_FLAGS_SELF))
    infos = [struct.unpack("=HH", v) for k, v in items[1:]]
    untagged = vlanlib.FLAG_UNTAGGED
    assert infos == [
        (untagged | vlanlib.FLAG_RANGE_BEGIN, 10),
        (untagged | vlanlib.FLAG_RANGE_END, 20),
        (untagged, 30),
    ]


class FakeRtnl:
    def __init__(self, replies: list[bytes]) -> None:
        self.replies = replies

    def dump(self, msg_type: int, body: bytes) -> list[bytes]:
        return self.replies


def test_dump_expands_the_kernels_ranges() -> None:
    def entry(flags: int, vid: int, last: int | None, state: int) -> bytes:
        inner = nla(vlanlib.ENTRY_INFO, struct.pack("=HH", flags, vid))
        if last is not None:
            inner += nla(vlanlib.ENTRY_RANGE, struct.pack("=H", last))
        return nla(vlanlib.VLANDB_ENTRY, inner + nla(vlanlib.ENTRY_STATE, bytes([state])))

    reply = struct.pack("=BxxxI", 7, 4)
    reply += entry(vlanlib.FLAG_PVID | vlanlib.FLAG_UNTAGGED, 1, None, 3)
    reply += entry(0, 10, 12, 4)
    table = vlanlib.dump(FakeRtnl([reply]))[4]  # type: ignore[arg-type]
    assert sorted(table) == [1, 10, 11, 12]
    assert table[1].pvid and table[1].untagged and table[1].state == "forwarding"
    assert table[11] == vlanlib.VlanEntry(11, False, False, "blocking")


def test_global_options_use_the_bridge_options_rules() -> None:
    data = vlanlib.encode_global({"multicast_querier": True, "multicast_query_interval": 30}, "x")
    a = attrs(data)
    assert a[15] == b"\x01" and struct.unpack("=Q", a[12])[0] == 3000
    with pytest.raises(LabError, match="out of range"):
        vlanlib.encode_global({"multicast_query_interval": 0}, "x")
    with pytest.raises(LabError, match="unknown per-VLAN option"):
        vlanlib.encode_global({"stp": True}, "x")


def test_mdb_entry_vlan_goes_into_the_struct() -> None:
    body = mdblib.with_vlan(mdblib.set_body(2, 3, "239.1.1.1"), 20)
    entry = attrs(body, 8)[mdblib.MDBA_SET_ENTRY]
    assert mdblib._ENTRY.unpack_from(entry)[3] == 20
    assert mdblib.decode_info(entry, {3: "vm1"}).vlan == 20
