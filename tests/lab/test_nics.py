"""Machines with several NICs: each NIC is an endpoint on its own bridge, frames both ways."""

from __future__ import annotations

import pytest
from scapy.layers.l2 import Ether

from vlab import Lab, LabError

pytestmark = pytest.mark.vlab


def probe(src: str, dst: str, tag: bytes) -> Ether:
    return Ether(src=src, dst=dst, type=0x88B5) / tag


def test_host_with_a_nic_on_each_bridge(lab: Lab) -> None:
    br1, br2 = lab.bridge("br1"), lab.bridge("br2")
    h = lab.host("h1", bridge=[br1, br2], ip="192.0.2.1/24")
    p1, p2 = lab.host("p1", br1, ip="192.0.2.2/24"), lab.host("p2", br2)
    nic0, nic1 = h.nics
    assert nic0 is h and nic1.name == "h1.eth1" and nic1.ifname == "eth1"
    assert nic1.ns is h.ns  # one machine: one namespace, two NICs
    for nic, peer, other in ((nic0, p1, p2), (nic1, p2, p1)):
        out = probe(nic.mac, peer.mac, b"out " + nic.ifname.encode())
        nic.send(out)
        lab.expect(out, at=[peer])  # only on that NIC's network
        back = probe(peer.mac, nic.mac, b"back")
        peer.send(back)
        lab.expect(back, at=[nic])
        assert lab.where(nic.mac).port == nic.port  # type: ignore[union-attr]
        del other
    assert h.ping("192.0.2.2")  # the first NIC's address works as for any host
    assert h.run("ip", "-o", "link", "show", "eth1").returncode == 0


def test_add_nic_later_and_its_address(lab: Lab) -> None:
    br1, br2 = lab.bridge("br1"), lab.bridge("br2")
    h = lab.host("h1", br1)
    nic = h.add_nic(br2, ip="198.51.100.1/24")
    peer = lab.host("p2", br2, ip="198.51.100.2/24")
    assert peer.ping("198.51.100.1")  # answered on eth1, h's second NIC
    assert not lab.host("p1", br1, ip="198.51.100.3/24").ping("198.51.100.1", timeout=0.3)
    assert "198.51.100.1/24" in " ".join(nic.addresses())


def test_vm_with_a_nic_on_each_bridge(lab: Lab) -> None:
    br1, br2 = lab.bridge("br1"), lab.bridge("br2")
    vm = lab.vm("vm1", bridge=[br1, br2])
    up1, up2 = lab.uplink(br1), lab.uplink(br2, name="up2")
    first, second = vm.nics
    assert first is vm and second.name == "vm1.nic1" and second.bridge is br2
    f = probe(second.mac, "ff:ff:ff:ff:ff:ff", b"nic1")
    second.send(f)
    lab.expect(f, at=[up2])
    g = probe(up1.mac, "ff:ff:ff:ff:ff:ff", b"to nic0")
    up1.send(g)
    lab.expect(g, at=[vm])
    assert br2.fdb()[second.mac] == second.port


def test_bad_nic_requests(lab: Lab) -> None:
    br1 = lab.bridge("br1")
    with pytest.raises(LabError, match=r"either bridge= .* or bond="):
        lab.host("h1", br1, bond=[br1, br1])
    with pytest.raises(LabError, match="mode= is a bond's"):
        lab.host("h1", br1, mode="active-backup")
    with pytest.raises(LabError, match="two or more bridges"):
        lab.host("h1", bond=[br1])
    with pytest.raises(LabError, match="unknown bridge"):
        lab.host("h1", bridge=[br1, "nope"])
    assert "h1" not in lab.endpoints
    with pytest.raises(LabError, match="longer than 15"):
        lab.host("h234567890abc", bridge=[br1, br1])
    assert not lab.endpoints
