"""A real guest on a tap: boot, commands, frames both ways, and a lifetime bound to its owner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from qemu_wire import GUEST_MAC, Wire, wire_or_skip
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Ether

from vlab.qemu import GuestError, QemuGuest, qemu_unavailable

UNAVAILABLE = qemu_unavailable()
pytestmark = [
    pytest.mark.vlab,
    pytest.mark.qemu,
    pytest.mark.skipif(UNAVAILABLE is not None, reason=UNAVAILABLE or ""),
]
HERE = Path(__file__).parent
ROOT = HERE.parent.parent
PEER_MAC = "02:00:00:00:00:fe"


def counter(guest: QemuGuest, name: str) -> int:
    return int(guest.run(f"cat /sys/class/net/eth0/statistics/{name}").output)


def test_eth0_carries_the_vms_mac(guest: QemuGuest) -> None:
    assert guest.run("cat /sys/class/net/eth0/address").output == GUEST_MAC + "\n"
    assert guest.run("cat /sys/class/net/eth0/carrier").output == "1\n"


def test_exit_status_is_the_commands(guest: QemuGuest) -> None:
    assert guest.run("true").status == 0
    assert guest.run("false").status == 1
    assert guest.run("exit 7").status == 7
    missing = guest.run("no-such-command")
    assert missing.status == 127
    assert "not found" in missing.output


def test_output_comes_back_byte_for_byte(guest: QemuGuest) -> None:
    assert guest.run("printf 'a\\nb'").output == "a\nb"
    assert guest.run("echo out; echo err >&2").output == "out\nerr\n"
    assert guest.run("printf 'h\\303\\251llo \\342\\234\\223\\n'").output == "héllo ✓\n"
    fake = "@@vlab:0.0:end:0"  # looks like the agent's framing: must not confuse the host
    assert guest.run(f"echo '{fake}'; echo after").output == f"{fake}\nafter\n"
    assert guest.run("head -c 100000 /dev/zero | tr '\\0' x").output == "x" * 100000


def test_kernel_log_noise_stays_out_of_command_output(guest: QemuGuest) -> None:
    noisy = 'dmesg -n 8; for i in 1 2 3; do echo "<2>vlab-noise-$i" > /dev/kmsg; done; echo clean'
    assert guest.run(noisy).output == "clean\n"
    deadline = time.monotonic() + 5
    while "vlab-noise-3" not in guest.boot_log and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "vlab-noise-3" in guest.boot_log  # ... it went to the console, i.e. the boot log


def test_background_process_cannot_write_into_later_replies(guest: QemuGuest) -> None:
    # every 20 ms, so junk lands during each later reply (a reply takes longer under TCG); a
    # loop with no pause would starve the one-vCPU TCG guest and fill its RAM-backed /tmp with
    # a deleted, ever-growing file, and every 5 ms (a fork and exec each time) did starve it on
    # a loaded 2-CPU CI host: the agent did not answer within 20 s
    guest.run("(while :; do echo junk; usleep 20000; done) & echo $! > /tmp/chatter.pid")
    try:
        for _ in range(3):
            assert guest.run("echo ok").output == "ok\n"
    finally:
        guest.run("kill $(cat /tmp/chatter.pid)")


def test_orphans_dying_while_a_request_arrives_lose_none_of_it(guest: QemuGuest) -> None:
    """A command's background processes outlive it and are re-parented to the guest's PID 1;
    each one's exit signals that process. When PID 1 was the agent, a SIGCHLD in the middle of
    a request line made its ``read`` start over and lose what it had read: the agent then took
    the line's tail for a request and never answered the real one (in CI, after the background
    test above, whose commands' ``timeout`` watchers died while the next request came in). It
    takes the guest reading faster than QEMU feeds it: with the agent as PID 1 this failed in 4
    of 6 runs with both host CPUs busy, and in none of 3 on an idle host."""
    # 20 background processes, each dying 0.3 to 0.7 s after the command that started them
    guest.run("i=0; while [ $i -lt 20 ]; do usleep $((300000 + i * 20000)) & i=$((i + 1)); done")
    long = "y" * 2000  # a request line that takes the guest a while to read, byte by byte
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        assert guest.run(f"echo {long}", timeout=2).output == long + "\n"


def test_timeout_kills_the_command_and_the_guest_stays_usable(guest: QemuGuest) -> None:
    started = time.monotonic()
    with pytest.raises(GuestError, match="timed out after 1s"):
        guest.run("echo started; sleep 30", timeout=1)
    assert time.monotonic() - started < 15  # killed at ~1 s, not after the 30 s sleep
    assert guest.run("echo still here").output == "still here\n"


def test_oversized_command_is_refused_with_advice(guest: QemuGuest) -> None:
    with pytest.raises(GuestError, match="split it"):
        guest.run("echo " + "x" * 10000)


def test_frame_sent_by_the_guest_kernel_reaches_the_tap(guest: QemuGuest, wire: Wire) -> None:
    guest.run("ip addr replace 192.0.2.2/24 dev eth0")
    guest.run("arping -c 1 -w 1 -I eth0 192.0.2.1")

    def is_arp(frame: bytes) -> bool:
        eth = Ether(frame)
        return eth.src == GUEST_MAC and ARP in eth and eth[ARP].pdst == "192.0.2.1"

    assert wire.receive(is_arp) is not None


def test_frame_sent_to_the_guest_reaches_its_kernel(guest: QemuGuest, wire: Wire) -> None:
    before = counter(guest, "rx_packets")
    wire.send(bytes(Ether(src=PEER_MAC, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / (b"probe" * 10)))
    deadline = time.monotonic() + 5
    while counter(guest, "rx_packets") == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert counter(guest, "rx_packets") == before + 1

    # and the guest's IP stack answers: a ping in, a reply out with the guest's MAC
    guest.run("ip addr replace 192.0.2.2/24 dev eth0")
    guest.run(f"arp -s 192.0.2.1 {PEER_MAC}")  # so the reply needs no ARP round trip
    ping = IP(src="192.0.2.1", dst="192.0.2.2") / ICMP(id=0x7E57, seq=1) / b"vlab"
    wire.send(bytes(Ether(src=PEER_MAC, dst=GUEST_MAC) / ping))

    def is_reply(frame: bytes) -> bool:
        eth = Ether(frame)
        return (
            eth.src == GUEST_MAC and ICMP in eth and eth[ICMP].type == 0 and eth[ICMP].id == 0x7E57
        )

    assert wire.receive(is_reply) is not None


def test_two_guests_boot_in_parallel_and_stay_quiet(tmp_path: Path) -> None:
    wires = [wire_or_skip(f"vlabtap{i}") for i in (1, 2)]
    guests: list[QemuGuest] = []
    try:
        for i, w in enumerate(wires, 1):
            mac = f"52:54:00:7e:57:1{i}"
            guests.append(QemuGuest.start(name=f"p{i}", tap_fd=w.tap_fd, mac=mac, workdir=tmp_path))
        for g in guests:
            g.wait_ready(60)
        for i, g in enumerate(guests, 1):
            assert g.run("cat /sys/class/net/eth0/address").output == f"52:54:00:7e:57:1{i}\n"
            # a guest sends nothing on its own (no IPv6 DAD/RS/MLD, no IGMP): quiet labs
            assert counter(g, "tx_packets") == 0
    finally:
        for g in guests:
            g.close()
        for w in wires:
            w.close()


def test_guest_outlives_the_thread_that_started_it(wire: Wire, tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG fires when the forking *thread* exits: starting from a worker is safe."""
    box: list[QemuGuest] = []
    worker = threading.Thread(
        target=lambda: box.append(
            QemuGuest.start(name="vm2", tap_fd=wire.tap_fd, mac=GUEST_MAC, workdir=tmp_path)
        )
    )
    worker.start()
    worker.join()
    guest = box[0]
    try:
        with pytest.raises(GuestError, match=r"did not become ready within 0\.01s"):
            guest.wait_ready(0.01)
        guest.wait_ready(60)
        assert guest.run("echo alive").output == "alive\n"
    finally:
        guest.close()


