"""The same frame object sent, changed, and sent again: the wire carries each version.

vlab remembers the bytes of a plain frame it sent (vlab.framecache); a test that edits its probe
between sends must still see the edit arrive, and the old bytes must not.
"""

from __future__ import annotations

import pytest
from scapy.layers.l2 import Ether

from vlab import Lab

pytestmark = pytest.mark.vlab


def test_a_frame_changed_between_sends_arrives_changed(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm1, vm2 = lab.vm("vm1", bridge=br), lab.vm("vm2", bridge=br)
    probe = Ether(src=vm1.mac, dst=vm2.mac, type=0x88B5) / b"first"
    first = bytes(probe)
    vm1.send(probe)
    assert bytes(vm2.expect(probe)) == first
    probe.load = b"second"  # the Raw layer's field, through the top layer
    probe.dst = "ff:ff:ff:ff:ff:ff"
    vm1.send(probe)
    got = vm2.expect(Ether(src=vm1.mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / b"second")
    assert bytes(got) != first
    vm2.expect_none(first)  # the old version was not sent again
    vm1.send(probe)
    vm2.expect(got)
