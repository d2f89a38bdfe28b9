"""VLAN-aware bridges through the public API, on whichever kernel runs the test.

Kernels without bridge VLAN filtering (the 6.18 vlab is developed on) skip every test here with
``Unsupported``; under ``--vlab-kernel`` with Debian's cloud kernel (``nox -s guest_kernel``)
they run. Read-back is checked against an independent decoder: iproute2's ``bridge -j`` run in
the lab's switch namespace.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether

from vlab import Lab, LabError

pytestmark = pytest.mark.vlab

UNKNOWN = "02:00:00:00:00:99"


def frame(src: str, vid: int | None = None, dst: str = UNKNOWN, prio: int = 0) -> Ether:
    """A probe, tagged with ``vid`` (802.1Q) or untagged."""
    if vid is None:
        return Ether(src=src, dst=dst, type=0x88B5) / b"vlan-probe"
    return Ether(src=src, dst=dst) / Dot1Q(vlan=vid, prio=prio, type=0x88B5) / b"vlan-probe"


def bridge_json(lab: Lab, *argv: str) -> Any:
    out = lab.run("switch", "bridge", "-j", *argv).stdout
    return json.loads(out) if out.strip() else []


def iproute_vlans(lab: Lab, dev: str) -> dict[int, dict[str, bool]]:
    """``bridge -j vlan show dev DEV`` decoded by iproute2, ranges expanded."""
    out: dict[int, dict[str, bool]] = {}
    for row in bridge_json(lab, "vlan", "show", "dev", dev):
        for v in row["vlans"]:
            flags = v.get("flags", [])
            for vid in range(v["vlan"], v.get("vlanEnd", v["vlan"]) + 1):
                out[vid] = {"pvid": "PVID" in flags, "untagged": "Egress Untagged" in flags}
    return out


def tenant_lab(lab: Lab) -> Any:
    """vm1 in VLAN 10 and vm2 in VLAN 20 (access ports), the uplink a trunk of both."""
    br = lab.bridge("br0", vlan_filtering=True)
    vm1 = lab.vm("vm1", bridge=br)
    vm2 = lab.vm("vm2", bridge=br)
    up = lab.uplink(br)
    for vm, vid in ((vm1, 10), (vm2, 20)):
        br.port(vm).vlan_add(vid, pvid=True, untagged=True)
        br.port(vm).vlan_del(1)
    br.port(up).vlan_add("10-20")
    return br, vm1, vm2, up


# --- membership read back -------------------------------------------------------------------


def test_vlans_read_back_agrees_with_iproute2(lab: Lab) -> None:
    br = lab.bridge("br0", vlan_filtering=True)
    vm = lab.vm("vm1", bridge=br)
    up = lab.uplink(br)
    port = br.port(vm)
    port.vlan_add(range(10, 13))
    port.vlan_add(20, pvid=True, untagged=True)
    port.vlan_add([30, "40-41"], untagged=True)
    br.port(up).vlan_add(100)
    br.vlan_add(20)
    want = {
        1: {"pvid": False, "untagged": True},  # the default PVID lost its PVID flag to 20
        10: {"pvid": False, "untagged": False},
        11: {"pvid": False, "untagged": False},
        12: {"pvid": False, "untagged": False},
        20: {"pvid": True, "untagged": True},
        30: {"pvid": False, "untagged": True},
        40: {"pvid": False, "untagged": True},
        41: {"pvid": False, "untagged": True},
    }
    assert port.vlans() == want
    assert port.vlans() == iproute_vlans(lab, vm.port)
    assert br.port(up).vlans() == iproute_vlans(lab, up.port)
    assert 100 in br.port(up).vlans()
    assert br.vlans() == iproute_vlans(lab, "br0")
    assert br.vlans()[20] == {"pvid": False, "untagged": False}
    port.vlan_del("10-11")
    port.vlan_del(20)
    assert set(port.vlans()) == {1, 12, 30, 40, 41}
    assert port.vlans() == iproute_vlans(lab, vm.port)
    with pytest.raises(LabError, match="not a member"):
        port.vlan_del(20)


def test_default_pvid_and_protocol_read_back(lab: Lab) -> None:
    br = lab.bridge("br0", vlan_filtering=True, default_pvid=7, vlan_protocol="802.1ad")
    vm = lab.vm("vm1", bridge=br)
    assert br.port(vm).vlans() == {7: {"pvid": True, "untagged": True}}
    options = br.options()
    assert options["default_pvid"] == 7
    assert options["vlan_protocol"] == "802.1ad"
    detail = json.loads(lab.run("switch", "ip", "-j", "-d", "link", "show", "br0").stdout)
    assert detail[0]["linkinfo"]["info_data"]["vlan_protocol"] == "802.1ad"
    assert detail[0]["linkinfo"]["info_data"]["vlan_default_pvid"] == 7
    # changing the default moves ports still on the old default, and only those
    vm2 = lab.vm("vm2", bridge=br)
    br.port(vm2).vlan_add(30, pvid=True, untagged=True)
    br.set(default_pvid=9)
    assert br.port(vm).vlans() == {9: {"pvid": True, "untagged": True}}
    assert br.port(vm2).vlans()[30] == {"pvid": True, "untagged": True}
    assert 9 not in br.port(vm2).vlans()


# --- frames both ways -----------------------------------------------------------------------


def test_access_untagged_in_leaves_the_trunk_tagged(lab: Lab) -> None:
    br, vm1, vm2, up = tenant_lab(lab)
    vm1.send(frame(vm1.mac))
    up.expect(frame(vm1.mac, 10))  # tagged with vm1's PVID on the trunk
    vm2.expect_none()  # another tenant's VLAN
    vm1.expect_none()
    assert br.fdb(vlan=10)[vm1.mac] == vm1.port
    assert vm1.mac not in br.fdb(vlan=20)


def test_trunk_tagged_in_leaves_access_ports_untagged(lab: Lab) -> None:
    _br, vm1, vm2, up = tenant_lab(lab)
    up.send(frame(up.mac, 20))
    vm2.expect(frame(up.mac))  # untagged egress
    vm1.expect_none()
    up.send(frame(up.mac, 10))
    vm1.expect(frame(up.mac))
    vm2.expect_none()
    lab.expect_quiet()


def test_ingress_filtering_drops_a_vlan_the_port_is_not_in(lab: Lab) -> None:
    br, vm1, vm2, up = tenant_lab(lab)
    up.send(frame(up.mac, 30))  # the trunk carries 10-20 only
    lab.settle()
    for ep in (vm1, vm2):
        ep.expect_none()
    assert up.mac not in br.fdb()  # dropped before learning
    up.send(frame(up.mac, 15))  # the twin: a member VLAN passes (no access port there)
    assert br.fdb(vlan=15)[up.mac] == up.port


def test_priority_tagged_frames_are_classified_into_the_pvid(lab: Lab) -> None:
    _br, vm1, vm2, up = tenant_lab(lab)
    vm1.send(frame(vm1.mac, 0, prio=5))
    got = up.expect(frame(vm1.mac, 10, prio=5), timeout=1.0, mask=None)
    assert got[Dot1Q].vlan == 10 and got[Dot1Q].prio == 5
    vm2.expect_none()


def test_per_vlan_stp_state_blocks_one_vlan_only(lab: Lab) -> None:
    br, vm1, vm2, up = tenant_lab(lab)
    trunk = br.port(up)
    trunk.vlan_set(10, state="blocking")
    states = trunk.vlan_states()
    assert states[10] == "blocking" and states[20] == "forwarding"
    rows = bridge_json(lab, "-d", "vlan", "show", "dev", up.port)[0]["vlans"]
    shown = {
        vid: v["state"] for v in rows for vid in range(v["vlan"], v.get("vlanEnd", v["vlan"]) + 1)
    }
    assert shown[10] == "blocking" and shown[20] == "forwarding"
    up.send(frame(up.mac, 10))
    vm2.send(frame(vm2.mac))
    up.expect(frame(vm2.mac, 20))  # VLAN 20 still crosses the trunk
    vm1.expect_none()  # VLAN 10 is blocked there, both ways
    vm1.send(frame(vm1.mac))
    up.expect_none()
    trunk.vlan_set(10, state="forwarding")
    vm1.send(frame(vm1.mac))
    up.expect(frame(vm1.mac, 10))
    with pytest.raises(LabError, match="expected one of"):
        trunk.vlan_set(10, state="sleeping")


def test_per_vlan_multicast_options_read_back(lab: Lab) -> None:
    br = lab.bridge("br0", vlan_filtering=True, multicast_vlan_snooping=True)
    vm = lab.vm("vm1", bridge=br)
    br.port(vm).vlan_add(10)
    br.vlan_add(10)
    assert br.options()["multicast_vlan_snooping"] is True
    br.vlan_global_set(10, multicast_snooping=False, multicast_query_interval=30)
    ours = br.vlan_global()
    assert ours[10]["multicast_snooping"] is False
    assert ours[10]["multicast_query_interval"] == 30.0
    assert ours[1]["multicast_snooping"] is True
    rows = bridge_json(lab, "-d", "vlan", "global", "show")
    theirs = {v["vlan"]: v for row in rows for v in row["vlans"]}
    assert theirs[10]["mcast_snooping"] == 0 and theirs[1]["mcast_snooping"] == 1
    assert theirs[10]["mcast_query_interval"] == 3000  # centiseconds
    with pytest.raises(LabError, match="unknown per-VLAN option"):
        br.vlan_global_set(10, snooping=True)


# --- the forwarding database per VLAN -------------------------------------------------------


def test_same_mac_in_two_vlans_behind_two_ports(lab: Lab) -> None:
    br = lab.bridge("br0", vlan_filtering=True)
    vm1 = lab.vm("vm1", bridge=br)
    vm2 = lab.vm("vm2", bridge=br)
    up = lab.uplink(br)
    br.port(vm1).vlan_add(10, pvid=True, untagged=True)
    br.port(vm2).vlan_add(20, pvid=True, untagged=True)
    br.port(up).vlan_add([10, 20])
    shared = "02:00:00:00:aa:01"
    vm1.send(frame(shared))
    vm2.send(frame(shared))
    assert br.fdb(vlan=10)[shared] == vm1.port
    assert br.fdb(vlan=20)[shared] == vm2.port
    entries = [(e.vlan, e.port) for e in br.fdb_entries() if e.mac == shared]
    assert sorted(entries) == [(10, vm1.port), (20, vm2.port)]
    theirs = sorted(
        (r["vlan"], r["ifname"])
        for r in bridge_json(lab, "fdb", "show", "br", "br0")
        if r["mac"] == shared
    )
    assert theirs == sorted(entries)
    where = lab.where(shared, vlan=20)
    assert where is not None and where.port == vm2.port and where.vlan == 20
    assert "in VLAN 20" in str(where)
    assert lab.where(shared, vlan=30) is None
    # a frame to the shared MAC goes where its VLAN learnt it
    up.send(frame(up.mac, 20, dst=shared))
    vm2.expect(frame(up.mac, dst=shared))
    vm1.expect_none()


def test_fdb_add_in_a_vlan(lab: Lab) -> None:
    br, vm1, vm2, up = tenant_lab(lab)
    mac = "02:00:00:00:bb:01"
    br.fdb_add(mac, up, vlan=20)
    rows = [r for r in bridge_json(lab, "fdb", "show", "br", "br0") if r["mac"] == mac]
    assert [(r.get("vlan"), r["ifname"], r["state"]) for r in rows] == [(20, up.port, "static")]
    assert br.fdb(vlan=20)[mac] == up.port and mac not in br.fdb(vlan=10)
    vm2.send(frame(vm2.mac, dst=mac))
    up.expect(frame(vm2.mac, 20, dst=mac))
    vm1.expect_none()
    br.fdb_del(mac, up, vlan=20)
    assert mac not in br.fdb(vlan=20)
    with pytest.raises(LabError):
        br.fdb_del(mac, up, vlan=20)


def test_mdb_entry_in_a_vlan(lab: Lab) -> None:
    br, _vm1, vm2, _up = tenant_lab(lab)
    br.mdb_add("239.1.1.1", vm2, vlan=20)
    entries = [(e.group, e.port, e.vlan) for e in br.mdb()]
    assert entries == [("239.1.1.1", vm2.port, 20)]
    theirs = bridge_json(lab, "mdb", "show")[0]["mdb"]
    assert [(m["grp"], m["port"], m["vid"]) for m in theirs] == entries


# --- hosts with sub-interfaces --------------------------------------------------------------


def test_host_vlan_subinterface_frames_both_ways(lab: Lab) -> None:
    br, vm1, vm2, up = tenant_lab(lab)
    h = lab.host("h1", bridge=br)
    br.port(h).vlan_add([10, 20])
    h10 = h.vlan(10)
    assert h10.name == "h1.10" and h10.ifname == "eth0.10" and h10.port == h.port
    h10.send(frame(h.mac))  # untagged on the sub-interface, tagged on the cable
    h.expect_none()  # a host never receives what it sent, on either device
    vm1.expect(frame(h.mac))
    up.expect(frame(h.mac, 10))
    vm2.expect_none()
    vm1.send(frame(vm1.mac))
    h10.expect(frame(vm1.mac))  # the tag is gone on the sub-interface ...
    h.expect(frame(vm1.mac, 10))  # ... and still there on eth0
    vm2.send(frame(vm2.mac))
    h.expect(frame(vm2.mac, 20))
    h10.expect_none()
    with pytest.raises(LabError, match="already has VLAN 10"):
        h.vlan(10)
    with pytest.raises(LabError, match="unplug the host"):
        h10.set_carrier(False)


def test_hosts_ping_across_a_vlan_and_not_across_two(lab: Lab) -> None:
    br = lab.bridge("br0", vlan_filtering=True)
    a = lab.host("a", bridge=br)
    b = lab.host("b", bridge=br)
    c = lab.host("c", bridge=br)
    for h in (a, b, c):
        br.port(h).vlan_add([10, 20])
    a.vlan(10, ip="192.0.2.1/24")
    b.vlan(10, ip="192.0.2.2/24")
    c.vlan(20, ip="192.0.2.3/24")
    assert a.ping("192.0.2.2")
    assert not a.ping("192.0.2.3", timeout=0.3)  # same subnet, other VLAN


def test_dot1ad_bridge_filters_on_the_outer_tag(lab: Lab) -> None:
    br = lab.bridge("br0", vlan_filtering=True, vlan_protocol="802.1ad")
    vm1 = lab.vm("vm1", bridge=br)
    vm2 = lab.vm("vm2", bridge=br)
    up = lab.uplink(br)
    br.port(vm1).vlan_add(100, pvid=True, untagged=True)
    br.port(vm2).vlan_add(200, pvid=True, untagged=True)
    br.port(up).vlan_add([100, 200])
    inner = Dot1Q(vlan=5, type=0x88B5) / b"customer"
    vm1.send(Ether(src=vm1.mac, dst=UNKNOWN) / inner)  # a customer's tagged frame ...
    got = up.expect(Ether(src=vm1.mac, dst=UNKNOWN) / Dot1AD(vlan=100) / inner)  # ... S-tagged
    assert got[Dot1AD].vlan == 100 and got[Dot1Q].vlan == 5
    vm2.expect_none()
    up.send(Ether(src=up.mac, dst=UNKNOWN) / Dot1AD(vlan=200) / inner)
    vm2.expect(Ether(src=up.mac, dst=UNKNOWN) / inner)
    vm1.expect_none()
