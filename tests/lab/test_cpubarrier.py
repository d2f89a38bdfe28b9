"""The marker barrier behind negative checks: every CPU handles a marker, in backlog order.

A negative check is only as good as its barrier: once the barrier returns, no CPU may still be
holding a frame. These tests show the two properties the marker barrier rests on, each next to
the case that breaks it: a marker really runs on the CPU it is meant for (steer every marker to
one CPU and the others see nothing), and frames queued on a CPU before its marker have
been delivered when the barrier returns (without a barrier, they are still on their way).
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from vlab import Lab, cpubarrier
from vlab.endpoints import Host

pytestmark = pytest.mark.vlab
PROBE = 0x88B5
ROUNDS = 2000

needs_two_cpus = pytest.mark.skipif(
    len(cpubarrier.online_cpus()) < 2, reason="one CPU: there is no other CPU to steer to"
)


def _processed() -> dict[int, int]:
    """Packets each CPU has taken into the stack (softnet_stat column 0, CPU in column 12)."""
    out = {}
    with open("/proc/net/softnet_stat") as fh:
        for n, line in enumerate(fh):
            cols = line.split()
            cpu = int(cols[12], 16) if len(cols) > 12 else n
            out[cpu] = int(cols[0], 16)
    return out


@pytest.fixture
def pinned() -> Iterator[int]:
    """Run the test thread on the first CPU only, so "another CPU" means something."""
    allowed = os.sched_getaffinity(0)
    first = min(allowed)
    os.sched_setaffinity(0, {first})
    try:
        yield first
    finally:
        os.sched_setaffinity(0, allowed)


def _rounds(barrier: cpubarrier.MarkerBarrier) -> dict[int, int]:
    before = _processed()
    for _ in range(ROUNDS):
        assert barrier.run()
    after = _processed()
    return {cpu: after[cpu] - before.get(cpu, 0) for cpu in after}


@needs_two_cpus
def test_every_cpu_handles_a_marker_in_every_round(pinned: int) -> None:
    assert cpubarrier.barrier(), cpubarrier.unavailable()
    barrier = cpubarrier.MarkerBarrier(cpubarrier.online_cpus())
    try:
        handled = _rounds(barrier)
    finally:
        barrier.close()
    assert all(handled[cpu] >= ROUNDS for cpu in cpubarrier.online_cpus()), handled


@needs_two_cpus
def test_the_sending_cpu_gets_its_marker_last_and_every_cpu_one(pinned: int) -> None:
    """The order only saves time (the local marker is handled inside its send, while the
    others wake up); what the barrier proves still needs one marker for every CPU."""
    assert cpubarrier.barrier(), cpubarrier.unavailable()
    barrier = cpubarrier._barrier
    assert barrier is not None
    assert cpubarrier._current_cpu() == pinned
    order = barrier._sends()
    by_socket = dict(zip(barrier.tx, barrier.cpus, strict=True))
    assert sorted(by_socket[tx] for tx, _frame in order) == sorted(barrier.cpus)
    assert by_socket[order[-1][0]] == pinned


@needs_two_cpus
def test_markers_all_steered_to_one_cpu_leave_the_others_unvisited(
    pinned: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The positive case of the test above: what it sees when markers miss a CPU."""
    mask = cpubarrier._cpu_mask(pinned)
    monkeypatch.setattr(cpubarrier, "_cpu_mask", lambda _cpu: mask)
    barrier = cpubarrier.MarkerBarrier(cpubarrier.online_cpus())
    try:
        handled = _rounds(barrier)
    finally:
        barrier.close()
    others = [cpu for cpu in cpubarrier.online_cpus() if cpu != pinned]
    assert handled[pinned] >= ROUNDS * len(cpubarrier.online_cpus())
    assert any(handled[cpu] < ROUNDS for cpu in others), handled


def _steer(host: Host, cpu: int) -> None:
    """Receive Packet Steering of the host's eth0 to one CPU (sysfs of its own namespace)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("needs unshare (util-linux)")
    mask = cpubarrier._cpu_mask(cpu)
    script = f"mount -t sysfs sysfs /sys && echo {mask} > /sys/class/net/eth0/queues/rx-0/rps_cpus"
    host.run(unshare, "--mount", "sh", "-c", script)


def _bursts(lab: Lab, wait: bool) -> list[int]:
    """Frames still missing at the host right after each burst of 50 (after a barrier or not)."""
    vm = lab.endpoints["vm1"]
    host = lab.endpoints["h1"]
    assert isinstance(host, Host)
    with host.ns.entered():
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_NONBLOCK, 0)
        sock.bind(("eth0", PROBE))
    frame = bytes.fromhex(host.mac.replace(":", "")) + bytes.fromhex(vm.mac.replace(":", ""))
    frame += PROBE.to_bytes(2, "big") + b"late" * 12
    missing = []
    try:
        vm.send(frame)  # readiness, and the first copy is not part of a burst
        lab.settle()
        while True:
            try:
                sock.recv(2048)
            except BlockingIOError:
                break
        for _ in range(20):
            for _ in range(50):
                vm.io.send(frame)
            if wait:
                assert cpubarrier.barrier()
            got = 0
            while True:
                try:
                    sock.recv(2048)
                except BlockingIOError:
                    break
                got += 1
            missing.append(50 - got)
            lab.settle()
            while True:  # whatever came late is not the next burst's
                try:
                    sock.recv(2048)
                except BlockingIOError:
                    break
    finally:
        sock.close()
    return missing


def _steered_lab(lab: Lab, cpu: int, tmp_path: Path) -> None:
    """vm1 -> br0 -> h1, h1's receive work on ``cpu``, slowed there by 1000 ingress filters.

    The filters never match; each frame pays for trying them all in h1's receive softirq (tens
    of microseconds), so a burst is still being handled on that CPU when the sender is done.
    """
    br = lab.bridge("br0")
    lab.vm("vm1", bridge=br)
    host = lab.host("h1", bridge=br)
    assert isinstance(host, Host)
    _steer(host, cpu)
    batch = tmp_path / "filters.tc"
    batch.write_text(
        "qdisc add dev eth0 ingress\n"
        + "".join(
            f"filter add dev eth0 parent ffff: prio {n} protocol all u32 "
            f"match u32 0x{n:08x} 0xffffffff at 0 flowid 1:1\n"
            for n in range(1, 1001)
        )
    )
    host.run("tc", "-batch", str(batch))
    lab.settle()


@needs_two_cpus
def test_frames_queued_on_another_cpu_have_landed_when_the_barrier_returns(
    lab: Lab, pinned: int, tmp_path: Path
) -> None:
    other = max(cpubarrier.online_cpus())
    _steered_lab(lab, other, tmp_path)
    assert _bursts(lab, wait=True) == [0] * 20


@needs_two_cpus
def test_without_the_barrier_frames_on_another_cpu_are_still_on_their_way(
    lab: Lab, pinned: int, tmp_path: Path
) -> None:
    """The positive case: the same bursts read without a barrier miss frames."""
    other = max(cpubarrier.online_cpus())
    _steered_lab(lab, other, tmp_path)
    assert any(_bursts(lab, wait=False))
