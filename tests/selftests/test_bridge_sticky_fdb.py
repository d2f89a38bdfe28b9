"""Port of tools/testing/selftests/net/forwarding/bridge_sticky_fdb.sh, subtest ``sticky``:
a static sticky entry does not move when its MAC shows up as a source on another port."""

import pytest
from scapy.layers.l2 import ARP, Ether

from vlab import Lab

pytestmark = pytest.mark.vlab
TEST_MAC = "de:ad:be:ef:13:37"


def sticky(lab: Lab, sticky: bool = True) -> None:
    br = lab.bridge("br0")
    h1, h2 = lab.vm("h1", bridge=br), lab.vm("h2", bridge=br)
    br.fdb_add(TEST_MAC, h1, static=True, sticky=sticky)
    h2.send(Ether(src=TEST_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=TEST_MAC))
    lab.settle()
    assert br.fdb()[TEST_MAC] == h1.port


def test_sticky(lab: Lab) -> None:
    sticky(lab)


def test_sticky_catches_roaming(lab: Lab) -> None:
    with pytest.raises(AssertionError):
        sticky(lab, sticky=False)  # a static entry without sticky roams to h2
