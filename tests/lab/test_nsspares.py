"""Links a reused switch namespace keeps for the next lab (vlab.nsspares), and the reset worker.

A lab of the same shape as the one before takes the previous lab's taps and its uplink's veth
with the upstream namespace behind it, instead of making them; nothing of the previous lab shows
through them: not its counters, not the frames its VMs left unread, not the links a smaller lab
does not take. Whatever was entered by someone else is not kept. The reset runs in a process of
its own, which dies with the lab's process.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from scapy.layers.l2 import Ether

from vlab import Lab, capture, nspool, nsspares, reaper
from vlab import tap as taplib
from vlab.lab import TAP_TXQLEN
from vlab.loss import FramesLost
from vlab.netns import NetNS
from vlab.rtnl import LinkRequests, Rtnl

pytestmark = [pytest.mark.vlab, pytest.mark.usefixtures("pool")]

BCAST = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:bb:01", type=0x88B5)) + b"x" * 46


def build(lab: Lab, vms: int = 3) -> None:
    br = lab.bridge("br0")
    for i in range(vms):
        lab.vm(f"vm{i}", bridge=br, mac=f"52:54:00:00:bb:{i:02x}")
    lab.uplink(br)


def ifindexes(lab: Lab) -> dict[str, int]:
    """Every port's ifindex, and the uplink's far end's (what reuse keeps)."""
    out = {p.name: p.index for p in lab.bridges["br0"].ports.values()}
    out["uplink far end"] = lab.endpoints["uplink"].ifindex  # type: ignore[attr-defined]
    return out


def inodes(lab: Lab) -> dict[str, int]:
    return {name: space.ns.inode for name, space in lab._spaces.items()}


def test_a_lab_of_the_same_shape_takes_the_links_and_the_upstream_namespace(
    pool: nspool.Pool,
) -> None:
    with Lab() as first:
        build(first)
        kept, spaces = ifindexes(first), inodes(first)
    assert pool.drain()
    assert pool.stats.get("reused", 0) >= 1, pool.last_discard
    with Lab() as second:
        build(second)
        assert ifindexes(second) == kept  # the same taps and veth, not new ones
        assert inodes(second) == spaces  # the switch and the upstream namespace
        second.endpoints["uplink"].send(BCAST)
        for i in range(3):
            second.endpoints[f"vm{i}"].expect(BCAST)  # and they carry frames


def test_a_lab_of_64_vms_is_reused_with_its_sockets(pool: nspool.Pool) -> None:
    """64 kept taps keep 64 sockets open: the check counts them whatever their number (a
    socket table read capped at a page counted them short, and every such lab was dropped)."""
    discarded = pool.stats.get("discarded", 0)  # the session's count so far
    with Lab() as first:
        build(first, vms=64)
        kept = ifindexes(first)
    assert pool.drain()
    assert pool.stats.get("discarded", 0) == discarded, pool.last_discard
    with Lab() as second:
        build(second, vms=64)
        assert ifindexes(second) == kept


def test_counters_start_from_zero_and_stale_frames_are_gone(pool: nspool.Pool) -> None:
    with Lab() as first:
        build(first)
        for _ in range(5):
            first.endpoints["uplink"].send(BCAST)
        first.settle()
        assert first.endpoints["vm0"].stats().rx_packets == 5
    assert pool.drain()
    with Lab() as second:
        build(second)
        vm0, uplink = second.endpoints["vm0"], second.endpoints["uplink"]
        with pytest.raises(BlockingIOError):  # the same tap, its queue emptied by the reset
            os.read(vm0.tap_fd, 2048)  # type: ignore[attr-defined]
        assert vm0.stats().rx_packets == 0
        assert uplink.stats().tx_packets == 0
        assert second.bridges["br0"].port(vm0).stats().tx_packets == 0
        uplink.send(BCAST)
        vm0.expect(BCAST)  # what is sent now does arrive
        second.settle()
        assert vm0.stats().rx_packets == 1
        assert uplink.stats().tx_packets == 1


