"""The multicast database: entries read back against ``bridge -j -d mdb show`` (iproute2's own
decoder), added and deleted over raw netlink, and the MLD querier working in a quiet lab."""

from __future__ import annotations

import json

import pytest
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from vlab import Lab, LabError

pytestmark = pytest.mark.vlab


def iproute2_mdb(lab: Lab) -> list[dict[str, object]]:
    out = json.loads(lab.run("switch", "bridge", "-j", "-d", "-s", "mdb", "show").stdout)
    return [e for block in out for e in block.get("mdb", [])]


def test_entries_read_back_like_iproute2(lab: Lab) -> None:
    br = lab.bridge("br0", multicast_igmp_version=3, multicast_mld_version=2)
    a, b = lab.vm("a", bridge=br), lab.vm("b", bridge=br)
    br.mdb_add("239.1.1.1", a)
    br.mdb_add("ff0e::1", b, permanent=False)
    br.mdb_add("239.1.1.2", b, permanent=False, sources=["192.0.2.1", "192.0.2.2"], mode="include")
    br.mdb_add("239.1.1.3", a, source="192.0.2.9")
    br.mdb_add("239.1.1.4", br, permanent=False)  # the bridge itself joins: a host join
    ours = {(e.port, e.group, e.source, e.state) for e in br.mdb()}
    theirs = {(e["port"], e["grp"], e.get("src"), e["state"]) for e in iproute2_mdb(lab)}
    assert ours == theirs
    assert ("vnet0", "239.1.1.1", None, "permanent") in ours
    assert ("br0", "239.1.1.4", None, "temp") in ours
    star_g = next(e for e in br.mdb() if e.group == "239.1.1.2" and e.source is None)
    assert [s.address for s in star_g.sources] == ["192.0.2.1", "192.0.2.2"]
    assert star_g.mode == "include" and all(s.timer > 200 for s in star_g.sources)
    by_iproute2 = next(e for e in iproute2_mdb(lab) if e["grp"] == "239.1.1.2" and "src" not in e)
    assert by_iproute2["filter_mode"] == "include"
    assert sorted(s["address"] for s in by_iproute2["source_list"]) == ["192.0.2.1", "192.0.2.2"]
    assert br.port(a).options()["mcast_n_groups"] == 2
    br.mdb_del("239.1.1.1", a)
    br.mdb_del("239.1.1.3", a, source="192.0.2.9")
    assert {e.group for e in br.mdb() if e.port == "vnet0"} == set()
    assert br.port(a).options()["mcast_n_groups"] == 0


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("192.0.2.1",), "not a multicast"),
        (("nonsense",), "not an IP address"),
        (("239.1.1.1",), None),
    ],
)
def test_mdb_argument_errors(lab: Lab, args: tuple[str], text: str | None) -> None:
    br = lab.bridge("br0")
    vm = lab.vm("a", bridge=br)
    if text is None:
        with pytest.raises(LabError, match="source 2001:db8::1 and group"):
            br.mdb_add(*args, vm, source="2001:db8::1")
        with pytest.raises(LabError, match="host join"):
            br.mdb_add(*args, br)  # the kernel takes host joins as temporary only
        with pytest.raises(LabError, match="mode="):
            br.mdb_add(*args, vm, mode="sideways")
        with pytest.raises(LabError, match="kernel refused"):
            br.mdb_del(*args, vm)  # no such entry
    else:
        with pytest.raises(LabError, match=text):
            br.mdb_add(*args, vm)


@pytest.mark.parametrize("querier", [True, False])
def test_mld_querier_works_in_a_quiet_lab(lab: Lab, querier: bool) -> None:
    """With the querier on, IPv6 multicast to a registered group reaches only its member; with
    it off (the flip) the bridge floods it, since no querier exists."""
    br = lab.bridge("br0", multicast_querier=querier, multicast_query_response_interval=0.3)
    member, other, sender = (lab.vm(n, bridge=br) for n in ("member", "other", "sender"))
    br.mdb_add("ff0e::1:2", member)
    if querier:
        br.wait_querier()
    frame = (
        Ether(src=sender.mac, dst="33:33:00:01:00:02")
        / IPv6(src="2001:db8::1", dst="ff0e::1:2")
        / b"payload"
    )  # an empty IPv6 payload is dropped by snooping (ipv6_mc_check_ip6hdr)
    sender.send(frame)
    member.expect(frame)
    if querier:
        other.expect_none(frame)
    else:
        other.expect(frame)


def test_wait_querier_needs_a_querier(lab: Lab) -> None:
    with pytest.raises(LabError, match="no querier"):
        lab.bridge("br0").wait_querier()


def test_failure_report_shows_the_mdb_next_to_the_fdb(lab: Lab) -> None:
    br = lab.bridge("br0", multicast_igmp_version=3)
    vm = lab.vm("a", bridge=br)
    br.mdb_add("239.1.1.1", vm)
    br.mdb_add("239.1.1.2", vm, permanent=False, sources=["192.0.2.7"], mode="include")
    text = lab.fdb_text()
    assert "mdb of br0:" in text and "239.1.1.1 vnet0 permanent static exclude" in text
    assert "239.1.1.2 vnet0 temp" in text and "sources 192.0.2.7" in text
    assert text.index("fdb of br0") < text.index("mdb of br0")
