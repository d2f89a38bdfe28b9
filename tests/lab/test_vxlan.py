"""Two hypervisors joined by VXLAN: VM -> tap -> bridge -> vxlan -> underlay -> vxlan -> bridge
-> tap -> VM, with frames asserted at every hop, the underlay included."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN

from vlab import Lab, LabError

pytestmark = pytest.mark.vlab


def probe(src: str, dst: str, tag: bytes = b"overlay", size: int = 0) -> Ether:
    return Ether(src=src, dst=dst, type=0x88B5) / (tag + b"\0" * size)


def overlay(lab: Lab, learning: bool = True):  # type: ignore[no-untyped-def]
    br_a = lab.bridge("br-a")
    hv = lab.hypervisor("hv2")
    br_b = hv.bridge("br-b")
    vm1 = lab.vm("vm1", bridge=br_a)
    vm2 = hv.vm("vm2", bridge=br_b)
    vx = lab.vxlan(br_a, br_b, vni=42, learning=learning)
    ul_a, ul_b = vx.watch_underlay()
    return br_a, br_b, vm1, vm2, vx, ul_a, ul_b


def test_vm_to_vm_across_the_overlay_both_ways(lab: Lab) -> None:
    br_a, br_b, vm1, vm2, vx, ul_a, ul_b = overlay(lab)
    f = probe(vm1.mac, vm2.mac)
    vm1.send(f)
    got = ul_b.expect(vx.encapsulated(f, to=br_b))  # on the underlay, towards hv2
    assert got[VXLAN].vni == 42 and got[UDP].dport == 4789
    assert got[IP].src == vx.vteps[0] and got[IP].dst == vx.vteps[1]
    lab.expect(f, at=[vm2])  # decapsulated and delivered; nowhere else
    back = probe(vm2.mac, vm1.mac, b"back")
    vm2.send(back)
    ul_a.expect(vx.encapsulated(back, to=br_a))
    lab.expect(back, at=[vm1])
    # each bridge learnt the far VM behind its vxlan port; the devices learnt the remote VTEP
    assert br_a.fdb()[vm2.mac] == vx.ports[0].name
    assert br_b.fdb()[vm1.mac] == vx.ports[1].name
    remotes = {(e.mac, e.dst) for e in vx.fdb(br_a)}
    assert ("00:00:00:00:00:00", vx.vteps[1]) in remotes  # head-end replication entry
    assert (vm2.mac, vx.vteps[1]) in remotes  # learnt: vm2 is behind hv2's VTEP


def test_no_learning_keeps_only_the_static_remote(lab: Lab) -> None:
    br_a, br_b, vm1, vm2, vx, _ul_a, ul_b = overlay(lab, learning=False)
    f = probe(vm1.mac, vm2.mac)
    vm1.send(f)
    ul_b.expect(vx.encapsulated(f, to=br_b))
    vm2.expect(f)
    vm2.send(probe(vm2.mac, vm1.mac))
    vm1.expect(probe(vm2.mac, vm1.mac))
    assert [(e.mac, e.dst) for e in vx.fdb(br_a)] == [("00:00:00:00:00:00", vx.vteps[1])]


def test_unknown_unicast_is_replicated_to_every_remote(lab: Lab) -> None:
    """Head-end replication: one copy per remote VTEP of the VNI, none back to the sender."""
    br_a = lab.bridge("br-a")
    hv2, hv3 = lab.hypervisor("hv2"), lab.hypervisor("hv3")
    br_b, br_c = hv2.bridge("br-b"), hv3.bridge("br-c")
    vm1 = lab.vm("vm1", bridge=br_a)
    vm2, vm3 = hv2.vm("vm2", bridge=br_b), hv3.vm("vm3", bridge=br_c)
    ab = lab.vxlan(br_a, br_b, vni=7)
    ac = lab.vxlan(br_a, br_c, vni=7)
    lab.vxlan(br_b, br_c, vni=7)
    assert ab.ports[0] is ac.ports[0]  # one device per bridge and VNI, two remotes on it
    _, ul_b = ab.watch_underlay()
    _, ul_c = ac.watch_underlay(name_a="ul-a2", name_b="ul-c")
    f = probe(vm1.mac, "02:00:00:00:00:99", b"who is it")
    vm1.send(f)
    ul_b.expect(ab.encapsulated(f, to=br_b))
    ul_c.expect(ac.encapsulated(f, to=br_c))
    lab.expect(f, at=[vm2, vm3])  # flooded at each far bridge; vm1 never gets its own back
    zeros = sorted(e.dst for e in ab.fdb(br_a) if e.mac == "00:00:00:00:00:00")
    assert zeros == sorted([ab.vteps[1], ac.vteps[1]])
    hello = probe(vm3.mac, vm1.mac, b"hello")
    vm3.send(hello)  # hv3 learnt vm1 behind hv1's VTEP from the flood: one copy, to hv1
    lab.expect(hello, at=[vm1])
    known = probe(vm1.mac, vm3.mac, b"known now")
    vm1.send(known)
    lab.expect(known, at=[vm3])  # learnt behind hv3's VTEP: one copy, to hv3 only
    assert (vm3.mac, ac.vteps[1]) in {(e.mac, e.dst) for e in ab.fdb(br_a)}


@pytest.mark.parametrize("size", [1450, 1454, 1455])
def test_inner_mtu_is_the_underlay_minus_vxlan_overhead(lab: Lab, size: int) -> None:
    """ul0 has MTU 1500; VXLAN over IPv4 adds 50 bytes, so the vxlan port's MTU is 1450.

    1450 bytes of payload cross as one 1500-byte underlay packet. The bridge forwards up to
    MTU + 18 bytes (room for a tag), so 1451-1454 still enter the vxlan device, whose outer
    packet (DF not set) is then fragmented on the underlay and reassembled at hv2. From 1455 the
    bridge drops the frame at the vxlan port: nothing on the underlay, nothing at vm2. Each
    size is the others' flip."""
    _br_a, br_b, vm1, vm2, vx, _ul_a, ul_b = overlay(lab)
    f = Ether(src=vm1.mac, dst=vm2.mac, type=0x88B5) / (b"x" * size)
    vm1.send(f)
    if size == 1450:
        got = ul_b.expect(vx.encapsulated(f, to=br_b))
        assert len(got[IP]) == 1500 and got[IP].frag == 0 and not got[IP].flags.MF
        lab.expect(f, at=[vm2])
    elif size == 1454:
        lab.expect(f, at=[vm2])
        pieces = ul_b.frames()
        assert [(p[IP].flags.MF, p[IP].frag > 0) for p in pieces] == [(True, False), (False, True)]
        assert len(pieces[0][IP]) == 1500
    else:
        lab.expect(f, at=[])
        assert ul_b.frames() == []  # dropped before encapsulation


