"""The seed's chain made executable: VM vNIC -> tap -> bridge -> uplink, and back."""

from __future__ import annotations

import pytest
from scapy.layers.l2 import ARP, Ether

from vlab import Lab

pytestmark = pytest.mark.vlab
PROBE = 0x88B5  # IEEE local experimental ethertype: no stack in the lab reacts to it


def probe(src: str, dst: str, payload: bytes = b"probe") -> Ether:
    return Ether(src=src, dst=dst, type=PROBE) / payload


def test_vm_frame_floods_to_uplink(lab: Lab) -> None:
    br = lab.bridge("br0", ageing_time=30)
    vm1 = lab.vm("vm1", bridge=br)
    vm2 = lab.vm("vm2", bridge=br, mac="52:54:00:00:00:02")
    up = lab.uplink(br)
    f = probe(vm1.mac, "02:00:00:00:00:99")
    vm1.send(f)
    got = up.expect(f)
    assert bytes(got) == bytes(f)
    vm2.expect(f)
    vm1.expect_none()
    assert br.fdb()[vm1.mac] == vm1.port


def test_uplink_reaches_vm_once_its_mac_is_learnt(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm1, vm2 = lab.vm("vm1", bridge=br), lab.vm("vm2", bridge=br)
    up = lab.uplink(br)
    hello = probe(vm1.mac, "ff:ff:ff:ff:ff:ff")
    vm1.send(hello)
    up.expect(hello)
    vm2.expect(hello)
    back = probe(up.mac, vm1.mac, b"back")
    up.send(back)
    vm1.expect(back)
    vm2.expect_none()  # known unicast: only the learnt port
    up.expect_none()
    assert lab.where(up.mac).port == up.port  # type: ignore[union-attr]


def test_unknown_unicast_before_learning_floods_from_uplink(lab: Lab) -> None:
    br = lab.bridge("br0")
    vms = [lab.vm(f"vm{i}", bridge=br) for i in range(3)]
    host = lab.host("h1", bridge=br)
    up = lab.uplink(br)
    f = probe(up.mac, vms[0].mac)  # vm0 never spoke: unknown unicast
    up.send(f)
    for ep in (*vms, host):
        ep.expect(f)
    up.expect_none()


def test_broadcast_reaches_every_port_but_ingress(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm1, vm2 = lab.vm("vm1", bridge=br), lab.vm("vm2", bridge=br)
    h = lab.host("h1", bridge=br)
    up = lab.uplink(br)
    arp = Ether(src=h.mac, dst="ff:ff:ff:ff:ff:ff") / ARP(
        hwsrc=h.mac, psrc="198.51.100.1", pdst="198.51.100.2"
    )
    h.send(arp)
    for ep in (vm1, vm2, up):
        ep.expect(arp)
    h.expect_none()
    lab.expect_quiet()


def test_fdb_learns_the_guest_mac_not_the_tap_mac(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm = lab.vm("vm1", bridge=br, mac="52:54:00:12:34:56")
    up = lab.uplink(br)
    assert vm.tap_mac != vm.mac
    assert vm.tap_mac == "fe:54:00:12:34:56"  # libvirt's convention
    vm.send(probe(vm.mac, up.mac))
    up.expect(probe(vm.mac, up.mac))
    fdb = br.fdb()
    assert fdb[vm.mac] == vm.port == "vnet0"
    assert vm.tap_mac not in fdb  # the tap's own MAC is a local entry, not learnt
    assert br.fdb(local=True)[vm.tap_mac] == vm.port
    where = lab.where(vm.mac)
    assert where is not None
    assert (where.endpoint, where.owner, where.port, where.bridge, where.how) == (
        "vm1",
        "vm1",
        "vnet0",
        "br0",
        "learnt",
    )
    assert (
        str(where)
        == "52:54:00:12:34:56 (vm1's NIC) is behind port vnet0 (vm1) on bridge br0, learnt"
    )
    assert "\n" not in str(where)


def test_hosts_on_veths_work_like_vms(lab: Lab) -> None:
    br = lab.bridge("br0")
    h1, h2 = lab.host("h1", bridge=br), lab.host("h2", bridge=br)
    up = lab.uplink(br)
    f = probe(h1.mac, h2.mac)
    h1.send(f)
    h2.expect(f)
    up.expect(f)  # h2 not learnt yet: flooded
    h1.expect_none()
    reply = probe(h2.mac, h1.mac)
    h2.send(reply)
    h1.expect(reply)
    up.expect_none()  # h1 is known now
    assert br.fdb()[h1.mac] == h1.port
    assert br.fdb()[h2.mac] == h2.port


def test_host_namespace_runs_programs(lab: Lab) -> None:
    br = lab.bridge("br0")
    h = lab.host("h1", bridge=br, mac="02:00:00:00:00:01")
    out = h.run("ip", "-o", "link", "show", "eth0").stdout
    assert "02:00:00:00:00:01" in out
    assert "state UP" in out


def test_two_bridges_are_separate_switches(lab: Lab) -> None:
    br0, br1 = lab.bridge("br0"), lab.bridge("br1")
    a, b = lab.vm("a", bridge=br0), lab.vm("b", bridge=br1)
    up0, up1 = lab.uplink(br0), lab.uplink(br1)
    assert (up0.name, up1.name) == ("uplink", "uplink-br1")
    f = probe(a.mac, "ff:ff:ff:ff:ff:ff")
    a.send(f)
    up0.expect(f)
    b.expect_none()
    up1.expect_none()


def test_frames_a_port_sends_are_not_received_by_it(lab: Lab) -> None:
    br = lab.bridge("br0")
    h = lab.host("h1", bridge=br)
    vm = lab.vm("vm1", bridge=br)
    up = lab.uplink(br)
    for ep in (h, vm, up):
        ep.send(probe(ep.mac, "ff:ff:ff:ff:ff:ff"))
    lab.settle()
    assert len(h.frames()) == 2
    assert len(vm.frames()) == 2
    assert len(up.frames()) == 2


def test_lab_as_context_manager_outside_pytest() -> None:
    with Lab() as lab:
        br = lab.bridge("br0")
        vm = lab.vm("vm1", bridge=br)
        up = lab.uplink(br)
        vm.send(probe(vm.mac, up.mac))
        up.expect(probe(vm.mac, up.mac))
    with pytest.raises(Exception, match="closed"):
        lab.bridge("br1")


@pytest.mark.parametrize("kind", ["vm", "host"])
def test_unplugged_cable_disables_the_port_and_flushes_it(lab: Lab, kind: str) -> None:
    br = lab.bridge("br0")
    ep = lab.vm("a", bridge=br) if kind == "vm" else lab.host("a", bridge=br)
    other = lab.vm("b", bridge=br)
    ep.send(probe(ep.mac, "ff:ff:ff:ff:ff:ff"))
    other.expect(probe(ep.mac, "ff:ff:ff:ff:ff:ff"))
    assert ep.mac in br.fdb()
    ep.set_carrier(False)  # returns once the bridge has acted on it
    assert ep.mac not in br.fdb()  # dynamic entries of a port that lost carrier are flushed
    assert br.port(ep).options()["state"] == "disabled"
    other.send(probe(other.mac, "ff:ff:ff:ff:ff:ff"))
    ep.expect_none()
    ep.set_carrier(True)
    other.send(probe(other.mac, "ff:ff:ff:ff:ff:ff", b"again"))
    ep.expect(probe(other.mac, "ff:ff:ff:ff:ff:ff", b"again"))


@pytest.mark.parametrize("kind", ["vm", "host"])
def test_an_endpoint_sends_at_once_after_its_carrier_returns(lab: Lab, kind: str) -> None:
    """A host's packet socket keeps ENETDOWN from the moment its link went down; the first send
    after the carrier is back must still reach the bridge (it once failed 'Network is down')."""
    br = lab.bridge("br0")
    ep = lab.vm("a", bridge=br) if kind == "vm" else lab.host("a", bridge=br)
    other = lab.vm("b", bridge=br)
    ep.set_carrier(False)
    ep.set_carrier(True)
    ep.send(probe(ep.mac, other.mac, b"back"))
    other.expect(probe(ep.mac, other.mac, b"back"))
