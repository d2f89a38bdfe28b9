"""No silent loss at the harness: frames the kernel dropped before vlab read them fail the next
check at that endpoint, with the count, the place and the counter; and nothing fails when
nothing was lost (the same floods, read while they run or smaller)."""

from __future__ import annotations

import re

import pytest
from scapy.layers.l2 import Ether

from vlab import Endpoint, Lab, loss
from vlab.lab import TAP_TXQLEN
from vlab.loss import FramesLost

pytestmark = pytest.mark.vlab
BCAST = "ff:ff:ff:ff:ff:ff"


def numbered(src: str, n: int, size: int = 64, dst: str = BCAST) -> list[bytes]:
    """``n`` distinct frames of ``size`` bytes: the payload starts with the frame's number."""
    head = bytes(Ether(src=src, dst=dst, type=0x88B5))
    return [head + i.to_bytes(4, "big") + bytes(size - len(head) - 4) for i in range(n)]


def lost_count(text: str, endpoint: str) -> int:
    found = re.search(rf"{endpoint}: (\d+) frame\(s\) lost at", text)
    assert found, text
    return int(found.group(1))


def flood(sender: Endpoint, frames: list[bytes], reader: Endpoint | None = None) -> int:
    """Send ``frames``; with a ``reader``, read it every 500 frames (what the hint advises)."""
    kept = 0
    for i, frame in enumerate(frames, 1):
        sender.send(frame)
        if reader is not None and i % 500 == 0:
            kept += len(reader.frames())
    return kept


# --- VM (tap) ----------------------------------------------------------------------------