def test_close_kills_and_reaps_fast_and_is_idempotent(wire: Wire, tmp_path: Path) -> None:
    guest = QemuGuest.start(name="vm3", tap_fd=wire.tap_fd, mac=GUEST_MAC, workdir=tmp_path)
    started = time.monotonic()
    guest.close()
    guest.close()
    assert time.monotonic() - started < 1.0
    with pytest.raises(ProcessLookupError):  # reaped: not even a zombie is left
        os.kill(guest.pid, 0)
    with pytest.raises(GuestError, match="closed"):
        guest.run("true")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vm3.boot.log"]


def test_qemu_failure_is_reported_with_the_boot_log(tmp_path: Path) -> None:
    not_a_tap = os.open(tmp_path / "not-a-tap", os.O_RDWR | os.O_CREAT)
    try:
        guest = QemuGuest.start(name="bad", tap_fd=not_a_tap, mac=GUEST_MAC, workdir=tmp_path)
        try:
            with pytest.raises(GuestError, match="qemu exited with status") as failure:
                guest.wait_ready(30)
            assert "boot log" in str(failure.value)
            assert "qemu-system-x86_64:" in str(failure.value)  # QEMU's own complaint
        finally:
            guest.close()
    finally:
        os.close(not_a_tap)


def test_bad_arguments_are_lab_errors(wire: Wire, tmp_path: Path) -> None:
    with pytest.raises(GuestError, match="MAC"):
        QemuGuest.start(name="vm4", tap_fd=wire.tap_fd, mac="nonsense", workdir=tmp_path)
    with pytest.raises(GuestError, match="name"):
        QemuGuest.start(name="a b", tap_fd=wire.tap_fd, mac=GUEST_MAC, workdir=tmp_path)


def test_killing_the_owning_process_leaves_no_qemu() -> None:
    wire_or_skip("vlabprobe").close()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}
    done = subprocess.run(
        [sys.executable, str(HERE / "guest_owner.py"), "reaper"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ready"] == "ready"
    assert report["how"] == "signal 9", report
    assert report["seconds"] < 2.0
    assert not Path(f"/proc/{report['pid']}").exists()
