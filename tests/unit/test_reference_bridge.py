"""BridgeModel against the bridge facts: one test (or more) per fact, no root, no kernel.

Fact numbers are those of the project's docs/bridge-facts.md; "measured" marks behaviour
re-checked on this kernel while writing the model, beyond what the facts spell out.
"""

from __future__ import annotations

import pytest
from scapy.layers.l2 import Dot1Q, Ether

from vlab.errors import LabError
from vlab.reference.bridge import BridgeModel, LearnedEntry, NotModelled, ParsedFrame

BR = "02:aa:00:00:00:01"  # the bridge's MAC: the lowest port MAC, as the kernel picks it
PORT_MACS = {"vm1": BR, "vm2": "02:aa:00:00:00:02", "vm3": "02:aa:00:00:00:03"}
PORT_MACS["up"] = "02:aa:00:00:00:04"
EVERYONE = set(PORT_MACS)
A, B, C, D = (f"02:00:00:00:00:0{x}" for x in "abcd")
UNKNOWN = "02:00:00:00:00:99"
MCAST = "01:00:5e:01:02:03"
BCAST = "ff:ff:ff:ff:ff:ff"


def ll(group: int) -> str:
    return f"01:80:c2:00:00:{group:02x}"


def frame(src: str, dst: str, etype: int = 0x88B5, payload: bytes = b"probe") -> bytes:
    return bytes(Ether(src=src, dst=dst, type=etype)) + payload


def model(**options: object) -> BridgeModel:
    return BridgeModel(BR, PORT_MACS, **options)  # type: ignore[arg-type]


@pytest.fixture
def br() -> BridgeModel:
    return model()


def others(*names: str) -> set[str]:
    return EVERYONE - set(names)


# --- fact 1, 2, 3: learning, unicast, broadcast ----------------------------------------------


def test_fact1_source_is_learnt_on_its_port(br: BridgeModel) -> None:
    br.deliver("vm1", frame(A, UNKNOWN))
    assert br.fdb() == {A: "vm1"}
    assert br.entries()[A] == LearnedEntry(port="vm1", updated=0.0, learned=True)


def test_fact2_unknown_unicast_floods_to_all_but_ingress(br: BridgeModel) -> None:
    assert br.deliver("vm1", frame(A, UNKNOWN)) == others("vm1")


def test_fact2_known_unicast_goes_only_to_its_port(br: BridgeModel) -> None:
    br.deliver("vm2", frame(B, UNKNOWN))
    assert br.deliver("vm1", frame(A, B)) == {"vm2"}


def test_fact2_destination_on_ingress_port_is_discarded(br: BridgeModel) -> None:
    br.deliver("vm1", frame(B, UNKNOWN))
    assert br.deliver("vm1", frame(A, B)) == set()
    assert br.deliver("vm1", frame(A, A)) == set()  # learnt first, then looked up


def test_fact3_broadcast_to_all_but_ingress(br: BridgeModel) -> None:
    assert br.deliver("up", frame(A, BCAST)) == others("up")


def test_unregistered_multicast_floods_like_broadcast(br: BridgeModel) -> None:
    assert br.deliver("vm2", frame(A, MCAST)) == others("vm2")


@pytest.mark.parametrize("querier", [False, True])
def test_fact27_snooping_and_querier_do_not_change_non_ip_multicast(querier: bool) -> None:
    br = model(multicast_snooping=True, multicast_querier=querier)
    assert br.deliver("vm2", frame(A, MCAST)) == others("vm2")


# --- fact 4: hairpin ---------------------------------------------------------------------------


def test_fact4_hairpin_reflects_known_unicast_and_broadcast(br: BridgeModel) -> None:
    br.set_port("vm1", hairpin=True)
    br.deliver("vm1", frame(B, UNKNOWN))  # B behind vm1 too (another VM on the same tap)
    assert br.deliver("vm1", frame(A, B)) == {"vm1"}
    assert br.deliver("vm1", frame(A, BCAST)) == EVERYONE


def test_fact4_hairpin_reflects_floods_too_measured(br: BridgeModel) -> None:
    br.set_port("vm1", hairpin=True)
    assert br.deliver("vm1", frame(A, UNKNOWN)) == EVERYONE
    assert br.deliver("vm1", frame(A, MCAST)) == EVERYONE


def test_fact4_hairpin_on_isolated_port_does_not_reflect(br: BridgeModel) -> None:
    br.set_port("vm1", hairpin=True, isolated=True)
    assert br.deliver("vm1", frame(A, BCAST)) == others("vm1")


def test_fact4_hairpin_port_still_obeys_its_flood_flag(br: BridgeModel) -> None:
    br.set_port("vm1", hairpin=True, bcast_flood=False)
    assert br.deliver("vm1", frame(A, BCAST)) == others("vm1")


# --- fact 5, 6: MAC move, invalid source --------------------------------------------------------


