"""Port of tools/testing/selftests/net/forwarding/local_termination.sh, its VLAN-aware bridge
cases: ``vlan_aware_bridge`` (the bridge device terminates traffic of its PVID, untagged) and
``vlan_over_vlan_aware_bridge`` (a VLAN 100 upper of the bridge: the device is a tagged member
of VLAN 100 "self", and terminates VLAN 100 only then). Checked are unicast to the bridge's MAC
and multicast to a group the bridge device joined (a host mdb entry); the macvlan, promisc,
allmulti and PTP checks are not ported. Needs VLAN filtering: a skip elsewhere."""

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether

from vlab import Lab

pytestmark = pytest.mark.vlab
JOINED = "225.1.2.3"


def unicast(src: str, dst: str, vid: int | None) -> Ether:
    body = IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1, dport=2) / b"uc"
    return Ether(src=src, dst=dst) / (body if vid is None else Dot1Q(vlan=vid) / body)


def joined(src: str, vid: int | None) -> Ether:
    body = IP(src="192.0.2.1", dst=JOINED, ttl=1) / UDP(sport=1, dport=2) / b"mc"
    return Ether(src=src, dst="01:00:5e:01:02:03") / (
        body if vid is None else Dot1Q(vlan=vid) / body
    )


@pytest.mark.parametrize(("vid", "self_member"), [(None, True), (100, True), (100, False)])
def test_bridge_device_terminates_its_vlans(lab: Lab, vid: int | None, self_member: bool) -> None:
    """``self_member=False`` is the flip: the bridge device is not in VLAN 100, and the same
    checks see nothing arrive."""
    br = lab.bridge("br0", vlan_filtering=True, mac="00:00:de:ad:be:ee")
    h1 = lab.host("h1", br)
    local = br.local
    if vid is not None:
        br.port(h1).vlan_add(vid)
        if self_member:
            br.vlan_add(vid)
    if self_member:
        br.mdb_add(JOINED, br, permanent=False, **({} if vid is None else {"vlan": vid}))
    for frame in (unicast(h1.mac, br.mac, vid), joined(h1.mac, vid)):
        h1.send(frame)
        if self_member:
            local.expect(frame)  # tagged when the bridge is a tagged member, as br0.100 sees it
        else:
            local.expect_none(frame)
