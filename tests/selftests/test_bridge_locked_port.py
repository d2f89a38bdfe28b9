"""Port of tools/testing/selftests/net/forwarding/bridge_locked_port.sh, subtests
``locked_port_ipv4``, ``locked_port_ipv6``, ``locked_port_mab``, ``locked_port_mab_roam``,
``locked_port_mab_config``, ``locked_port_mab_flush`` (``locked_port_vlan`` needs VLAN
filtering: test_bridge_locked_port_vlan.py)."""

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from vlab import Lab, LabError

pytestmark = pytest.mark.vlab


@pytest.fixture
def net(lab: Lab):
    br = lab.bridge("br0")
    h1 = lab.host("h1", br, ip="192.0.2.1/24", ipv6="2001:db8:1::1/64")
    h2 = lab.host("h2", br, ip="192.0.2.2/24", ipv6="2001:db8:1::2/64")
    br.port(h1).set(learning=False)
    br.fdb_flush()  # what the hosts' first IPv6 frames taught it before learning went off
    return br, h1, h2


@pytest.mark.parametrize("dst", ["192.0.2.2", "2001:db8:1::2"])
def test_locked_port_ping(net, dst: str) -> None:
    br, h1, _h2 = net
    assert h1.ping(dst)
    br.port(h1).set(locked=True)
    assert not h1.ping(dst, timeout=0.3)
    br.fdb_add(h1.mac, h1)
    assert h1.ping(dst)
    br.port(h1).set(locked=False)
    br.fdb_del(h1.mac, h1)
    assert h1.ping(dst)


def test_locked_port_ping_catches_an_unlocked_port(net) -> None:
    _br, h1, _h2 = net
    assert h1.ping("192.0.2.2", timeout=0.3)  # what "not h1.ping" above rules out


def entry(br, mac: str):
    return next((e for e in br.fdb_entries() if e.mac == mac), None)


def test_locked_port_mab(net) -> None:
    br, h1, _h2 = net
    br.port(h1).set(learning=True, locked=True)
    assert not h1.ping("192.0.2.2", timeout=0.3) and entry(br, h1.mac) is None
    br.port(h1).set(mab=True)
    assert not h1.ping("192.0.2.2", timeout=0.3)
    udp_from(h1, h1.mac)  # h1's ARP may still wait for its retransmission: a frame now
    assert entry(br, h1.mac).locked
    br.fdb_add(h1.mac, h1)  # a replace
    assert h1.ping("192.0.2.2") and not entry(br, h1.mac).locked


def udp_from(host, mac: str) -> None:
    host.send(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP() / UDP())
    host.lab.settle()


def test_locked_port_mab_roam(net) -> None:
    br, h1, h2 = net
    mac = "a0:b0:c0:c0:b0:a0"
    br.port(h1).set(learning=True, locked=True, mab=True)
    udp_from(h1, mac)
    assert entry(br, mac).locked and entry(br, mac).port == h1.port
    udp_from(h2, mac)
    assert entry(br, mac).port == h2.port and not entry(br, mac).locked
    udp_from(h1, mac)
    assert entry(br, mac).port == h2.port  # never back to the locked port


def test_locked_port_mab_config(net) -> None:
    br, h1, _h2 = net
    with pytest.raises(LabError):
        br.port(h1).set(learning=True, locked=False, mab=True)
    with pytest.raises(LabError):
        br.port(h1).set(learning=False, locked=True, mab=True)
    br.port(h1).set(learning=True, locked=True, mab=True)


def test_locked_port_mab_flush(net) -> None:
    br, h1, h2 = net
    locked1, unlocked1, locked2, unlocked2 = (f"00:01:02:03:04:0{i}" for i in (5, 6, 7, 8))
    for h, locked, unlocked in ((h1, locked1, unlocked1), (h2, locked2, unlocked2)):
        br.port(h).set(learning=True, locked=True, mab=True)
        br.fdb_add(unlocked, h)
        udp_from(h, locked)
        assert entry(br, locked).locked
    br.port(h1).set(mab=False)
    assert {unlocked1, unlocked2, locked2} <= {e.mac for e in br.fdb_entries()}
    assert entry(br, locked1) is None
