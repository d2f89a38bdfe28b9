"""Dummy uplinks, on whichever kernel runs the test: a guest's (``--vlab-kernel``) or the host's.

Kernels without the dummy link type (the 6.18 vlab is developed on) skip these; under Debian's
cloud kernel in a guest they run, and must pass.
"""

from __future__ import annotations

import pytest
from scapy.layers.l2 import Ether

from vlab import Lab, LabError

pytestmark = pytest.mark.vlab

FLOODED = "02:00:00:00:00:99"


def probe(src: str) -> Ether:
    return Ether(src=src, dst=FLOODED, type=0x88B5) / b"dummy-uplink"


def test_dummy_uplink_receives_a_flooded_frame(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm1 = lab.vm("vm1", bridge=br)
    vm2 = lab.vm("vm2", bridge=br)
    up = lab.uplink(br, kind="dummy")
    frame = probe(vm1.mac)
    vm1.send(frame)
    up.expect(frame)
    vm2.expect(frame)
    assert up.port.startswith("dummy")
    assert br.fdb()[vm1.mac] == vm1.port


def test_dummy_uplink_sees_only_what_the_bridge_sends_it(lab: Lab) -> None:
    """The negative twin of the test above: with flooding off on the dummy's port, nothing.

    Proves the dummy's watch reads what the bridge transmits to it rather than every frame of
    the switch namespace: the same flood reaches vm2 but not the dummy.
    """
    br = lab.bridge("br0")
    vm1 = lab.vm("vm1", bridge=br)
    vm2 = lab.vm("vm2", bridge=br)
    up = lab.uplink(br, kind="dummy")
    br.port(up).set(flood=False)
    frame = probe(vm1.mac)
    vm1.send(frame)
    vm2.expect(frame)
    up.expect_none(frame)


def test_dummy_uplink_injects_nothing(lab: Lab) -> None:
    br = lab.bridge("br0")
    up = lab.uplink(br, kind="dummy")
    with pytest.raises(LabError, match="injects nothing"):
        up.send(probe(up.mac))
    assert "dummy" in up.describe()


def test_unknown_uplink_kind_names_the_choices(lab: Lab) -> None:
    br = lab.bridge("br0")
    with pytest.raises(LabError, match="choose 'veth' \\(default\\) or 'dummy'"):
        lab.uplink(br, kind="macvlan")