def test_fact5_first_frame_from_another_port_moves_the_entry(br: BridgeModel) -> None:
    br.deliver("vm1", frame(A, UNKNOWN))
    br.deliver("vm2", frame(A, UNKNOWN))
    assert br.fdb() == {A: "vm2"}
    assert br.deliver("vm3", frame(C, A)) == {"vm2"}
    br.deliver("vm1", frame(A, UNKNOWN))  # and straight back: no damping
    assert br.fdb()[A] == "vm1"


@pytest.mark.parametrize("src", ["00:00:00:00:00:00", BCAST, MCAST, ll(0), "03:00:00:00:00:01"])
def test_fact6_invalid_source_dropped_before_learning(br: BridgeModel, src: str) -> None:
    assert br.deliver("vm1", frame(src, BCAST)) == set()
    assert br.fdb() == {}


# --- fact 7, 8, 9: link-local --------------------------------------------------------------------


def test_fact7_stp_group_forwarded_while_stp_off(br: BridgeModel) -> None:
    assert br.deliver("vm1", frame(A, ll(0))) == others("vm1")
    assert br.fdb() == {A: "vm1"}


def test_fact7_pause_always_dropped_and_never_learnt_measured(br: BridgeModel) -> None:
    br.set(group_fwd_mask=0xFFF8)
    br.set_port("vm1", group_fwd_mask=0xFFFD)
    assert br.deliver("vm1", frame(A, ll(1))) == set()
    assert br.fdb() == {}


@pytest.mark.parametrize("group", [2, 3, 0x0E, 0x0F, 4, 0x0B])
def test_fact7_other_groups_kept_but_source_learnt(br: BridgeModel, group: int) -> None:
    assert br.deliver("vm1", frame(A, ll(group))) == set()
    assert br.fdb() == {A: "vm1"}


def test_fact7_no_linklocal_learn_stops_learning_from_kept_frames() -> None:
    br = model(no_linklocal_learn=True)
    assert br.deliver("vm1", frame(A, ll(0x0E))) == set()
    assert br.fdb() == {}


def test_fact7_forwarded_link_local_learns_despite_no_linklocal_learn_measured() -> None:
    br = model(no_linklocal_learn=True)
    assert br.deliver("vm1", frame(A, ll(0))) == others("vm1")
    assert br.fdb() == {A: "vm1"}


def test_fact7_kept_link_local_learns_only_if_the_port_learns(br: BridgeModel) -> None:
    br.set_port("vm1", learning=False)
    br.deliver("vm1", frame(A, ll(0x0E)))
    assert br.fdb() == {}


@pytest.mark.parametrize("mask", [1, 2, 4, 0x7, 0x4009])
def test_fact8_bridge_mask_refuses_bits_0_to_2(br: BridgeModel, mask: int) -> None:
    with pytest.raises(LabError, match="bits 0-2"):
        br.set(group_fwd_mask=mask)
    assert br.option("group_fwd_mask") == 0


def test_fact8_port_mask_refuses_only_bit_1(br: BridgeModel) -> None:
    with pytest.raises(LabError, match="bit 1"):
        br.set_port("vm1", group_fwd_mask=0x2)
    br.set_port("vm1", group_fwd_mask=0xFFFD)
    assert br.port_option("vm1", "group_fwd_mask") == 0xFFFD


def test_fact8_bridge_mask_forwards_eapol_and_lldp() -> None:
    br = model(group_fwd_mask=0x4008)
    assert br.deliver("vm1", frame(A, ll(3))) == others("vm1")
    assert br.deliver("vm1", frame(A, ll(0x0E))) == others("vm1")
    assert br.deliver("vm1", frame(A, ll(0x0F))) == set()


def test_fact8_port_mask_forwards_lacp_from_that_port_only(br: BridgeModel) -> None:
    br.set_port("vm1", group_fwd_mask=0x4)
    assert br.deliver("vm1", frame(A, ll(2))) == others("vm1")
    assert br.deliver("vm2", frame(B, ll(2))) == set()


def test_fact8_port_bit0_forwards_stp_group_while_stp_on() -> None:
    br = model(stp=True)
    br.set_port("vm1", group_fwd_mask=0x1)
    assert br.deliver("vm1", frame(A, ll(0))) == others("vm1")
    assert br.deliver("vm2", frame(B, ll(0))) == set()


def test_fact8_forwarded_link_local_is_multicast_and_obeys_mcast_flood_measured() -> None:
    br = model(group_fwd_mask=0x4000)
    br.set_port("vm3", mcast_flood=False)
    assert br.deliver("vm1", frame(A, ll(0x0E))) == {"vm2", "up"}


@pytest.mark.parametrize("group", [0, 4, 5, 0x0E, 0x0F])
def test_fact9_group_address_accepted(br: BridgeModel, group: int) -> None:
    br.set(group_address=ll(group).upper())
    assert br.option("group_address") == ll(group)