def test_flood_past_the_tap_queue_fails_expect_none_with_the_count(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm1 = lab.vm("vm1", bridge=br)
    up = lab.uplink(br)
    frames = numbered(up.mac, 5000)
    flood(up, frames)
    with pytest.raises(FramesLost) as err:
        vm1.expect_none(frames[-1])
    text = str(err.value)
    assert lost_count(text, "vm1") == 5000 - TAP_TXQLEN  # exactly what the tap's queue refused
    assert "tx_dropped of vnet0 in the switch namespace" in text
    assert "txqueuelen" in text and "vm1.expect_none()" in text
    with pytest.raises(FramesLost):  # sticky: never a pass after a loss ...
        vm1.expect_none()
    vm1.clear()  # ... until the test says it does not care
    vm1.expect_none()


def test_the_same_flood_read_while_it_runs_keeps_every_frame(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm1 = lab.vm("vm1", bridge=br)
    up = lab.uplink(br)
    frames = numbered(up.mac, 5000)
    kept = flood(up, frames, reader=vm1)
    assert kept == 5000
    vm1.expect_none(frames[-1])  # it was read: not pending, and nothing was lost


def test_a_flood_the_tap_can_hold_is_judged_normally(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm1 = lab.vm("vm1", bridge=br)
    up = lab.uplink(br)
    frames = numbered(up.mac, TAP_TXQLEN - 96)
    flood(up, frames)
    vm1.expect_none(Ether(src=up.mac, dst=BCAST, type=0x88B6))  # never sent: a pass
    with pytest.raises(AssertionError, match="expected no frame like") as err:
        vm1.expect_none(frames[-1])  # it did arrive: the ordinary failure, not a loss
    assert not isinstance(err.value, FramesLost)


def test_expect_after_a_tap_overflow_fails_too(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm1 = lab.vm("vm1", bridge=br)
    up = lab.uplink(br)
    frames = numbered(up.mac, 5000)
    flood(up, frames)
    with pytest.raises(FramesLost, match=r"vm1.expect\(\)"):
        vm1.expect(frames[0])  # it is there, but 904 others are not: no verdict


# --- host and uplink (packet sockets) ----------------------------------------------------


def test_host_socket_overflow_fails_expect_none_with_the_kernels_count(lab: Lab) -> None:
    br = lab.bridge("br0")
    h1 = lab.host("h1", bridge=br)
    up = lab.uplink(br)
    frames = numbered(up.mac, 20000, size=1400)
    flood(up, frames)
    with pytest.raises(FramesLost) as err:
        h1.expect_none(frames[-1])
    text = str(err.value)
    assert "PACKET_STATISTICS drops" in text and "h1's packet socket on eth0" in text
    # the count is the kernel's: with what vlab did read, it makes up the whole flood
    assert lost_count(text, "h1") + len(h1.pending) == 20000


def test_host_flood_read_while_it_runs_loses_nothing(lab: Lab) -> None:
    br = lab.bridge("br0")
    h1 = lab.host("h1", bridge=br)
    up = lab.uplink(br)
    frames = numbered(up.mac, 20000, size=1400)
    assert flood(up, frames, reader=h1) == 20000
    h1.expect_none()


def test_expect_at_a_host_after_a_socket_overflow_fails(lab: Lab) -> None:
    br = lab.bridge("br0")
    h1 = lab.host("h1", bridge=br)
    up = lab.uplink(br)
    frames = numbered(up.mac, 20000, size=1400)
    flood(up, frames)
    with pytest.raises(FramesLost, match="PACKET_STATISTICS"):
        h1.expect(frames[0])


def test_uplink_socket_overflow_fails_and_reading_it_passes(lab: Lab) -> None:
    br = lab.bridge("br0")
    h1 = lab.host("h1", bridge=br)
    up = lab.uplink(br)
    frames = numbered(h1.mac, 20000, size=1400)
    flood(h1, frames)
    with pytest.raises(FramesLost) as err:
        up.expect_none(frames[-1])
    assert "uplink's packet socket on eth0" in str(err.value)
    assert lost_count(str(err.value), "uplink") + len(up.pending) == 20000
    up.clear()
    assert flood(h1, frames, reader=up) == 20000
    up.expect_none()


def test_a_timed_out_expect_names_the_loss(lab: Lab) -> None:
    br = lab.bridge("br0")
    h1 = lab.host("h1", bridge=br)
    up = lab.uplink(br)
    flood(up, numbered(up.mac, 20000, size=1400))
    with pytest.raises(AssertionError) as err:
        h1.expect(Ether(src=up.mac, dst=BCAST, type=0x88B6), timeout=0.05)
    assert "the expected one may be among them" in str(err.value)


# --- vlab's own bound --------------------------------------------------------------------


@pytest.mark.parametrize("extra", [0, 1])
def test_frames_past_the_store_bound_are_a_loss(
    lab: Lab, monkeypatch: pytest.MonkeyPatch, extra: int
) -> None:
    monkeypatch.setattr(loss, "PENDING_MAX", 300)
    br = lab.bridge("br0")
    vm1 = lab.vm("vm1", bridge=br)
    up = lab.uplink(br)
    frames = numbered(up.mac, 300 + extra)
    flood(up, frames)
    if extra:
        with pytest.raises(FramesLost, match="more than 300 frames received and not consumed"):
            lab.settle()
    else:
        lab.settle()
        assert len(vm1.frames()) == 300


def test_losses_at_several_endpoints_are_all_listed(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm1, vm2 = lab.vm("vm1", bridge=br), lab.vm("vm2", bridge=br)
    up = lab.uplink(br)
    flood(up, numbered(up.mac, 5000))
    with pytest.raises(FramesLost) as err:
        lab.settle()
    text = str(err.value)
    assert lost_count(text, "vm1") == lost_count(text, "vm2") == 5000 - TAP_TXQLEN
    assert text.count("what to do:") == 2
    vm1.clear()
    with pytest.raises(FramesLost) as err:  # vm2 still lost frames: every verdict is suspect
        vm1.expect_none()
    assert "vm2:" in str(err.value) and "vm1:" not in str(err.value)
    vm2.clear()
    vm1.expect_none()
