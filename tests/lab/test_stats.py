"""``br.port(ep).stats()`` and ``ep.stats()``: the kernel's counters, checked against
``ip -s -j link`` (iproute2's own request and decoder) in the namespace of each link."""

from __future__ import annotations

import json

import pytest
from scapy.layers.l2 import Ether

from vlab import Endpoint, Lab, LabError, LinkStats

pytestmark = pytest.mark.vlab


def ip_stats(lab: Lab, node: str, dev: str) -> LinkStats:
    (link,) = json.loads(lab.run(node, "ip", "-s", "-j", "link", "show", "dev", dev).stdout)
    rx, tx = link["stats64"]["rx"], link["stats64"]["tx"]
    return LinkStats(
        rx["packets"], rx["bytes"], rx["dropped"], tx["packets"], tx["bytes"], tx["dropped"]
    )


def traffic(lab: Lab, *eps: Endpoint) -> None:
    for n, ep in enumerate(eps, 1):
        for i in range(n):
            ep.send(Ether(src=ep.mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / bytes(40 + i))
    lab.settle()
    for ep in eps:
        ep.clear()


def test_counters_match_ip_for_every_port_and_endpoint(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm1 = lab.vm("vm1", bridge=br)
    h1 = lab.host("h1", bridge=br)
    up = lab.uplink(br)
    traffic(lab, vm1, h1, up)  # 1, 2 and 3 broadcasts: every counter differs
    for ep in (vm1, h1, up):
        assert br.port(ep).stats() == ip_stats(lab, "switch", ep.port), ep.name
    assert h1.stats() == ip_stats(lab, "h1", "eth0")
    assert up.stats() == ip_stats(lab, "upstream", up.ifname)
    assert vm1.stats() == ip_stats(lab, "switch", vm1.port).swapped()


def test_counters_count_the_frames_sent_and_received(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm1 = lab.vm("vm1", bridge=br)
    h1 = lab.host("h1", bridge=br)
    up = lab.uplink(br)
    traffic(lab, vm1, h1, up)
    before = {ep.name: ep.stats() for ep in (vm1, h1, up)}
    port_before = br.port(h1).stats()
    frame = Ether(src=vm1.mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / bytes(46)
    vm1.send(frame)
    lab.expect(frame, at=[h1, up])
    assert vm1.stats().tx_packets == before["vm1"].tx_packets + 1
    assert vm1.stats().tx_bytes == before["vm1"].tx_bytes + 60
    for ep in (h1, up):
        assert ep.stats().rx_packets == before[ep.name].rx_packets + 1
        assert ep.stats().rx_bytes == before[ep.name].rx_bytes + 60
    assert br.port(h1).stats().tx_packets == port_before.tx_packets + 1
    assert br.port(h1).stats().rx_packets == port_before.rx_packets


def test_a_vms_drops_show_as_its_receive_drops(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm1 = lab.vm("vm1", bridge=br)
    up = lab.uplink(br)
    head = bytes(Ether(src=up.mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B5))
    for i in range(4200):
        up.send(head + i.to_bytes(4, "big"))
    with pytest.raises(AssertionError, match="lost"):
        lab.settle()
    assert vm1.stats().rx_dropped == br.port(vm1).stats().tx_dropped == 4200 - 4096
    vm1.clear()


def test_stats_of_a_closed_lab_is_a_lab_error() -> None:
    with Lab() as lab:
        h1 = lab.host("h1", bridge=lab.bridge("br0"))
    with pytest.raises(LabError, match="closed"):
        h1.stats()
