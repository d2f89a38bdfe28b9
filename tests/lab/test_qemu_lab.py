"""The seed's VM for real: a QEMU guest on the tap, its own kernel driving frames through
tap -> bridge -> uplink, observed with the same endpoint API as an emulated VM."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Ether

from vlab import Lab, LabError, Mask
from vlab.qemu import qemu_unavailable

pytestmark = [
    pytest.mark.vlab,
    pytest.mark.qemu,
    pytest.mark.skipif(qemu_unavailable() is not None, reason=str(qemu_unavailable())),
]
GUEST_IP, UP_IP = "192.0.2.10", "192.0.2.1"  # TEST-NET-1, only ever inside the lab


def test_guest_traffic_through_tap_bridge_uplink(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm = lab.vm("vm1", bridge=br, mac="52:54:00:00:00:10", guest="qemu")
    up = lab.uplink(br, mac="02:00:00:00:00:01")
    assert vm.run("cat /sys/class/net/eth0/address").output.strip() == vm.mac

    # the guest kernel speaks: an ARP request from busybox reaches the uplink
    assert vm.run(f"ip addr add {GUEST_IP}/24 dev eth0").ok
    vm.run(f"arping -c 1 -w 1 -I eth0 {UP_IP}")
    request = Ether(src=vm.mac, dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=vm.mac, psrc=GUEST_IP, pdst=UP_IP, hwdst="ff:ff:ff:ff:ff:ff"
    )
    got = up.expect(request, timeout=5)
    assert got[ARP].psrc == GUEST_IP
    assert br.fdb()[vm.mac] == vm.port  # learnt on the tap, which has a MAC of its own
    where = lab.where(vm.mac)
    assert where is not None and where.endpoint == "vm1"

    # and the way back: an echo request injected upstream is answered by the guest's kernel,
    # which first asks (ARP) where the sender is, and gets its answer from the uplink too
    ping = Ether(src=up.mac, dst=vm.mac) / IP(src=UP_IP, dst=GUEST_IP) / ICMP(id=7, seq=1) / b"vlab"
    up.send(ping)
    vm.expect(ping)  # what the bridge put on the tap towards the guest
    up.expect(Mask(request).ignore("ARP.hwdst", "Ether.dst"), timeout=5)
    up.send(
        Ether(src=up.mac, dst=vm.mac)
        / ARP(op=2, hwsrc=up.mac, psrc=UP_IP, hwdst=vm.mac, pdst=GUEST_IP)
    )
    reply = up.expect(
        Mask(
            Ether(src=vm.mac, dst=up.mac)
            / IP(src=GUEST_IP, dst=UP_IP)
            / ICMP(type=0, id=7, seq=1)
            / b"vlab"
        ).ignore("IP.id", "IP.chksum", "IP.ttl", "IP.flags"),
        timeout=5,
    )
    assert reply[ICMP].type == 0
    counters = vm.run("cat /sys/class/net/eth0/statistics/rx_packets").output
    assert int(counters) >= 1


def test_emulated_vm_has_no_guest_to_run_commands(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm = lab.vm("vm1", bridge=br)
    with pytest.raises(LabError, match="emulated"):
        vm.run("true")
