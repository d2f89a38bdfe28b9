"""A real QEMU guest on a macvtap: QEMU reads the char device vlab opened (``-netdev tap,fd=N``,
as libvirt hands it a ``direct`` interface), and its kernel's frames leave through the NIC."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Ether

from vlab import Lab, Mask
from vlab.qemu import qemu_unavailable

pytestmark = [
    pytest.mark.vlab,
    pytest.mark.qemu,
    pytest.mark.skipif(qemu_unavailable() is not None, reason=str(qemu_unavailable())),
]
GUEST_IP, HOST_IP = "192.0.2.10", "192.0.2.1"


def test_qemu_guest_on_a_macvtap_answers_a_ping(lab: Lab) -> None:
    br = lab.bridge("br0")
    nic = lab.port(br)
    vm = lab.vm("vm1", macvtap=nic, mode="bridge", guest="qemu", mac="52:54:00:00:00:10")
    h = lab.host("h1", br, mac="02:00:00:00:00:01")
    assert vm.run("cat /sys/class/net/eth0/address").output.strip() == vm.mac
    assert vm.run(f"ip addr add {GUEST_IP}/24 dev eth0").ok
    vm.run(f"arping -c 1 -w 1 -I eth0 {HOST_IP}")
    request = Ether(src=vm.mac, dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=vm.mac, psrc=GUEST_IP, pdst=HOST_IP, hwdst="ff:ff:ff:ff:ff:ff"
    )
    h.expect(request, timeout=5)  # the guest's kernel, out of the macvtap, the NIC, the switch
    assert br.fdb()[vm.mac] == nic.name
    ping = Ether(src=h.mac, dst=vm.mac) / IP(src=HOST_IP, dst=GUEST_IP) / ICMP(id=7) / b"vlab"
    h.send(ping)
    vm.expect(ping)  # what the macvtap handed to the guest
    h.expect(Mask(request).ignore("ARP.hwdst", "Ether.dst"), timeout=5)
    h.send(
        Ether(src=h.mac, dst=vm.mac)
        / ARP(op=2, hwsrc=h.mac, psrc=HOST_IP, hwdst=vm.mac, pdst=GUEST_IP)
    )
    reply = h.expect(
        Mask(
            Ether(src=vm.mac, dst=h.mac)
            / IP(src=GUEST_IP, dst=HOST_IP)
            / ICMP(type=0, id=7)
            / b"vlab"
        ).ignore("IP.id", "IP.chksum", "IP.ttl", "IP.flags"),
        timeout=5,
    )
    assert reply[ICMP].type == 0