@pytest.mark.parametrize("address", [ll(1), ll(2), ll(3), "01:80:c2:00:00:10", MCAST, A])
def test_fact9_group_address_refused(br: BridgeModel, address: str) -> None:
    with pytest.raises(LabError, match=r"01:80:c2:00:00:04\.\.0f"):
        br.set(group_address=address)


# --- fact 10, 11, 26: STP, port states, carrier -------------------------------------------------


def test_fact10_stp_on_keeps_the_stp_group_but_learns_its_source() -> None:
    br = model(stp=True)
    assert br.deliver("vm1", frame(A, ll(0))) == set()
    assert br.fdb() == {A: "vm1"}


def test_fact10_ports_stay_forwarding_when_stp_is_switched_on(br: BridgeModel) -> None:
    br.set(stp=True)
    assert {br.port_state(p) for p in EVERYONE} == {"forwarding"}
    assert br.deliver("vm1", frame(A, BCAST)) == others("vm1")


def test_fact10_port_state_cannot_be_set_while_stp_runs() -> None:
    br = model(stp=True)
    with pytest.raises(LabError, match="EBUSY"):
        br.set_port("vm1", state="learning")


def test_fact10_carrier_up_under_stp_walks_listening_learning_forwarding() -> None:
    br = model(stp=True, forward_delay=4)
    br.set_carrier("vm2", False)
    br.set_carrier("vm2", True)
    assert br.port_state("vm2") == "listening"
    assert br.deliver("vm2", frame(B, BCAST)) == set()
    assert br.fdb() == {}
    br.advance(4)
    assert br.port_state("vm2") == "learning"
    assert br.deliver("vm2", frame(B, BCAST)) == set()
    assert br.fdb() == {B: "vm2"}
    assert br.deliver("vm1", frame(A, B)) == set()  # known, but its port does not forward yet
    br.advance(4)
    assert br.port_state("vm2") == "forwarding"
    assert br.deliver("vm1", frame(A, B)) == {"vm2"}


@pytest.mark.parametrize("state", ["disabled", "listening"])
def test_fact11_disabled_and_listening_drop_and_learn_nothing(br: BridgeModel, state: str) -> None:
    br.set_port("vm1", state=state)
    assert br.deliver("vm1", frame(A, BCAST)) == set()
    assert br.deliver("vm1", frame(A, ll(0x0E))) == set()
    assert br.fdb() == {}
    assert br.deliver("vm2", frame(B, BCAST)) == others("vm1", "vm2")


def test_fact11_learning_state_learns_but_neither_forwards_nor_receives(br: BridgeModel) -> None:
    br.set_port("vm1", state="learning")
    assert br.deliver("vm1", frame(A, BCAST)) == set()
    assert br.fdb() == {A: "vm1"}
    assert br.deliver("vm2", frame(B, A)) == set()  # known on a non-forwarding port: dropped


def test_fact11_blocking_reads_back_as_forwarding(br: BridgeModel) -> None:
    br.set_port("vm1", state="blocking")
    assert br.port_state("vm1") == "forwarding"
    br.set_port("vm1", state=1)
    assert br.port_state("vm1") == "listening"


def test_fact26_carrier_down_flushes_dynamic_keeps_static(br: BridgeModel) -> None:
    br.deliver("vm2", frame(B, UNKNOWN))
    br.fdb_add(C, "vm2")
    br.fdb_add(D, "vm2", static=False)
    br.set_carrier("vm2", False)
    assert br.fdb() == {C: "vm2"}
    assert br.port_state("vm2") == "disabled"
    assert br.deliver("vm1", frame(A, C)) == set()  # not flooded instead
    assert br.deliver("vm1", frame(A, BCAST)) == others("vm1", "vm2")
    with pytest.raises(LabError, match="carrier"):
        br.set_port("vm2", state="forwarding")
    br.set_carrier("vm2", True)
    assert br.port_state("vm2") == "forwarding"
    assert br.deliver("vm1", frame(A, C)) == {"vm2"}


def test_fact26_carrier_down_on_a_port_disabled_by_hand_keeps_its_entries(br: BridgeModel) -> None:
    br.deliver("vm2", frame(B, UNKNOWN))
    br.set_port("vm2", state="disabled")
    br.set_carrier("vm2", False)
    assert br.fdb() == {B: "vm2"}  # br_port_carrier_check skips an already disabled port
    br.set_carrier("vm2", True)
    assert br.port_state("vm2") == "forwarding"


def test_refused_state_leaves_the_flags_of_the_same_change_applied(br: BridgeModel) -> None:
    """br_setport applies the flags, then the state, then the mask (measured on 6.18)."""
    br.set_carrier("vm2", False)
    with pytest.raises(LabError, match="carrier"):
        br.set_port("vm2", isolated=True, bcast_flood=False, state="listening", group_fwd_mask=8)
    assert br.port_option("vm2", "isolated") is True
    assert br.port_option("vm2", "bcast_flood") is False
    assert br.port_option("vm2", "group_fwd_mask") == 0
    br.set_carrier("vm2", True)
    assert br.deliver("vm1", frame(A, BCAST)) == others("vm1", "vm2")


