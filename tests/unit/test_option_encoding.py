"""Option validation and encoding: pure logic, no kernel."""

from __future__ import annotations

import struct

import pytest

from vlab.errors import LabError
from vlab.options import (
    BRIDGE_OPTIONS,
    PORT_OPTIONS,
    encode_bridge,
    encode_port,
    normalize_mac,
    pack_data,
    unpack_data,
)
from vlab.rtnl import attrs


def test_seconds_become_centiseconds_and_back() -> None:
    enc = encode_bridge({"ageing_time": 2.5, "forward_delay": 4})
    assert enc == {"ageing_time": 250, "forward_delay": 400}
    assert unpack_data(BRIDGE_OPTIONS, attrs(pack_data(BRIDGE_OPTIONS, enc))) == {
        "ageing_time": 2.5,
        "forward_delay": 4.0,
    }


def test_attributes_pyroute2_lacks_are_encoded_raw() -> None:
    data = attrs(pack_data(BRIDGE_OPTIONS, encode_bridge({"no_linklocal_learn": True})))
    assert struct.unpack("=II", data[46]) == (1, 1)  # IFLA_BR_MULTI_BOOLOPT: value, mask
    data = attrs(pack_data(BRIDGE_OPTIONS, encode_bridge({"no_linklocal_learn": False})))
    assert struct.unpack("=II", data[46]) == (0, 1)
    data = attrs(pack_data(BRIDGE_OPTIONS, encode_bridge({"fdb_max_learned": 7})))
    assert struct.unpack("=I", data[49]) == (7,)


def test_link_level_options_stay_out_of_bridge_data() -> None:
    enc = encode_bridge({"mac": "02:AA:bb:cc:dd:ee", "mtu": 9000})
    assert enc == {"mac": "02:aa:bb:cc:dd:ee", "mtu": 9000}
    assert pack_data(BRIDGE_OPTIONS, enc) == b""


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ageing_tim": 1}, "did you mean 'ageing_time'"),
        ({"stp": 2}, "expected true or false"),
        ({"group_fwd_mask": 0x4}, "bits 0-2"),
        ({"group_fwd_mask": 0x10000}, "out of range"),
        ({"forward_delay": 31}, "allowed 2..30"),
        ({"multicast_igmp_version": 4}, "allowed 2..3"),
        ({"priority": 1.5}, "expected an integer"),
        ({"ageing_time": "30"}, "expected a number"),
        ({"ageing_time": True}, "expected a number"),
        ({"group_address": "01:80:c2:00:00:02"}, "only 01:80:c2:00:00:00"),
        ({"group_address": "01:80:c2:00:00:10"}, "only 01:80:c2:00:00:00"),  # not link-local
        ({"mac": "01:02:03"}, "not a MAC"),
    ],
)
def test_bad_bridge_options(options: dict[str, object], message: str) -> None:
    with pytest.raises(LabError, match=message):
        encode_bridge(options)


def test_unknown_option_lists_every_valid_one() -> None:
    with pytest.raises(LabError) as err:
        encode_bridge({"turbo": True})
    for name in BRIDGE_OPTIONS:
        assert name in str(err.value)
    with pytest.raises(LabError) as err:
        encode_port({"turbo": True})
    for name in PORT_OPTIONS:
        assert name in str(err.value)


def test_port_rules() -> None:
    assert encode_port({"group_fwd_mask": 0x4})["group_fwd_mask"] == 4  # LACP allowed on a port
    with pytest.raises(LabError, match="bit 1"):
        encode_port({"group_fwd_mask": 0x2})
    with pytest.raises(LabError, match="needs locked"):
        encode_port({"mab": True, "locked": False})
    assert encode_port({"state": "Forwarding"})["state"] == 3
    assert encode_port({"state": 4})["state"] == 4
    with pytest.raises(LabError, match="disabled, listening, learning, forwarding, blocking"):
        encode_port({"state": 7})
    assert unpack_data(PORT_OPTIONS, attrs(pack_data(PORT_OPTIONS, {"state": 2}))) == {
        "state": "learning"
    }


def test_validation_is_complete_before_anything_is_encoded() -> None:
    with pytest.raises(LabError, match="turbo"):
        encode_bridge({"ageing_time": 10, "turbo": 1})


@pytest.mark.parametrize("mac", ["52-54-00-AA-BB-CC", " 52:54:00:aa:bb:cc "])
def test_mac_normalisation(mac: str) -> None:
    assert normalize_mac(mac) == "52:54:00:aa:bb:cc"


@pytest.mark.parametrize("mac", ["", "52:54:00:aa:bb", "52:54:00:aa:bb:cg", 5, None])
def test_bad_macs(mac: object) -> None:
    with pytest.raises(LabError, match="not a MAC"):
        normalize_mac(mac)


def test_durations_never_round_to_a_different_meaning() -> None:
    with pytest.raises(LabError, match=r"use 0 or at least 0\.01"):
        encode_bridge({"ageing_time": 0.004})  # 0 cs would turn learning off
    assert encode_bridge({"ageing_time": 0.01}) == {"ageing_time": 1}
    assert encode_bridge({"ageing_time": 0}) == {"ageing_time": 0}
