"""Endpoints in no bridge (``lab.host(name, bridge=None)`` and its ``host.peer``): frames both
ways and nowhere else, carrier, pcaps and topology text, teardown, and receive filters read
back from the kernel."""

from __future__ import annotations

import json
import socket

import pytest
from scapy.layers.l2 import Ether

from vlab import Lab, LabError, reaper

pytestmark = pytest.mark.vlab


def test_frames_go_both_ways_between_a_host_and_its_peer_and_nowhere_else(lab: Lab) -> None:
    br = lab.bridge("br0")
    h1, h2 = lab.host("h1", bridge=None), lab.host("h2", bridge=None)
    vm = lab.vm("vm", bridge=br)
    peer = h1.peer
    assert (peer.kind, peer.name, peer.port, h1.port) == ("interface", "h1.peer", h1.port, h1.port)
    out = Ether(src=h1.mac, dst="ff:ff:ff:ff:ff:ff") / b"from h1"
    h1.send(out)
    peer.expect(out)
    back = Ether(src=peer.mac, dst=h1.mac) / b"from the standalone interface"
    peer.send(back)
    h1.expect(back)
    for ep in (h2, h2.peer, vm):  # nothing forwards between interfaces in no bridge
        ep.expect_none()
    with pytest.raises(AssertionError, match=rf"h2 \({h2.port}, in no bridge\) did not receive"):
        h2.expect(out, timeout=0.05)
    assert lab.where(h1.mac) is None
    with pytest.raises(LabError, match="no bridge"):
        br.port(h1)
    with pytest.raises(LabError, match="cabled to a bridge"):
        _ = lab.host("h3", bridge=br).peer


@pytest.mark.parametrize("end", ["host", "peer"])
def test_unplugging_either_end_cuts_the_cable(lab: Lab, end: str) -> None:
    """Unplugged, the frame that arrived before does not (the flip of the first check);
    plugged again, it arrives."""
    h1 = lab.host("h1", bridge=None)
    frame = Ether(src=h1.peer.mac, dst=h1.mac) / b"over the cable"
    h1.peer.send(frame)
    h1.expect(frame)
    unplugged = h1 if end == "host" else h1.peer
    unplugged.set_carrier(False)
    assert not h1.carrier and not h1.peer.carrier
    for end_ in (h1, h1.peer):  # neither end sends into an unplugged cable
        with pytest.raises(LabError, match="unplugged"):
            end_.send(frame)
    h1.expect_none(frame)
    h1.peer.expect_none()
    unplugged.set_carrier(True)
    h1.peer.send(frame)
    h1.expect(frame)


def test_pcaps_and_topology_name_the_peer(lab: Lab, tmp_path) -> None:  # type: ignore[no-untyped-def]
    h1 = lab.host("h1", bridge=None, ip="192.0.2.1/24")
    h1.peer.add_address("192.0.2.2/24")
    assert h1.peer.addresses() == ["192.0.2.2/24"]
    assert h1.ping("192.0.2.2")
    text = lab.describe()
    assert "in no bridge" in text and "interface h1.peer" in text and "host h1" in text
    from vlab.cli.up import nodes_of

    rows = {(n.name, n.kind, n.ns, n.bridge, n.port) for n in nodes_of(lab)}
    assert rows == {
        ("h1", "host", "h1", None, h1.port),
        ("h1.peer", "interface", "switch", None, h1.port),
    }
    lab.settle()  # drained into the endpoints' logs
    out = lab.write_artifacts(tmp_path)
    assert (out / f"h1.peer-{h1.port}.pcap").stat().st_size > 24  # echo request and reply
    assert (out / f"h1-{h1.port}.pcap").stat().st_size > 24


def test_closed_lab_leaves_no_link_and_no_fd() -> None:
    links_before = set(socket.if_nameindex())
    reaper.drain()
    with Lab() as lab:
        h1 = lab.host("h1", bridge=None)
        h1.peer.join("239.1.2.3")
        h1.peer.add_mac("02:00:00:00:10:01")
    assert reaper.drain()
    assert set(socket.if_nameindex()) == links_before
    with pytest.raises(LabError):
        h1.peer.send(b"\0" * 60)


def ip_link(lab: Lab, dev: str) -> dict:  # type: ignore[type-arg]
    return json.loads(lab.run("switch", "ip", "-d", "-j", "link", "show", "dev", dev).stdout)[0]


def test_receive_filter_reads_back_what_iproute2_shows(lab: Lab) -> None:
    h1 = lab.host("h1", bridge=None)
    peer = h1.peer
    before = peer.rx_filter()
    assert not before.promisc and not before.allmulti and before.macs == ()
    peer.set_promisc(True)
    peer.set_allmulti(True)
    now = peer.rx_filter()
    flags = ip_link(lab, peer.port)["flags"]
    assert now.promisc and now.allmulti and {"PROMISC", "ALLMULTI"} <= set(flags)
    peer.set_promisc(False)
    assert not peer.rx_filter().promisc and "PROMISC" not in ip_link(lab, peer.port)["flags"]
    peer.add_mac("02:00:00:00:10:01")  # a veth filters no unicast: it turns promiscuous
    after = peer.rx_filter()
    assert after.macs == ("02:00:00:00:10:01",) and after.promiscuity == 1
    assert ip_link(lab, peer.port)["promiscuity"] == 1
    peer.del_mac("02:00:00:00:10:01")
    assert peer.rx_filter().macs == () and peer.rx_filter().promiscuity == 0
    peer.join("239.1.2.3")
    peer.join("ff2e::1")
    groups = peer.rx_filter().groups
    assert "01:00:5e:01:02:03" in groups and "33:33:00:00:00:01" in groups
    peer.leave("239.1.2.3")
    assert "01:00:5e:01:02:03" not in peer.rx_filter().groups
    with pytest.raises(LabError, match="not a multicast group"):
        peer.join("192.0.2.1")
    with pytest.raises(LabError, match="not joined"):
        peer.leave("239.1.2.3")
