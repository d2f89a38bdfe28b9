"""``frames()`` settles the lab only when something moved since the lab was last found quiet.

Reading every endpoint of a big lab used to settle the whole lab once per endpoint (34 s for one
broadcast on 1022 VMs). The first call settles; later ones check that the lab's link counters
are unchanged and its queues empty, and then only drain their own endpoint. The checks here
count real settles (a spy around :func:`vlab.quiesce.settle` that calls through), and prove the
shortcut is not taken when it must not be: after a frame sent by a program vlab knows nothing
about, and while a frame waits in a shaper where no counter has seen it yet.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest
from scapy.layers.l2 import Ether

from vlab import Lab, quiesce

pytestmark = pytest.mark.vlab
FOREIGN_SEND = (
    "import socket, sys; s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); "
    "s.bind((sys.argv[1], 0)); s.send(bytes.fromhex(sys.argv[2]))"
)


@pytest.fixture
def settles(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times the lab really settled (one entry per call)."""
    calls: list[int] = []
    real: Callable[..., quiesce.Quiet] = quiesce.settle

    def counting(*args: Any, **kwargs: Any) -> quiesce.Quiet:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(quiesce, "settle", counting)
    return calls


@pytest.fixture
def backlogged(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Shortcut checks refused because some CPU's input backlog held frames: softnet is
    host-wide, so another test's flood under ``-n 2`` forces those settles, not this lab."""
    forced: list[int] = []
    last = [0]
    real_softnet, real_still = quiesce.softnet, quiesce.still_quiet

    def softnet() -> tuple[int, int]:
        processed, last[0] = real_softnet()
        return processed, last[0]

    def still_quiet(*args: Any) -> bool:
        quiet = real_still(*args)
        if not quiet and last[0]:
            forced.append(1)
        return quiet

    monkeypatch.setattr(quiesce, "softnet", softnet)
    monkeypatch.setattr(quiesce, "still_quiet", still_quiet)
    return forced


def test_reading_every_endpoint_settles_the_lab_once(
    lab: Lab, settles: list[int], backlogged: list[int]
) -> None:
    br = lab.bridge("br0")
    vms = [lab.vm(f"vm{i}", bridge=br) for i in range(40)]
    up = lab.uplink(br)
    frame = Ether(src=up.mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / b"everyone"
    up.send(frame)
    settles.clear()
    received = [vm.frames() for vm in vms]
    assert [len(r) for r in received] == [1] * len(vms)
    assert all(bytes(r[0]) == bytes(frame) for r in received)
    # One settle on an idle machine, plus those another test's backlog forced (a flood in the
    # other worker can cover many calls in a row, the faster they are); never one per call.
    own = len(settles) - len(backlogged)
    assert own <= 5, f"{len(settles)} settles ({len(backlogged)} forced) for {len(vms)} calls"
    assert [vm.frames() for vm in vms] == [[]] * len(vms)  # drained, still hardly any settles
    assert len(settles) - len(backlogged) <= 10


def test_a_frame_from_a_program_vlab_does_not_know_is_noticed(lab: Lab, settles: list[int]) -> None:
    br = lab.bridge("br0")
    vm1, vm2 = lab.vm("vm1", bridge=br), lab.vm("vm2", bridge=br)
    up = lab.uplink(br)
    assert vm1.frames() == [] and vm2.frames() == []
    settles.clear()
    frame = Ether(src=up.mac, dst=vm2.mac, type=0x88B5) / b"from outside vlab"
    lab.run("upstream", sys.executable, "-c", FOREIGN_SEND, up.ifname, bytes(frame).hex())
    assert [bytes(f) for f in vm1.frames()] == [bytes(frame)]  # unknown unicast: flooded
    assert len(settles) == 1, "the counters moved, yet frames() trusted the old quiet"
    assert [bytes(f) for f in vm2.frames()] == [bytes(frame)]


def test_a_frame_waiting_in_a_shaper_is_waited_for(lab: Lab, settles: list[int]) -> None:
    br = lab.bridge("br0")
    vm = lab.vm("vm1", bridge=br)
    up = lab.uplink(br)
    # ~1.4 s per 1400-byte frame once the 1600-byte bucket is spent: frames wait in the qdisc,
    # where no link counter has counted them yet
    lab.run("upstream", "tc", "qdisc", "add", "dev", up.ifname, "root", "tbf",
            "rate", "8kbit", "burst", "1600", "latency", "10s")  # fmt: skip
    big = [Ether(src=up.mac, dst=vm.mac, type=0x88B5) / (bytes([i]) * 1400) for i in range(3)]
    up.send(big[0])
    up.send(big[1])
    assert [bytes(f) for f in vm.frames()] == [bytes(big[0]), bytes(big[1])]  # bucket now empty
    settles.clear()
    lab.run("upstream", sys.executable, "-c", FOREIGN_SEND, up.ifname, bytes(big[2]).hex())
    assert [bytes(f) for f in vm.frames()] == [bytes(big[2])], "frames() missed a queued frame"
    assert len(settles) == 1
