"""Port of tools/testing/selftests/net/forwarding/no_forwarding.sh, subtests ``standalone``
and ``two_bridges`` (untagged only): nothing h1 sends crosses from its switch port to h2's when
the ports are in no bridge or in two bridges. ``one_bridge_two_pvids`` (VLAN filtering) is in
test_no_forwarding_vlan.py; the tagged cases are not ported."""

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Ether

from vlab import Lab

pytestmark = pytest.mark.vlab


def frames(smac: str, dmac: str) -> list[Ether]:
    return [
        Ether(src=smac, dst=dmac) / b"HELO",
        Ether(src=smac, dst="01:02:03:04:05:06") / b"HELO",
        Ether(src=smac, dst="ff:ff:ff:ff:ff:ff") / b"HELO",
        Ether(src=smac, dst=dmac) / IP(src="192.0.2.1", dst="192.0.2.2") / ICMP(),
        Ether(src=smac, dst="01:00:5e:00:00:01") / IP(src="192.0.2.1", dst="224.0.0.1") / ICMP(),
        Ether(src=smac, dst=dmac)
        / IPv6(src="2001:db8:1::1", dst="2001:db8:1::2")
        / ICMPv6EchoRequest(),
        Ether(src=smac, dst="33:33:00:00:00:01")
        / IPv6(src="fe80::1", dst="ff02::1")
        / ICMPv6EchoRequest(),
    ]


@pytest.mark.parametrize("ports", ["standalone", "two_bridges", "one_bridge"])
def test_no_forwarding(lab: Lab, ports: str) -> None:
    """``one_bridge`` is the flip: one bridge forwards, and the check sees it."""
    br0 = lab.bridge("br0") if ports != "standalone" else None
    br1 = lab.bridge("br1") if ports == "two_bridges" else br0
    h1, h2 = lab.host("h1", bridge=br0), lab.host("h2", bridge=br1)
    for frame in frames(h1.mac, h2.mac):
        h1.send(frame)
    if ports == "one_bridge":
        with pytest.raises(AssertionError):
            h2.expect_none()
    else:
        h2.expect_none()