def test_underlay_failure_diff_decodes_the_inner_frame(lab: Lab) -> None:
    _br_a, br_b, vm1, vm2, vx, _ul_a, ul_b = overlay(lab)
    f = probe(vm1.mac, vm2.mac)
    vm1.send(f)
    wrong = probe(vm1.mac, "52:54:00:00:00:77")
    with pytest.raises(AssertionError) as failed:
        ul_b.expect(vx.encapsulated(wrong, to=br_b), timeout=0.2)
    text = str(failed.value)
    assert "inner Ether.dst: expected '52:54:00:00:00:77'" in text
    assert "VXLAN" in text
    ul_b.expect(vx.encapsulated(f, to=br_b))  # the right one is still there
    vm2.expect(f)


def test_bad_vxlan_requests(lab: Lab) -> None:
    br_a = lab.bridge("br-a")
    other = lab.bridge("br-x")
    hv = lab.hypervisor("hv2")
    br_b = hv.bridge("br-b")
    with pytest.raises(LabError, match="same hypervisor"):
        lab.vxlan(br_a, other, vni=1)
    with pytest.raises(LabError, match="vni=0"):
        lab.vxlan(br_a, br_b, vni=0)
    with pytest.raises(LabError, match="dstport"):
        lab.vxlan(br_a, br_b, vni=1, dstport=70000)
    with pytest.raises(LabError, match="exists already"):
        lab.hypervisor("hv2")
    with pytest.raises(LabError, match="already used"):
        lab.host("hv2", br_a)  # a hypervisor's namespace name is taken
    lab.vxlan(br_a, br_b, vni=5)
    with pytest.raises(LabError, match="dstport=4789"):
        lab.vxlan(br_a, br_b, vni=5, dstport=8472)
    with pytest.raises(LabError, match="one bridge per VNI"):
        lab.vxlan(other, br_b, vni=5)


def test_every_hop_of_the_overlay_path_and_the_second_hypervisor_s_building_calls(
    lab: Lab,
) -> None:
    """vm1 -> tap -> br-a -> vxlan -> underlay -> vxlan -> br-b -> {host, uplink, VM} on hv2,
    each hop seen: the tap's counters, the underlay packet, the far bridge's fdb, the far
    endpoints; and back from hv2's host to vm1."""
    br_a = lab.bridge("br-a")
    hv = lab.hypervisor("hv2")
    br_b = hv.bridge("br-b")
    vm1 = lab.vm("vm1", bridge=br_a)
    h2 = hv.host("h2", br_b, ip="192.0.2.2/24")
    up2 = hv.uplink(br_b, name="up2")
    vm2 = hv.vm("vm2", bridge=br_b)
    vx = lab.vxlan(br_a, br_b, vni=4242)
    ul_a, ul_b = vx.watch_underlay()
    assert h2.ns.name == "h2" and up2.ns.name == "hv2-up"  # hv2's own upstream namespace
    assert br_b.switch is hv.switch and vm2.switch is hv.switch
    f = probe(vm1.mac, "ff:ff:ff:ff:ff:ff", b"every hop")
    before = br_a.port(vm1).stats().rx_packets
    vm1.send(f)
    assert br_a.port(vm1).stats().rx_packets == before + 1  # hop 1: into br-a through the tap
    ul_b.expect(vx.encapsulated(f, to=br_b))  # hop 2: the underlay, towards hv2
    lab.expect(f, at=[h2, up2, vm2])  # hop 3: br-b flooded it to everything on hv2
    assert br_b.fdb()[vm1.mac] == vx.ports[1].name  # learnt behind hv2's vxlan port
    assert lab.where(vm1.mac).bridge == "br-a"  # type: ignore[union-attr]
    back = probe(h2.mac, vm1.mac, b"back from hv2")
    h2.send(back)
    ul_a.expect(vx.encapsulated(back, to=br_a))
    lab.expect(back, at=[vm1])
    assert "hv2" in lab.namespaces() and "underlay" in lab.namespaces()
    assert lab.run("hv2", "bridge", "link").stdout.count("master br-b") == 4  # 3 + vxlan
    assert "underlay ul-hv2" in lab.describe()
    assert "bridge br-b mac" in lab.describe() and "on hypervisor hv2" in lab.describe()
