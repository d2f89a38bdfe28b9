"""The VLAN-aware reference model on its own: each rule, with the frames it changes.

What the kernel does is checked in the guest (tests/kernel/test_vlan_properties.py holds the
model against a real VLAN-aware bridge); these pin the model's decisions one by one.
"""

from __future__ import annotations

import pytest
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether

from vlab import LabError
from vlab.reference.vlan import SELF, VlanBridgeModel

BR = "02:00:00:00:00:b0"
PORTS = {"vm1": "fe:00:00:00:00:01", "vm2": "fe:00:00:00:00:02", "up": "fe:00:00:00:00:03"}
A, B = "52:54:00:00:00:0a", "52:54:00:00:00:0b"
UNKNOWN = "02:00:00:00:00:99"


def raw(src: str, vid: int | None = None, dst: str = UNKNOWN, prio: int = 0) -> bytes:
    if vid is None:
        return bytes(Ether(src=src, dst=dst, type=0x88B5) / b"xx")
    return bytes(Ether(src=src, dst=dst) / Dot1Q(vlan=vid, prio=prio, type=0x88B5) / b"xx")


def tenants() -> VlanBridgeModel:
    m = VlanBridgeModel(BR, PORTS)
    for port, vid in (("vm1", 10), ("vm2", 20)):
        m.vlan_add(port, vid, pvid=True, untagged=True)
        m.vlan_del(port, 1)
    m.vlan_add("up", range(10, 21))
    return m


def test_a_new_model_is_every_port_in_the_default_vlan() -> None:
    m = VlanBridgeModel(BR, PORTS)
    assert m.vlans("vm1") == {1: {"pvid": True, "untagged": True}}
    assert m.vlans(SELF) == {1: {"pvid": True, "untagged": True}}
    assert m.deliver_frames("vm1", raw(A)) == {"vm2": raw(A), "up": raw(A)}
    assert m.fdb(vlan=1) == {A: "vm1"}


def test_untagged_ingress_takes_the_pvid_and_leaves_trunks_tagged() -> None:
    m = tenants()
    assert m.deliver_frames("vm1", raw(A)) == {"up": raw(A, 10)}
    assert m.fdb(vlan=10) == {A: "vm1"} and m.fdb(vlan=20) == {}


def test_tagged_ingress_leaves_access_ports_untagged() -> None:
    m = tenants()
    assert m.deliver_frames("up", raw(B, 20)) == {"vm2": raw(B)}


def test_ingress_filtering() -> None:
    m = tenants()
    assert m.deliver_frames("up", raw(B, 30)) == {}
    assert m.fdb(vlan=30) == {}
    assert m.deliver_frames("vm1", raw(A, 20)) == {}  # tagged, not a member of 20


def test_priority_tag_takes_the_pvid_and_keeps_its_pcp() -> None:
    m = tenants()
    assert m.deliver_frames("vm1", raw(A, 0, prio=5)) == {"up": raw(A, 10, prio=5)}


def test_no_pvid_drops_untagged() -> None:
    m = tenants()
    m.vlan_add("vm1", 10, untagged=True)  # re-added without pvid: the PVID goes
    assert m.vlans("vm1")[10] == {"pvid": False, "untagged": True}
    assert m.deliver_frames("vm1", raw(A)) == {}


def test_same_mac_in_two_vlans() -> None:
    m = tenants()
    m.deliver("vm1", raw(A))
    m.deliver("vm2", raw(A))
    assert m.fdb(vlan=10) == {A: "vm1"} and m.fdb(vlan=20) == {A: "vm2"}
    assert m.deliver_frames("up", raw(B, 20, dst=A)) == {"vm2": raw(B, dst=A)}
    assert m.deliver_frames("up", raw(B, 10, dst=A)) == {"vm1": raw(B, dst=A)}