def test_refused_mab_changes_nothing(br: BridgeModel) -> None:
    with pytest.raises(LabError, match="EINVAL"):
        br.set_port("vm1", learning=False, locked=True, mab=True)
    assert br.port_option("vm1", "learning") is True
    assert br.port_option("vm1", "locked") is False


# --- fact 12, 13: ageing -------------------------------------------------------------------------


def test_fact12_entry_ages_after_ageing_time_from_the_last_frame_from_it() -> None:
    br = model(ageing_time=30)
    br.deliver("vm1", frame(A, UNKNOWN))
    br.advance(20)
    br.deliver("vm1", frame(A, UNKNOWN))  # refresh
    br.advance(20)
    assert br.fdb() == {A: "vm1"}
    br.deliver("vm2", frame(B, A))  # frames *to* A do not refresh it
    br.advance(9.9)
    assert A in br.fdb()
    br.advance(0.1)
    assert A not in br.fdb()
    assert br.deliver("vm2", frame(B, A)) == others("vm2")


def test_fact12_static_never_ages_user_dynamic_does() -> None:
    br = model(ageing_time=10)
    br.fdb_add(A, "vm1")
    br.fdb_add(B, "vm2", static=False)
    br.advance(1000)
    assert br.fdb() == {A: "vm1"}


def test_fact12_lowering_ageing_time_ages_at_once(br: BridgeModel) -> None:
    br.deliver("vm1", frame(A, UNKNOWN))
    br.advance(60)
    br.set(ageing_time=30)
    assert br.fdb() == {}


def test_fact13_ageing_time_zero_turns_learning_off(br: BridgeModel) -> None:
    br.deliver("vm1", frame(A, UNKNOWN))
    br.fdb_add(C, "vm3")
    br.set(ageing_time=0)
    assert br.fdb() == {C: "vm3"}
    assert br.deliver("vm2", frame(B, A)) == others("vm2")
    assert br.fdb() == {C: "vm3"}
    assert br.deliver("vm1", frame(C, B)) == others("vm1")  # static does not roam either
    assert br.fdb() == {C: "vm3"}
    assert br.deliver("vm2", frame(B, C)) == {"vm3"}  # but still forwards


# --- fact 14: static and sticky ------------------------------------------------------------------


def test_fact14_static_entry_roams_and_stays_static(br: BridgeModel) -> None:
    br.fdb_add(A, "vm1")
    br.deliver("vm2", frame(A, UNKNOWN))
    assert br.fdb() == {A: "vm2"}
    assert br.entries()[A].static
    br.advance(10_000)
    assert br.fdb() == {A: "vm2"}


def test_fact14_sticky_entry_does_not_move(br: BridgeModel) -> None:
    br.fdb_add(A, "vm1", sticky=True)
    assert br.deliver("vm2", frame(A, UNKNOWN)) == others("vm2")  # still forwarded
    assert br.fdb() == {A: "vm1"}


def test_fdb_add_replaces_and_stops_counting_as_learnt(br: BridgeModel) -> None:
    br.deliver("vm1", frame(A, UNKNOWN))
    br.fdb_add(A, "vm3")
    assert br.entries()[A] == LearnedEntry(port="vm3", updated=0.0, static=True, user=True)


def test_fdb_add_refuses_local_multicast_and_unknown_ports(br: BridgeModel) -> None:
    for mac in (BR, PORT_MACS["vm3"]):
        with pytest.raises(LabError, match="own address"):
            br.fdb_add(mac, "vm2")
    with pytest.raises(LabError, match="unicast"):
        br.fdb_add(MCAST, "vm2")
    with pytest.raises(LabError, match="vm9"):
        br.fdb_add(A, "vm9")


def test_fdb_add_dynamic_needs_a_learning_port(br: BridgeModel) -> None:
    br.set_port("vm1", state="disabled")
    br.fdb_add(A, "vm1")
    with pytest.raises(LabError, match="not learning"):
        br.fdb_add(B, "vm1", static=False)


def test_fdb_flush_keeps_static_only_measured(br: BridgeModel) -> None:
    br.deliver("vm1", frame(A, UNKNOWN))
    br.fdb_add(B, "vm2", static=False)
    br.fdb_add(C, "vm3", sticky=True)
    br.fdb_add(D, "vm3")
    br.fdb_flush()
    assert br.fdb() == {C: "vm3", D: "vm3"}
    br.fdb_del(D.upper())
    assert br.fdb() == {C: "vm3"}
    with pytest.raises(LabError, match="ENOENT"):
        br.fdb_del(D)


# --- fact 15, 16, 17, 18 -----------------------------------------------------------------------


