"""Bonded hosts, on whichever kernel runs the test: skipped (Unsupported) without the bonding
driver, as on the 6.18 vlab is developed on; under Debian's cloud kernel in a guest
(``nox -s guest_kernel``) they run, and must pass.

One lab for the whole module: a guest boots once per worker, and failing over takes ~10 ms.
"""

from __future__ import annotations

import pytest
from scapy.layers.l2 import Ether

from vlab import Lab
from vlab.nics import BondedHost

pytestmark = pytest.mark.vlab


def probe(src: str, dst: str, tag: bytes) -> Ether:
    return Ether(src=src, dst=dst, type=0x88B5) / tag


def test_active_backup_bond_fails_over_when_a_nic_loses_carrier(lab: Lab) -> None:
    br1, br2 = lab.bridge("br1"), lab.bridge("br2")
    h = lab.host("h1", bond=[br1, br2], mode="active-backup", ip="192.0.2.1/24")
    assert isinstance(h, BondedHost)
    p1 = lab.host("p1", br1, ip="192.0.2.2/24")
    p2 = lab.host("p2", br2, ip="192.0.2.3/24")
    eth0, eth1 = h.nics
    h.wait_active(eth0)  # the first slave to come up carries the traffic

    out = probe(h.mac, "ff:ff:ff:ff:ff:ff", b"before")
    h.send(out)
    lab.expect(out, at=[p1])  # out of eth0 only: p2's network never sees the active slave
    back = probe(p1.mac, h.mac, b"to the bond")
    p1.send(back)
    lab.expect(back, at=[h, eth0])  # the bond delivers it; eth0's watch saw it arrive
    assert h.ping("192.0.2.2")

    eth0.set_carrier(False)  # unplug the active NIC: the bond's link monitor fails over
    h.wait_active(eth1)
    out = probe(h.mac, "ff:ff:ff:ff:ff:ff", b"after")
    h.send(out)
    lab.expect(out, at=[p2])  # now out of eth1, and not eth0
    back = probe(p2.mac, h.mac, b"to the bond again")
    p2.send(back)
    lab.expect(back, at=[h, eth1])
    assert h.ping("192.0.2.3") and not h.ping("192.0.2.2", timeout=0.3)
    assert br2.fdb()[h.mac] == eth1.port  # the bond's MAC moved with it

    eth0.set_carrier(True)  # back: active-backup stays on eth1 (no primary set)
    out = probe(h.mac, "ff:ff:ff:ff:ff:ff", b"no flap")
    h.send(out)
    lab.expect(out, at=[p2])
    assert "bond0 (active-backup)" in lab.describe()