def test_per_vlan_state() -> None:
    m = tenants()
    m.vlan_set("up", 10, "blocking")
    assert m.deliver_frames("vm1", raw(A)) == {}  # egress blocked in 10
    assert m.deliver_frames("up", raw(B, 10)) == {}  # ingress too
    assert m.deliver_frames("up", raw(B, 20)) == {"vm2": raw(B)}
    m.vlan_set("up", 20, "learning")
    assert m.deliver_frames("up", raw(B, 20, dst=A)) == {}
    assert m.fdb(vlan=20) == {B: "up"}  # learnt in "learning"


def test_port_mac_is_local_only_in_its_vlans() -> None:
    m = tenants()
    assert m.deliver_frames("up", raw(B, 10, dst=PORTS["vm1"])) == {}  # local in 10
    to_vm2_port = raw(B, 10, dst=PORTS["vm2"])  # vm2's port is not in 10: unknown unicast
    assert m.deliver_frames("up", to_vm2_port) == {"vm1": raw(B, dst=PORTS["vm2"])}
    assert m.deliver_frames("up", raw(B, 10, dst=BR)) == {"vm1": raw(B, dst=BR)}  # no self 10
    m.vlan_add(SELF, 10)
    assert m.deliver_frames("up", raw(B, 10, dst=BR)) == {}


def test_default_pvid_moves_ports_still_on_it() -> None:
    m = VlanBridgeModel(BR, PORTS, default_pvid=7)
    assert m.vlans("vm1") == {7: {"pvid": True, "untagged": True}}
    m.vlan_add("vm2", 30, pvid=True, untagged=True)
    m.set(default_pvid=9)
    assert m.vlans("vm1") == {9: {"pvid": True, "untagged": True}}
    assert m.vlans("vm2") == {
        7: {"pvid": False, "untagged": True},
        30: {"pvid": True, "untagged": True},
    }


def test_dot1ad_bridge_pushes_an_outer_tag_over_a_customer_tag() -> None:
    m = VlanBridgeModel(BR, PORTS, vlan_protocol="802.1ad")
    m.vlan_add("vm1", 100, pvid=True, untagged=True)
    m.vlan_add("up", 100)
    customer = bytes(Ether(src=A, dst=UNKNOWN) / Dot1Q(vlan=5, type=0x88B5) / b"xx")
    outer = bytes(Ether(src=A, dst=UNKNOWN) / Dot1AD(vlan=100) / Dot1Q(vlan=5, type=0x88B5) / b"xx")
    assert m.deliver_frames("vm1", customer) == {"up": outer}  # vm2 is in VLAN 1 only
    assert m.fdb(vlan=100) == {A: "vm1"}


def test_dot1ad_bridge_forwards_the_required_link_local_groups() -> None:
    q = VlanBridgeModel(BR, PORTS)
    ad = VlanBridgeModel(BR, PORTS, vlan_protocol="802.1ad")
    frame = raw(A, dst="01:80:c2:00:00:0d")
    assert q.deliver("vm1", frame) == set()
    assert ad.deliver("vm1", frame) == {"vm2", "up"}


def test_kept_link_local_learns_in_the_frames_vlan() -> None:
    m = tenants()
    m.deliver("up", raw(B, 20, dst="01:80:c2:00:00:0e"))
    assert m.fdb(vlan=20) == {B: "up"}
    m.deliver("up", raw(A, 30, dst="01:80:c2:00:00:0e"))  # not a member of 30: no learning
    assert m.fdb(vlan=30) == {}


def test_vlan_del_drops_dynamic_entries_not_static_ones() -> None:
    m = tenants()
    m.deliver("up", raw(B, 15))
    m.fdb_add(A, "up", vlan=15)
    m.vlan_del("up", 15)
    assert m.fdb(vlan=15) == {A: "up"}


def test_mistakes() -> None:
    m = tenants()
    with pytest.raises(LabError, match="one PVID"):
        m.vlan_add("vm1", range(3, 5), pvid=True)
    with pytest.raises(LabError, match="1-4094"):
        m.vlan_add("vm1", 4095)
    with pytest.raises(LabError, match="not a member"):
        m.vlan_del("vm1", 99)
    with pytest.raises(LabError, match="vlan_filtering=True"):
        VlanBridgeModel(BR, PORTS, vlan_filtering=False)