@pytest.mark.parametrize("dst", [BR, PORT_MACS["vm2"], PORT_MACS["up"]])
def test_fact15_frames_to_the_bridge_or_a_port_go_up_the_stack(br: BridgeModel, dst: str) -> None:
    assert br.deliver("vm3", frame(A, dst)) == set()
    assert br.fdb() == {A: "vm3"}


def test_fact15_bridge_mac_option_moves_the_local_address(br: BridgeModel) -> None:
    br.set(mac="02:bb:00:00:00:01")
    assert br.deliver("vm3", frame(A, "02:bb:00:00:00:01")) == set()
    assert br.deliver("vm3", frame(A, PORT_MACS["vm1"])) == set()  # still vm1's port MAC
    br.set(mac="02:bb:00:00:00:02")
    assert br.deliver("vm3", frame(A, "02:bb:00:00:00:01")) == others("vm3")


@pytest.mark.parametrize("src", [BR, PORT_MACS["vm2"]])
def test_fact16_own_source_forwarded_not_learnt(br: BridgeModel, src: str) -> None:
    assert br.deliver("vm3", frame(src, UNKNOWN)) == others("vm3")
    assert br.fdb() == {}


def test_fact17_learning_off_creates_and_refreshes_nothing() -> None:
    br = model(ageing_time=10)
    br.deliver("vm1", frame(A, UNKNOWN))
    br.set_port("vm1", learning=False)
    br.set_port("vm2", learning=False)
    br.deliver("vm1", frame(B, UNKNOWN))
    br.advance(6)
    br.deliver("vm1", frame(A, UNKNOWN))
    br.deliver("vm2", frame(A, UNKNOWN))  # no move either
    assert br.fdb() == {A: "vm1"}
    br.advance(4)
    assert br.fdb() == {}


@pytest.mark.parametrize(
    ("flag", "dst"), [("flood", UNKNOWN), ("mcast_flood", MCAST), ("bcast_flood", BCAST)]
)
def test_fact18_flood_flags_leave_a_port_out_of_that_flood(
    br: BridgeModel, flag: str, dst: str
) -> None:
    br.set_port("vm2", **{flag: False})
    assert br.deliver("vm1", frame(A, dst)) == others("vm1", "vm2")
    for other in {UNKNOWN, MCAST, BCAST} - {dst}:
        assert br.deliver("vm1", frame(A, other)) == others("vm1")


def test_fact18_known_unicast_ignores_flood_flags(br: BridgeModel) -> None:
    br.set_port("vm2", flood=False, mcast_flood=False, bcast_flood=False)
    br.deliver("vm2", frame(B, ll(0x0E)))
    assert br.deliver("vm1", frame(A, B)) == {"vm2"}


def test_proxy_arp_port_takes_no_flood_but_known_unicast_measured(br: BridgeModel) -> None:
    br.set_port("vm3", proxy_arp=True)
    for dst in (UNKNOWN, MCAST, BCAST):
        assert br.deliver("vm1", frame(A, dst)) == others("vm1", "vm3")
    br.fdb_add(C, "vm3")
    assert br.deliver("vm1", frame(A, C)) == {"vm3"}


# --- fact 20, 21: tags and MTU -----------------------------------------------------------------


def test_fact20_tagged_frames_forward_like_untagged(br: BridgeModel) -> None:
    tagged = Ether(src=A, dst=UNKNOWN) / Dot1Q(vlan=42, prio=5, type=0x88B5) / b"xx"
    assert br.deliver("vm1", tagged) == others("vm1")
    assert br.deliver("vm2", Ether(src=B, dst=A) / Dot1Q(vlan=7) / b"yy") == {"vm1"}


def test_tagged_frame_shorter_than_20_bytes_never_reaches_the_bridge_measured(
    br: BridgeModel,
) -> None:
    head = bytes(Ether(src=A, dst=BCAST, type=0x8100)) + b"\x00\x05\x88\xb5"
    assert br.deliver("vm1", head + b"z") == set()
    assert br.fdb() == {}
    assert br.deliver("vm1", head + b"zz") == others("vm1")


@pytest.mark.parametrize(("tagged", "size", "passes"), [(False, 1518, True), (False, 1519, False)])
def test_fact21_egress_mtu_untagged(br: BridgeModel, tagged: bool, size: int, passes: bool) -> None:
    data = frame(A, BCAST, payload=b"\0" * (size - 14))
    assert br.deliver("vm1", data) == (others("vm1") if passes else set())
    assert br.fdb() == {A: "vm1"}  # learnt all the same


@pytest.mark.parametrize(("size", "passes"), [(1522, True), (1523, False)])
def test_fact21_egress_mtu_tagged(br: BridgeModel, size: int, passes: bool) -> None:
    data = bytes(Ether(src=A, dst=BCAST) / Dot1Q(vlan=1, type=0x88B5)) + b"\0" * (size - 18)
    assert len(data) == size
    assert br.deliver("vm1", data) == (others("vm1") if passes else set())


