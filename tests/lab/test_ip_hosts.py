"""IP-level hosts: addresses and routes read back through pyroute2 (an independent decoder),
ping without iputils, IPv6 only where asked, and lab options from the vlab marker."""

from __future__ import annotations

from typing import Any

import pytest
from pyroute2 import IPRoute

from vlab import Lab, LabError
from vlab.endpoints import Host

pytestmark = pytest.mark.vlab


def pyroute2_view(host: Host, what: str) -> list[Any]:
    with host.ns.entered():
        ipr = IPRoute()
    try:
        if what == "addr":
            return [(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=2)]
        return [(r.get_attr("RTA_DST"), r.get_attr("RTA_GATEWAY")) for r in ipr.get_routes()]
    finally:
        ipr.close()


def test_addresses_and_routes_read_back(lab: Lab) -> None:
    br = lab.bridge("br0")
    a = lab.host("a", bridge=br, ip=["192.0.2.1/24", "2001:db8::1/64"])
    a.add_address("198.51.100.1/25")
    a.route_add("203.0.113.0/24", via="192.0.2.254")
    a.route_add("default6", via="2001:db8::fe")
    seen = set(pyroute2_view(a, "addr"))
    assert {("192.0.2.1", 24), ("2001:db8::1", 64), ("198.51.100.1", 25)} <= seen
    assert set(a.addresses()) == {f"{ip}/{plen}" for ip, plen in seen}
    routes = pyroute2_view(a, "route")
    assert ("203.0.113.0", "192.0.2.254") in routes
    assert (None, "2001:db8::fe") in routes


@pytest.mark.parametrize("isolated", [False, True])
def test_ping_answers_exactly_when_the_bridge_forwards(lab: Lab, isolated: bool) -> None:
    br = lab.bridge("br0")
    a = lab.host("a", bridge=br, ip="192.0.2.1/24", ipv6="2001:db8::1/64")
    b = lab.host("b", bridge=br, ip=["192.0.2.2/24", "2001:db8::2/64"])
    br.port(a).set(isolated=isolated)
    br.port(b).set(isolated=isolated)
    assert a.ping("192.0.2.2", count=2) is not isolated
    assert a.ping("2001:db8::2") is not isolated
    assert a.ping("127.0.0.1") and a.ping("192.0.2.1")  # loopback is up


def test_ipv6_only_where_asked(lab: Lab) -> None:
    br = lab.bridge("br0")
    six = lab.host("six", bridge=br, ipv6=True)
    four = lab.host("four", bridge=br, ip="192.0.2.4/24")
    assert any(a.startswith("fe80::") for a in six.addresses())
    assert four.addresses() == ["192.0.2.4/24"]
    assert lab.run("four", "cat", "/proc/sys/net/ipv6/conf/eth0/disable_ipv6").stdout == "1\n"


def test_unreachable_ping_is_false_not_an_error(lab: Lab) -> None:
    a = lab.host("a", bridge=lab.bridge("br0"), ip="192.0.2.1/24")
    assert not a.ping("198.51.100.9")  # no route
    assert not a.ping("192.0.2.9", timeout=0.2)  # nobody answers ARP


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"ip": "192.0.2.1"}, "needs a prefix length"),
        ({"ip": "192.0.2.300/24"}, "is not an IPv4 or IPv6"),
        ({"ip": 7}, "give an address"),
        ({"ipv6": "192.0.2.1/24"}, "is IPv4"),
    ],
)
def test_bad_addresses_are_lab_errors_and_build_nothing(
    lab: Lab, kwargs: dict[str, Any], text: str
) -> None:
    br = lab.bridge("br0")
    with pytest.raises(LabError, match=text):
        lab.host("a", bridge=br, **kwargs)
    assert "a" not in lab.endpoints and not br.ports
    lab.host("a", bridge=br, ip="192.0.2.1/24")  # the name is free again


def test_bad_ping_and_route_arguments(lab: Lab) -> None:
    a = lab.host("a", bridge=lab.bridge("br0"), ip="192.0.2.1/24")
    with pytest.raises(LabError, match="not an IPv4 or IPv6"):
        a.ping("nowhere")
    with pytest.raises(LabError, match="count"):
        a.ping("192.0.2.2", count=0)
    with pytest.raises(LabError, match="same IP version"):
        a.route_add("198.51.100.0/24", via="2001:db8::1")
    with pytest.raises(LabError, match="cannot add route"):
        a.route_add("198.51.100.0/24", via="203.0.113.1")  # gateway not on a link


@pytest.mark.vlab(quiet=False)
def test_marker_options_reach_the_lab(lab: Lab) -> None:
    assert lab.quiet is False


def test_quiet_by_default(lab: Lab) -> None:
    assert lab.quiet is True