@pytest.mark.parametrize("emptied", [True, False], ids=["recycled", "control"])
def test_a_kept_packet_socket_holds_nothing_of_the_lab_before(
    pool: nspool.Pool, monkeypatch: pytest.MonkeyPatch, emptied: bool
) -> None:
    """The sockets a VM and an uplink read stay open with their links; the frames the previous
    lab left unread on them are gone. The control skips the emptying: they show."""
    if not emptied:
        monkeypatch.setattr(capture, "recycled", lambda sock: sock)
    with Lab() as first:
        build(first)
        vm0, uplink = first.endpoints["vm0"], first.endpoints["uplink"]
        for _ in range(3):
            uplink.send(BCAST)  # queued on vm0's socket, never read
        vm0.send(BCAST)  # ... and on the uplink's
        for ep in (vm0, uplink):  # on the sockets, unread (a settle would read them)
            assert select.select([ep.io.fileno()], [], [], 5)[0]
        sockets = {ep.name: os.fstat(ep.io.fileno()).st_ino for ep in (vm0, uplink)}
    assert pool.drain()
    with Lab() as second:
        build(second)
        vm0, uplink = second.endpoints["vm0"], second.endpoints["uplink"]
        assert {ep.name: os.fstat(ep.io.fileno()).st_ino for ep in (vm0, uplink)} == sockets
        if emptied:
            vm0.expect_none()
            uplink.expect_none()
            assert vm0.io.kernel_drops() == 0  # type: ignore[attr-defined]
            uplink.send(BCAST)
            vm0.expect(BCAST)  # what is sent now does arrive
        else:
            assert vm0.frames() and uplink.frames()


def test_parking_a_tap_empties_its_queue() -> None:
    """What a closed lab's VM left unread in its tap is dropped before the tap is reused."""
    ns = NetNS.create("parking")
    try:
        ns.sysctl("net.ipv6.conf.default.disable_ipv6", 1)  # the tap says nothing by itself
        with ns.entered():
            fd = taplib.open_tap("vnet0")
            rtnl = Rtnl()
        try:
            index = LinkRequests(rtnl).index_of("vnet0")
            LinkRequests(rtnl).set_link(index)
            with ns.entered(), socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as tx:
                tx.bind(("vnet0", 0))
                for _ in range(3):  # what the tap transmits is queued for the fd's reader
                    tx.send(BCAST)
            assert nsspares.park_tap(rtnl, index, "vnet0", fd) == 3
            with pytest.raises(BlockingIOError):
                os.read(fd, 2048)
        finally:
            rtnl.close()
            taplib.release_tap(fd)
    finally:
        ns.close()


FRAMES = [BCAST[:-4] + n.to_bytes(4, "big") for n in range(5000)]


def _read_to_mid_batch() -> None:
    """A lab whose VM reads part of its tap's queue, stopping in the middle of a batch."""
    with Lab() as lab:
        build(lab, vms=1)
        up, vm0 = lab.endpoints["uplink"], lab.endpoints["vm0"]
        for frame in FRAMES[:1005]:
            up.send(frame)
        vm0.expect(FRAMES[1000])


def _assert_tap_holds_a_new_queue() -> None:
    """A lab whose VM reads nothing: its tap holds what a new tap's queue holds, then drops."""
    with Lab() as lab:
        build(lab, vms=1)
        up, port = lab.endpoints["uplink"], lab.bridges["br0"].port("vnet0")
        for frame in FRAMES:
            up.send(frame)
        with pytest.raises(FramesLost):
            lab.settle()
        assert port.stats().tx_packets == TAP_TXQLEN
        lab.endpoints["vm0"].clear()  # the loss is this test's own


def test_a_reused_tap_holds_as_many_frames_as_a_new_one(pool: nspool.Pool) -> None:
    """Its queue is a ring freed in batches: a VM that read part of one would leave slots
    taken, and the next lab's tap would drop sooner than a new one (4088 frames, not 4096)."""
    _read_to_mid_batch()
    assert pool.drain()
    _assert_tap_holds_a_new_queue()