# --- fact 22: isolation --------------------------------------------------------------------------


def test_fact22_isolated_ports_do_not_talk_to_each_other(br: BridgeModel) -> None:
    br.set_port("vm1", isolated=True)
    br.set_port("vm2", isolated=True)
    br.deliver("vm2", frame(B, ll(0x0E)))
    assert br.deliver("vm1", frame(A, BCAST)) == {"vm3", "up"}
    assert br.deliver("vm1", frame(A, B)) == set()
    assert br.deliver("vm3", frame(C, B)) == {"vm2"}
    assert br.deliver("vm2", frame(B, C)) == {"vm3"}


# --- fact 23, 24: locked ports and MAB -----------------------------------------------------------


def test_fact23_locked_port_drops_unknown_sources(br: BridgeModel) -> None:
    br.set_port("vm1", locked=True)
    assert br.deliver("vm1", frame(A, BCAST)) == set()
    assert br.fdb() == {}


def test_fact23_static_entry_authorises_a_source(br: BridgeModel) -> None:
    br.set_port("vm1", locked=True)
    br.fdb_add(A, "vm1")
    assert br.deliver("vm1", frame(A, BCAST)) == others("vm1")


def test_fact23_no_roaming_into_a_locked_port(br: BridgeModel) -> None:
    br.set_port("vm1", locked=True)
    br.deliver("vm2", frame(B, UNKNOWN))
    assert br.deliver("vm1", frame(B, BCAST)) == set()
    assert br.fdb() == {B: "vm2"}
    assert br.deliver("vm1", frame(BR, BCAST)) == set()  # local sources are no better


def test_bug1_link_local_learning_bypasses_the_lock(br: BridgeModel) -> None:
    br.set_port("vm1", locked=True)
    br.fdb_add(C, "vm3")
    assert br.deliver("vm1", frame(A, ll(0x03))) == set()  # EAPOL from an unknown MAC ...
    assert br.deliver("vm1", frame(A, BCAST)) == others("vm1")  # ... authorised it
    br.deliver("vm1", frame(C, ll(0x0E)))  # LLDP moves a static entry into the locked port
    assert br.fdb()[C] == "vm1"


def test_bug1_mitigated_by_no_linklocal_learn() -> None:
    br = model(no_linklocal_learn=True)
    br.set_port("vm1", locked=True)
    br.deliver("vm1", frame(A, ll(0x03)))
    assert br.deliver("vm1", frame(A, BCAST)) == set()


def test_fact23_forwarded_link_local_is_subject_to_the_lock(br: BridgeModel) -> None:
    br.set_port("vm1", locked=True)
    assert br.deliver("vm1", frame(A, ll(0))) == set()
    assert br.fdb() == {}


@pytest.mark.parametrize(
    "options",
    [{"mab": True}, {"mab": True, "locked": True, "learning": False}, {"mab": True, "learning": 1}],
)
def test_fact24_mab_needs_locked_and_learning(br: BridgeModel, options: dict[str, bool]) -> None:
    with pytest.raises(LabError, match="mab needs locked=True and learning=True"):
        br.set_port("vm1", **options)
    assert br.port_option("vm1", "mab") is False


def test_fact24_mab_records_a_locked_entry_and_drops(br: BridgeModel) -> None:
    br.set_port("vm1", locked=True, mab=True)
    with pytest.raises(LabError, match="mab"):
        br.set_port("vm1", learning=False)
    assert br.deliver("vm1", frame(A, BCAST)) == set()
    assert br.fdb() == {A: "vm1"}
    assert br.entries()[A].locked
    br.advance(5)
    assert br.deliver("vm1", frame(A, BCAST)) == set()  # still not authorised, but refreshed
    assert br.entries()[A].updated == 5
    assert br.deliver("vm2", frame(B, A)) == {"vm1"}  # a locked entry forwards (measured)


def test_fact24_locked_entry_roams_to_an_unlocked_port_and_unlocks(br: BridgeModel) -> None:
    br.set_port("vm1", locked=True, mab=True)
    br.deliver("vm1", frame(A, BCAST))
    assert br.deliver("vm3", frame(A, BCAST)) == others("vm3")
    assert br.entries()[A].port == "vm3"
    assert not br.entries()[A].locked


def test_fact24_user_replace_authorises_a_locked_entry(br: BridgeModel) -> None:
    br.set_port("vm1", locked=True, mab=True)
    br.deliver("vm1", frame(A, BCAST))
    br.fdb_add(A, "vm1")
    assert br.deliver("vm1", frame(A, BCAST)) == others("vm1")


def test_fact24_mab_off_flushes_the_ports_locked_entries(br: BridgeModel) -> None:
    br.set_port("vm1", locked=True, mab=True)
    br.fdb_add(C, "vm1")
    br.deliver("vm1", frame(A, BCAST))
    br.set_port("vm1", mab=False)
    assert br.fdb() == {C: "vm1"}


