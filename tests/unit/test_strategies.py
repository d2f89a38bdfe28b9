"""The strategies keep their promises: only valid, kernel-accepted, model-predicted values."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from scapy.layers.l2 import Dot1Q, Ether

from vlab.reference.bridge import LINK_LOCAL, PARSED_ETHERTYPES, BridgeModel, is_valid_source
from vlab.strategies import (
    GROUP_ADDRESSES,
    TAG_ETHERTYPES,
    Topology,
    bridge_options,
    ethertypes,
    frames,
    invalid_sources,
    macs,
    port_options,
    topologies,
)

MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
BR = "02:aa:00:00:00:01"


def first_octet(mac: str) -> int:
    return int(mac[:2], 16)


@given(macs())
def test_unicast_macs_are_local_valid_sources(mac: str) -> None:
    assert MAC.match(mac)
    assert is_valid_source(mac)
    assert first_octet(mac) & 0x03 == 0x02


@given(macs(local_only=False))
def test_unicast_macs_without_local_only_are_still_valid_sources(mac: str) -> None:
    assert MAC.match(mac)
    assert is_valid_source(mac)


@given(macs("multicast"))
def test_multicast_macs_are_neither_broadcast_nor_link_local(mac: str) -> None:
    assert MAC.match(mac)
    assert first_octet(mac) & 1
    assert mac != "ff:ff:ff:ff:ff:ff"
    assert mac not in LINK_LOCAL


@given(macs("link_local"), macs("broadcast"))
def test_link_local_and_broadcast_macs(ll: str, bcast: str) -> None:
    assert ll in LINK_LOCAL
    assert bcast == "ff:ff:ff:ff:ff:ff"


@given(macs("any"))
def test_any_mac_is_well_formed(mac: str) -> None:
    assert MAC.match(mac)


@given(invalid_sources())
def test_invalid_sources_are_invalid(mac: str) -> None:
    assert MAC.match(mac)
    assert not is_valid_source(mac)


def test_unknown_mac_kind_is_refused() -> None:
    with pytest.raises(InvalidArgument):
        macs("anycast")  # type: ignore[arg-type]


@given(ethertypes())
def test_ethertypes_are_opaque_payload_types(etype: int) -> None:
    assert 0x0600 <= etype <= 0xFFFF
    assert etype not in TAG_ETHERTYPES
    assert etype not in PARSED_ETHERTYPES


@given(ethertypes(parsed=True))
def test_parsed_ethertypes_still_never_tags(etype: int) -> None:
    assert 0x0600 <= etype <= 0xFFFF
    assert etype not in TAG_ETHERTYPES


def payload_type(frame: Ether) -> int:
    return int(frame[Dot1Q].type) if Dot1Q in frame else int(frame.type)


@given(frames())
def test_default_frames_are_valid_and_fit_a_1500_mtu(frame: Ether) -> None:
    data = bytes(frame)
    assert 14 <= len(data) <= 1514
    assert is_valid_source(frame.src)
    assert payload_type(frame) not in TAG_ETHERTYPES | set(PARSED_ETHERTYPES)
    if Dot1Q in frame:
        assert len(data) >= 20
        assert data[12:14] == b"\x81\x00"


@given(frames(vlan=True, max_size=100))
def test_vlan_true_always_tags(frame: Ether) -> None:
    assert Dot1Q in frame
    assert 20 <= len(bytes(frame)) <= 100
    assert 0 <= frame[Dot1Q].vlan <= 4095


@given(frames(vlan=False, max_size=14))
def test_vlan_false_never_tags_and_max_size_holds(frame: Ether) -> None:
    assert Dot1Q not in frame
    assert len(bytes(frame)) == 14


@given(frames(src="02:00:00:00:00:01", dst=macs("broadcast"), ethertype=0x88B5))
def test_fixed_fields_are_honoured(frame: Ether) -> None:
    assert frame.src == "02:00:00:00:00:01"
    assert frame.dst == "ff:ff:ff:ff:ff:ff"
    assert payload_type(frame) == 0x88B5


@given(frames(invalid_src=True))
def test_invalid_src_frames_have_invalid_sources(frame: Ether) -> None:
    assert not is_valid_source(frame.src)


def refuses(strategy: st.SearchStrategy[object]) -> None:
    @given(strategy)
    def draw(value: object) -> None:
        raise AssertionError(f"drew {value!r}")

    with pytest.raises(InvalidArgument):
        draw()


def test_frames_refuses_contradictions() -> None:
    refuses(frames(src="02:00:00:00:00:01", invalid_src=True))
    refuses(frames(vlan=True, max_size=19))


@given(bridge_options())
def test_bridge_options_are_sensible(options: dict[str, object]) -> None:
    ageing = options.get("ageing_time", 300)
    assert isinstance(ageing, int) and ageing >= 10
    mask = options.get("group_fwd_mask", 0)
    assert isinstance(mask, int) and mask & 0x7 == 0
    assert options.get("group_address", GROUP_ADDRESSES[0]) in GROUP_ADDRESSES
    assert "multicast_querier" not in options


@given(bridge_options(stp=False))
def test_bridge_options_without_stp(options: dict[str, object]) -> None:
    assert "stp" not in options


@given(port_options(state=True))
def test_port_options_only_allow_mab_with_locked_learning(options: dict[str, object]) -> None:
    mask = options.get("group_fwd_mask", 0)
    assert isinstance(mask, int) and not mask & 0x2
    if options.get("mab"):
        assert options["locked"] is True
        assert options.get("learning", True) is True


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(topologies())
def test_topologies_are_consistent(topology: Topology) -> None:
    names = topology["endpoints"]
    assert 1 <= topology["vms"] <= 4 and 0 <= topology["hosts"] <= 2
    assert len(names) == topology["vms"] + topology["hosts"] + topology["uplink"]
    assert ("uplink" in names) == topology["uplink"]
    assert list(topology["ports"]) == names


def test_topologies_refuse_impossible_bounds() -> None:
    refuses(topologies(max_vms=0))


def build(topology: Topology) -> BridgeModel:
    names = topology["endpoints"]
    port_macs = {n: f"02:aa:00:00:01:{i:02x}" for i, n in enumerate(names)}
    model = BridgeModel(BR, port_macs, **topology["bridge"])  # type: ignore[arg-type]
    for name, options in topology["ports"].items():
        model.set_port(name, **options)  # type: ignore[arg-type]
    return model


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(topologies(), st.data())
def test_the_model_accepts_and_predicts_everything_generated(
    topology: Topology, data: st.DataObject
) -> None:
    model = build(topology)
    names = topology["endpoints"]
    for _ in range(5):
        ingress = data.draw(st.sampled_from(names))
        frame = data.draw(frames())
        receivers = model.deliver(ingress, frame)
        assert receivers <= set(names)
        if ingress in receivers:
            assert model.port_option(ingress, "hairpin") is True


@given(bridge_options(), port_options(state=True))
def test_generated_options_pass_the_labs_validation(
    bridge: dict[str, object], port: dict[str, object]
) -> None:
    options = pytest.importorskip("vlab.options")
    options.encode_bridge(bridge)
    options.encode_port(port)