def test_a_queue_nothing_used_is_not_made_again(
    pool: nspool.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tap parked after a lab that queued nothing on it keeps its ring (one request fewer
    per tap), and that ring still holds what a new tap's does."""
    for worker in pool.workers:  # resets in this process, where the requests can be counted
        monkeypatch.setattr(worker, "failed", True)
    rebuilt: list[int] = []
    real = nsspares.set_txqlen
    monkeypatch.setattr(
        nsspares, "set_txqlen", lambda rtnl, i, q: (rebuilt.append(i), real(rtnl, i, q))
    )
    _read_to_mid_batch()
    assert pool.drain()
    assert rebuilt  # used: made anew
    rebuilt.clear()
    with Lab() as idle:
        build(idle, vms=1)
        idle.endpoints["vm0"].send(BCAST)  # the VM sends; nothing is queued for it
        idle.endpoints["uplink"].expect(BCAST)
    assert pool.drain()
    assert rebuilt == []  # untouched: kept as it was
    _assert_tap_holds_a_new_queue()


def _links_in(lab: Lab, node: str) -> list[str]:
    return sorted(link["ifname"] for link in json.loads(lab.run(node, "ip", "-j", "link").stdout))


def _packet_sockets(lab: Lab) -> int:
    """Packet sockets open in the switch namespace (vlab's own: one per VM), as ``ss`` shows."""
    return len(lab.run("switch", "ss", "-0", "-a", "-n", "-H").stdout.splitlines())


def test_a_smaller_lab_sees_none_of_the_links_it_did_not_take(pool: nspool.Pool) -> None:
    with Lab() as fresh:
        pool.enabled = False
        build(fresh, vms=1)
        want = _links_in(fresh, "switch"), _links_in(fresh, "upstream")
        sockets = _packet_sockets(fresh)
    pool.enabled = True
    with Lab() as big:
        build(big, vms=3)
        assert "vnet2" in _links_in(big, "switch")  # the case a smaller lab must not see
    # the look above made the pool check that namespace in full; warm it again untouched
    assert pool.drain()
    with Lab() as big:
        build(big, vms=3)
    assert pool.drain()
    with Lab() as small:
        build(small, vms=1)
        assert _packet_sockets(small) == sockets  # nor the sockets of the spares it left
        assert (_links_in(small, "switch"), _links_in(small, "upstream")) == want


def test_a_namespace_someone_else_entered_is_not_kept(pool: nspool.Pool) -> None:
    for touch in ("run", "ns", "namespaces"):
        nspool.empty()
        with Lab() as first:
            build(first)
            uplink = first.endpoints["uplink"]
            if touch == "run":
                uplink.run("true")  # type: ignore[attr-defined]
            elif touch == "ns":
                uplink.ns  # type: ignore[attr-defined]  # noqa: B018 (handed out: may be entered)
            else:
                first.namespaces()
        assert pool.drain()
        # (not by its inode: a destroyed namespace's number is soon given to a new one)
        assert not any(shell.pairs for shell in pool.ready), touch
    # the positive case: untouched, it is kept
    nspool.empty()
    with Lab() as first:
        build(first)
        upstream = inodes(first)["upstream"]
    assert pool.drain()
    assert any(shell.pairs for shell in pool.ready)
    with Lab() as second:
        build(second)
        assert inodes(second)["upstream"] == upstream


def test_a_spare_of_the_same_name_going_elsewhere_makes_way(pool: nspool.Pool) -> None:
    with Lab() as first:
        br = first.bridge("br0")
        first.host("a", bridge=br)  # veth0, far end in namespace "a"
    assert pool.drain()
    with Lab() as second:
        br = second.bridge("br0")
        b = second.host("b", bridge=br)  # veth0 again, to another namespace: made afresh
        other = second.host("c", bridge=br)
        b.send(BCAST)
        other.expect(BCAST)
        assert "a" not in second._spaces


def test_resets_in_process_when_there_is_no_worker(pool: nspool.Pool) -> None:
    failed = [worker.failed for worker in pool.workers]
    for worker in pool.workers:
        worker.failed = True
    try:
        with Lab() as first:
            build(first)
            kept = ifindexes(first)
        assert pool.drain()
        with Lab() as second:
            build(second)
            assert ifindexes(second) == kept
    finally:
        for worker, was in zip(pool.workers, failed, strict=True):
            worker.failed = was


CHILD = textwrap.dedent(
    """
    import os, sys, time
    from vlab import Lab, nspool
    nspool.pool().enabled = True
    with Lab() as lab:
        lab.vm("vm0", bridge=lab.bridge("br0"))
    nspool.pool().drain()
    print(next(w.proc.pid for w in nspool.pool().workers if w.proc), flush=True)
    time.sleep(60)
    """
)


def test_the_reset_worker_dies_with_the_labs_process(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        worker = int(child.stdout.readline())
        os.kill(worker, 0)  # running
        child.send_signal(signal.SIGKILL)
        child.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                break
            time.sleep(0.01)
        with pytest.raises(ProcessLookupError):
            os.kill(worker, 0)
    finally:
        child.kill()
        child.wait()
    reaper.drain()


def test_a_lab_interrupted_while_it_starts_closes_the_namespace_it_took(
    pool: nspool.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C inside ``Lab()`` after it took a pooled namespace: no lab object exists to close
    it, so the constructor does (the fault test saw one namespace left held after SIGINT)."""
    import vlab.lab

    with Lab() as first:
        build(first)
    assert pool.drain() and pool.ready, pool.last_discard
    shell = pool.ready[-1]

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(vlab.lab, "Switch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Lab()
    assert shell not in pool.ready
    assert shell.closed and shell.space.ns.fd < 0 and not shell.taps


def test_ctrl_c_right_after_the_take_still_closes_the_namespace(
    pool: nspool.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SIGINT the moment ``nspool.take`` hands the namespace over, before ``Lab()`` has
    stored it: the constructor holds Ctrl-C back for that step, then closes what it took."""
    with Lab() as first:
        build(first)
    assert pool.drain() and pool.ready, pool.last_discard
    shell = pool.ready[-1]
    real = nspool.take

    def take_then_interrupt(quiet: bool) -> object:
        taken = real(quiet)
        signal.raise_signal(signal.SIGINT)  # Python acts on it at the next bytecode
        return taken

    monkeypatch.setattr(nspool, "take", take_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        Lab()
    assert shell.closed and shell.space.ns.fd < 0


def test_the_next_lab_names_its_bridge_as_it_likes(pool: nspool.Pool) -> None:
    """The dormant bridge keeps the last lab's name (no rename for a lab that gives the same):
    a lab that names its bridge otherwise still gets exactly that name, and only that one."""
    with Lab() as first:
        build(first)
    assert pool.drain() and pool.ready, pool.last_discard
    assert pool.ready[-1].bridge_name == "br0"
    with Lab() as second:
        assert second._shell is not None  # a reused namespace, its bridge adopted
        second.bridge("lan")
        names = _links_in(second, "switch")
        assert "lan" in names and "br0" not in names and nspool.SPARE_NAME not in names


def test_a_worker_started_ahead_again_gets_the_references(pool: nspool.Pool) -> None:
    """After ``empty()`` stopped the workers, ones started ahead (as a session's configure
    starts them, before any reference exists) must be sent the references with their first
    reset: one that kept its predecessor's had none, and every reset was discarded."""
    with Lab() as first:
        build(first)
    assert pool.drain()
    nspool.empty()
    for worker in pool.workers:
        worker.prestart()
    before = dict(pool.stats)
    with Lab() as second:
        build(second)
    assert pool.drain()
    assert pool.stats["reused"] == before["reused"] + 1, pool.last_discard
