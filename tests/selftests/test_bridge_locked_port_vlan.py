"""Port of tools/testing/selftests/net/forwarding/bridge_locked_port.sh, subtest
``locked_port_vlan``: a locked port admits a host's VLAN 100 traffic only once an fdb entry for
its MAC *in VLAN 100* exists. Hosts talk through 802.1Q sub-interfaces (``host.vlan``), as the
script's ``$h1.100``. Needs VLAN filtering and 8021q: a skip elsewhere."""

import pytest

from vlab import Lab

pytestmark = pytest.mark.vlab


@pytest.fixture
def net(lab: Lab):
    br = lab.bridge("br0", vlan_filtering=True)
    h1 = lab.host("h1", br, ip="192.0.2.1/24")
    h2 = lab.host("h2", br, ip="192.0.2.2/24")
    br.port(h1).set(learning=False)
    for h in (h1, h2):
        br.port(h).vlan_add(100)
    v1 = h1.vlan(100, ip="198.51.100.1/24")
    h2.vlan(100, ip="198.51.100.2/24")
    return br, h1, v1


@pytest.mark.parametrize("entry_vlan", [100, 1])
def test_locked_port_vlan(net, entry_vlan: int) -> None:
    """``entry_vlan=1`` is the flip: an entry in the wrong VLAN does not unlock VLAN 100."""
    br, h1, v1 = net
    assert v1.ping("198.51.100.2")
    br.port(h1).set(locked=True)
    assert not v1.ping("198.51.100.2", timeout=0.3)
    br.fdb_add(h1.mac, h1, vlan=entry_vlan)
    assert v1.ping("198.51.100.2", timeout=0.3 if entry_vlan != 100 else 1.0) is (entry_vlan == 100)
    assert h1.ping("192.0.2.2", timeout=0.3) is (entry_vlan == 1)  # and only in its VLAN
    br.port(h1).set(locked=False)
    br.fdb_del(h1.mac, h1, vlan=entry_vlan)
    assert v1.ping("198.51.100.2")
