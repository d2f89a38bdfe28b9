"""Port of tools/testing/selftests/net/forwarding/bridge_mdb_port_down.sh, subtest
``add_del_to_port_down``: permanent mdb entries added to and deleted from a port that is
administratively down keep working when it comes up."""

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from vlab import Lab

pytestmark = pytest.mark.vlab
GROUP, GROUP_MAC = "239.10.10.10", "01:00:5e:0a:0a:0a"


def add_del_to_port_down(lab: Lab, add: bool = True) -> None:
    br = lab.bridge("br0", multicast_querier=True, multicast_query_response_interval=0.5)
    h1, h2 = lab.vm("h1", bridge=br), lab.vm("h2", bridge=br)
    br.port(h2).set(mcast_flood=False)
    br.wait_querier()
    frame = Ether(src=h1.mac, dst=GROUP_MAC) / IP(src="192.0.2.1", dst=GROUP) / UDP(dport=4096)
    br.port(h2).set_up(False)
    if add:
        br.mdb_add(GROUP, h2, permanent=True)
    br.port(h2).set_up(True)
    h1.send(frame)
    h2.expect(frame)
    br.port(h2).set_up(False)
    assert any(e.group == GROUP and e.permanent for e in br.mdb())
    br.mdb_del(GROUP, h2)
    br.port(h2).set_up(True)
    h1.send(frame)
    h2.expect_none(frame)


def test_add_del_to_port_down(lab: Lab) -> None:
    add_del_to_port_down(lab)


def test_catches_a_missing_entry(lab: Lab) -> None:
    with pytest.raises(AssertionError):
        add_del_to_port_down(lab, add=False)
