"""Port of tools/testing/selftests/net/forwarding/bridge_port_isolation.sh, subtests
``ping_ipv4``, ``ping_ipv6`` and ``flooding``: isolated ports talk only to non-isolated ones."""

import pytest
from scapy.layers.l2 import ARP, Ether

from vlab import Lab

pytestmark = pytest.mark.vlab


def build(lab: Lab, isolate_h1: bool = True):
    br = lab.bridge("br0")
    hosts = [
        lab.host(f"h{i}", br, ip=f"192.0.2.{i}/24", ipv6=f"2001:db8:1::{i}/64") for i in (1, 2, 3)
    ]
    for h, isolated in zip(hosts, (isolate_h1, True, False), strict=True):
        br.port(h).set(isolated=isolated)
    return hosts


def test_ping_ipv4_and_ipv6(lab: Lab) -> None:
    h1, _h2, h3 = build(lab)
    assert not h1.ping("192.0.2.2") and not h1.ping("2001:db8:1::2")
    assert h3.ping("192.0.2.2") and h3.ping("2001:db8:1::2")


def flooding(lab: Lab, isolate_h1: bool = True) -> None:
    h1, h2, h3 = build(lab, isolate_h1)
    for sender, seen in ((h1, False), (h3, True)):
        frame = Ether(src=sender.mac, dst="de:ad:be:ef:13:37") / ARP(pdst="192.0.2.100")
        sender.send(frame)
        h2.expect(frame) if seen else h2.expect_none(frame)


def test_flooding(lab: Lab) -> None:
    flooding(lab)


def test_flooding_catches_an_unisolated_port(lab: Lab) -> None:
    with pytest.raises(AssertionError):
        flooding(lab, isolate_h1=False)


def test_ping_catches_an_unisolated_port(lab: Lab) -> None:
    h1, _h2, _h3 = build(lab, isolate_h1=False)
    assert h1.ping("192.0.2.2")  # the negative check above would have failed
