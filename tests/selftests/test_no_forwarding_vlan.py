"""Port of tools/testing/selftests/net/forwarding/no_forwarding.sh, subtest
``one_bridge_two_pvids``: two ports of one VLAN-aware bridge with different PVIDs (and no
default PVID) never forward to each other, untagged or tagged with any VID the script picks.
Needs VLAN filtering: a skip elsewhere. ``bridge_aware_vlan_uppers`` is not ported."""

import pytest
from scapy.layers.l2 import Dot1Q, Ether

from vlab import Lab

pytestmark = pytest.mark.vlab
VIDS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 4000, 4094)


def frames(smac: str, dmac: str, vid: int | None) -> list[Ether]:
    out = []
    for dst in (dmac, "01:02:03:04:05:06", "ff:ff:ff:ff:ff:ff"):
        head = Ether(src=smac, dst=dst)
        out.append(head / b"HELO" if vid is None else head / Dot1Q(vlan=vid) / b"HELO")
    return out


@pytest.mark.parametrize("same_pvid", [False, True])
def test_one_bridge_two_pvids(lab: Lab, same_pvid: bool) -> None:
    """``same_pvid=True`` is the flip: one PVID for both, and untagged traffic arrives."""
    br = lab.bridge("br0", vlan_filtering=True, default_pvid=0)
    h1, h2 = lab.host("h1", br), lab.host("h2", br)
    br.port(h1).vlan_add(1, pvid=True, untagged=True)
    br.port(h2).vlan_add(1 if same_pvid else 2, pvid=True, untagged=True)
    for vid in (None, *VIDS):
        for frame in frames(h1.mac, h2.mac, vid):
            h1.send(frame)
    if same_pvid:
        for frame in frames(h1.mac, h2.mac, None):
            h2.expect(frame)
    else:
        h2.expect_none()
