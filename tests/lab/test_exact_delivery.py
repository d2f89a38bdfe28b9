"""``lab.expect(frame, at=[...])``: exactly these endpoints receive the frame, no others."""

from __future__ import annotations

import pytest
from scapy.layers.l2 import Ether

from vlab import VM, Bridge, Host, Lab, LabError, Uplink
from vlab.loss import FramesLost

pytestmark = pytest.mark.vlab


def probe(src: str, dst: str = "02:00:00:00:00:99", payload: bytes = b"exact") -> Ether:
    return Ether(src=src, dst=dst, type=0x88B5) / payload


def four(lab: Lab) -> tuple[Bridge, VM, VM, Host, Uplink]:
    br = lab.bridge("br0")
    vm1, vm2 = lab.vm("vm1", bridge=br), lab.vm("vm2", bridge=br)
    h1 = lab.host("h1", bridge=br)
    up = lab.uplink(br)
    return br, vm1, vm2, h1, up


def test_the_exact_set_passes_and_consumes_the_copies(lab: Lab) -> None:
    _br, vm1, vm2, h1, up = four(lab)
    f = probe(vm1.mac)
    vm1.send(f)
    got = lab.expect(f, at=[vm2, h1, up])  # unknown unicast floods to all but the ingress
    assert [bytes(p) for p in got] == [bytes(f)] * 3
    lab.expect_quiet()  # the copies were consumed


def test_an_endpoint_that_missed_the_frame_fails(lab: Lab) -> None:
    br, vm1, vm2, h1, up = four(lab)
    br.port(vm2).set(flood=False)
    f = probe(vm1.mac)
    vm1.send(f)
    with pytest.raises(AssertionError) as err:
        lab.expect(f, at=[vm2, h1, up], timeout=0.1)
    text = str(err.value)
    assert "expected the frame at exactly: vm2, h1, uplink" in text
    assert "missing at vm2 (port vnet1 on br0)" in text
    assert "unexpected at" not in text and "missing at h1" not in text


def test_an_endpoint_that_got_it_uninvited_fails(lab: Lab) -> None:
    _br, vm1, vm2, _h1, up = four(lab)
    f = probe(vm1.mac)
    vm1.send(f)
    with pytest.raises(AssertionError) as err:
        lab.expect(f, at=[vm2, up])
    text = str(err.value)
    assert "unexpected at h1 (port veth0 on br0): 1 copy(ies)" in text
    assert "missing at" not in text


def test_a_second_copy_at_a_listed_endpoint_fails(lab: Lab) -> None:
    _br, vm1, vm2, h1, up = four(lab)
    f = probe(vm1.mac)
    vm1.send(f)
    vm1.send(f)
    with pytest.raises(AssertionError, match=r"unexpected at vm2 .*again: a second copy"):
        lab.expect(f, at=[vm2, h1, up])


def test_at_nobody(lab: Lab) -> None:
    _br, vm1, vm2, h1, up = four(lab)
    vm1.send(probe(vm1.mac, "ff:ff:ff:ff:ff:ff", b"learn"))
    lab.expect(probe(vm1.mac, "ff:ff:ff:ff:ff:ff", b"learn"), at=[vm2, h1, up])
    own = probe(vm2.mac, vm1.mac, b"to vm1")
    vm2.send(own)
    with pytest.raises(AssertionError, match="unexpected at vm1") as err:
        lab.expect(own, at=[])  # vm1's MAC is learnt: the frame goes there
    assert "expected the frame at exactly: no endpoint" in str(err.value)
    hairpin = probe(vm1.mac, vm1.mac, b"hairpin")
    vm1.send(hairpin)
    lab.expect(hairpin, at=[])  # to its own port, no hairpin: nobody gets it


def test_a_mask_is_honoured(lab: Lab) -> None:
    _br, vm1, vm2, h1, up = four(lab)
    vm1.send(probe(vm1.mac, payload=b"exact-1"))
    lab.expect(probe(vm1.mac, payload=b"exact-2"), at=[vm2, h1, up], mask=["Raw.load"])


def test_a_loss_anywhere_is_no_verdict(lab: Lab) -> None:
    _br, vm1, vm2, h1, up = four(lab)
    head = bytes(Ether(src=up.mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B5))
    for i in range(5000):
        up.send(head + i.to_bytes(4, "big"))
    with pytest.raises(FramesLost):
        lab.expect(head + (4999).to_bytes(4, "big"), at=[vm1, vm2, h1])


def test_bad_at_is_a_lab_error(lab: Lab) -> None:
    _br, vm1, vm2, _h1, _up = four(lab)
    f = probe(vm1.mac)
    with pytest.raises(LabError, match="give a list of endpoints"):
        lab.expect(f, at=vm2)  # type: ignore[arg-type]  # deliberate misuse
    with pytest.raises(LabError, match="'vm9' is not an endpoint of this lab"):
        lab.expect(f, at=["vm9"])
    with pytest.raises(LabError, match="vm2 is listed twice"):
        lab.expect(f, at=[vm2, "vm2"])
    with pytest.raises(LabError, match="timeout"):
        lab.expect(f, at=[vm2], timeout=-1)
    with Lab(name="other") as other:
        stranger = other.vm("vm2", bridge=other.bridge("br0"))
        with pytest.raises(LabError, match="not an endpoint of this lab"):
            lab.expect(f, at=[stranger])