# --- fact 25: fdb_max_learned --------------------------------------------------------------------


def test_fact25_mac_beyond_the_limit_is_forwarded_not_learnt() -> None:
    br = model(fdb_max_learned=2)
    br.fdb_add(D, "up")  # user entries do not count
    br.deliver("vm1", frame(A, UNKNOWN))
    br.deliver("vm2", frame(B, UNKNOWN))
    assert br.deliver("vm3", frame(C, BCAST)) == others("vm3")
    assert C not in br.fdb()
    assert br.deliver("vm1", frame(A, C)) == others("vm1")  # traffic to it floods
    br.deliver("vm1", frame(B, UNKNOWN))  # moving a learnt entry is not a new one
    assert br.fdb() == {D: "up", A: "vm1", B: "vm1"}


def test_fact25_user_entries_free_their_slot() -> None:
    br = model(fdb_max_learned=1)
    br.deliver("vm1", frame(A, UNKNOWN))
    br.fdb_add(A, "vm1")
    br.deliver("vm2", frame(B, UNKNOWN))
    assert br.fdb() == {A: "vm1", B: "vm2"}


def test_fact25_mab_entries_count() -> None:
    br = model(fdb_max_learned=1)
    br.set_port("vm1", locked=True, mab=True)
    br.deliver("vm1", frame(A, BCAST))
    br.deliver("vm2", frame(B, BCAST))
    assert br.fdb() == {A: "vm1"}


# --- scope, options, clock -----------------------------------------------------------------------


@pytest.mark.parametrize("etype", [0x0800, 0x86DD, 0x0806, 0x8035])
def test_payloads_the_bridge_parses_are_not_modelled(br: BridgeModel, etype: int) -> None:
    with pytest.raises(NotModelled, match=f"{etype:#06x}"):
        br.deliver("vm1", frame(A, UNKNOWN, etype))
    tagged = Ether(src=A, dst=UNKNOWN) / Dot1Q(vlan=3, type=etype) / b"xx"
    with pytest.raises(NotModelled):
        br.deliver("vm1", tagged)


def test_llc_is_opaque_except_to_the_stp_group_with_stp_on(br: BridgeModel) -> None:
    llc = frame(A, ll(0), etype=0x0026, payload=b"\x42\x42\x03" + b"\0" * 35)
    assert br.deliver("vm1", llc) == others("vm1")
    br.set(stp=True)
    with pytest.raises(NotModelled):
        br.deliver("vm1", llc)
    assert br.deliver("vm1", frame(A, UNKNOWN, etype=0x0026)) == others("vm1")


def test_parsed_frame_sees_through_one_tag() -> None:
    data = bytes(Ether(src=A, dst=B) / Dot1Q(vlan=9, type=0x1234) / b"abc")
    assert ParsedFrame.parse(data) == ParsedFrame(B, A, 0x1234, b"abc", True)
    with pytest.raises(LabError, match="13-byte"):
        ParsedFrame.parse(data[:13])


def test_unknown_options_are_lab_errors_with_a_hint(br: BridgeModel) -> None:
    with pytest.raises(LabError, match="did you mean 'ageing_time'"):
        model(aging_time=10)
    with pytest.raises(LabError, match="unknown port option 'hairpin_mode'"):
        br.set_port("vm1", hairpin_mode=True)
    with pytest.raises(LabError, match="unknown bridge option"):
        br.option("colour")


@pytest.mark.parametrize(
    ("where", "options"),
    [
        ("bridge", {"ageing_time": -1}),
        ("bridge", {"no_linklocal_learn": "yes"}),
        ("bridge", {"forward_delay": 1}),
        ("bridge", {"fdb_max_learned": 1.5}),
        ("bridge", {"vlan_filtering": True}),
        ("bridge", {"mac": MCAST}),
        ("port", {"neigh_suppress": True}),
        ("port", {"state": "sleeping"}),
    ],
)
def test_bad_values_are_refused_and_change_nothing(
    br: BridgeModel, where: str, options: dict[str, object]
) -> None:
    def seen() -> tuple[object, ...]:
        return (br.option("ageing_time"), br.option("stp"), br.bridge_mac, br.port_state("vm1"))

    before = seen()
    with pytest.raises(LabError):
        if where == "bridge":
            br.set(stp=True, **options)  # type: ignore[arg-type]
        else:
            br.set_port("vm1", hairpin=True, **options)  # type: ignore[arg-type]
    assert seen() == before
    assert br.port_option("vm1", "hairpin") is False


def test_options_read_back_with_kernel_defaults(br: BridgeModel) -> None:
    assert br.option("ageing_time") == 300.0
    assert br.option("multicast_snooping") is True
    assert br.option("mac") == BR
    assert br.port_option("vm1", "learning") is True
    assert br.port_option("vm1", "cost") is None
    assert br.port_mac("vm2") == PORT_MACS["vm2"]
    assert br.ports == tuple(PORT_MACS)


def test_the_models_options_are_the_labs_option_table() -> None:
    """One table: every option's kind, range and default come from vlab.options."""
    from vlab import options
    from vlab.reference import bridge as m

    for mine, theirs in (
        (m.BRIDGE_OPTIONS, options.BRIDGE_OPTIONS),
        (m.PORT_OPTIONS, options.PORT_OPTIONS),
    ):
        assert list(mine) == list(theirs)
        for name, opt in mine.items():
            lab = theirs[name]
            assert (opt.kind, opt.default, opt.lo, opt.hi) == (
                lab.kind,
                lab.default,
                lab.lo,
                lab.hi,
            )


def test_the_models_kernel_rules_are_the_labs() -> None:
    """The refusals come from vlab.options' rules (one text, one place), and the model adds
    only its own: options it does not model."""
    from vlab import options
    from vlab.reference import bridge as m

    assert options.bridge_mask_rule(1) in str(m.BRIDGE_OPTIONS["group_fwd_mask"].rule(1))  # type: ignore[misc]
    assert options.port_mask_rule(2) in str(m.PORT_OPTIONS["group_fwd_mask"].rule(2))  # type: ignore[misc]
    bad = "01:80:c2:00:00:10"
    assert options.group_address_rule(bad) in str(m.BRIDGE_OPTIONS["group_address"].rule(bad))  # type: ignore[misc]
    with pytest.raises(LabError, match="does not model"):
        model(vlan_filtering=True)
    assert model(vlan_filtering=False).option("vlan_filtering") is False


def test_constructor_validates_addresses() -> None:
    with pytest.raises(LabError, match="bridge_mac"):
        BridgeModel(MCAST, PORT_MACS)
    with pytest.raises(LabError, match="port MAC of 'x'"):
        BridgeModel(BR, {"x": "nonsense"})


def test_clock_moves_forward_only(br: BridgeModel) -> None:
    br.advance(1.5)
    assert br.now == 1.5
    for bad in (-1.0, float("inf"), float("nan")):
        with pytest.raises(LabError):
            br.advance(bad)


def test_unknown_ingress_and_short_frames_are_lab_errors(br: BridgeModel) -> None:
    with pytest.raises(LabError, match="no port for endpoint 'vm7'"):
        br.deliver("vm7", frame(A, B))
    with pytest.raises(LabError, match="Ethernet header"):
        br.deliver("vm1", b"\x01" * 10)


def test_repr_shows_clock_and_fdb(br: BridgeModel) -> None:
    br.deliver("vm1", frame(A, B))
    assert repr(br) == (
        "<BridgeModel t=0s ports=['vm1', 'vm2', 'vm3', 'up'] fdb={02:00:00:00:00:0a->vm1}>"
    )


# --- deliberately wrong variants: three-line subclasses -------------------------------------------


class ForgetsHairpin(BridgeModel):
    def hairpin_reflects(self, port: str) -> bool:
        return False


class FloodsPause(BridgeModel):
    def link_local_forwarded(self, ingress: str, dst: str) -> bool:
        return dst == "01:80:c2:00:00:01" or super().link_local_forwarded(ingress, dst)


class StaticDoesNotRoam(BridgeModel):
    def entry_roams(self, entry: LearnedEntry, port: str) -> bool:
        return super().entry_roams(entry, port) and not entry.static


def test_variant_forgetting_hairpin_differs_only_on_hairpin_ports() -> None:
    right, wrong = model(), ForgetsHairpin(BR, PORT_MACS)
    for br in (right, wrong):
        br.set_port("vm1", hairpin=True)
    assert right.deliver("vm1", frame(A, BCAST)) == EVERYONE
    assert wrong.deliver("vm1", frame(A, BCAST)) == others("vm1")
    assert right.deliver("vm2", frame(B, BCAST)) == wrong.deliver("vm2", frame(B, BCAST))


def test_variant_flooding_pause_differs_only_on_pause() -> None:
    right, wrong = model(), FloodsPause(BR, PORT_MACS)
    assert right.deliver("vm1", frame(A, ll(1))) == set()
    assert wrong.deliver("vm1", frame(A, ll(1))) == others("vm1")
    for group in (0, 2, 0x0E):
        probe = frame(A, ll(group))
        assert right.deliver("vm1", probe) == wrong.deliver("vm1", probe)


def test_variant_with_non_roaming_static_entries() -> None:
    right, wrong = model(), StaticDoesNotRoam(BR, PORT_MACS)
    for br in (right, wrong):
        br.fdb_add(A, "vm1")
        br.deliver("vm2", frame(A, UNKNOWN))
    assert right.fdb() == {A: "vm2"}
    assert wrong.fdb() == {A: "vm1"}
