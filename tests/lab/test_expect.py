"""Assertions that tell the truth: negative checks against late frames, masks, VLAN tags, pcaps,
failure text, and a quiet lab."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether
from scapy.utils import rdpcap

from vlab import VM, Bridge, Endpoint, Host, Lab, LabError, Mask, Uplink, capture

pytestmark = pytest.mark.vlab
PROBE = 0x88B5
BCAST = "ff:ff:ff:ff:ff:ff"


def probe(src: str, dst: str, payload: bytes = b"probe") -> Ether:
    return Ether(src=src, dst=dst, type=PROBE) / payload


def shape(lab: Lab, node: str, dev: str) -> None:
    """Shape ``dev`` to 1000 B/s with a 1600 B bucket.

    A 1000-byte filler empties most of the bucket, so the next 1000-byte frame waits ~400 ms
    in the tbf qdisc: a frame deliberately still in flight when the test looks.
    """
    tbf = ["tbf", "rate", "8kbit", "burst", "1600", "latency", "5s"]
    lab.run(node, "tc", "qdisc", "add", "dev", dev, "root", *tbf)


def shaped_lab(lab: Lab) -> tuple[Bridge, VM, Uplink]:
    """vm1 -> br0 -> uplink, the uplink's bridge port shaped."""
    br = lab.bridge("br0")
    vm1 = lab.vm("vm1", bridge=br)
    up = lab.uplink(br)
    shape(lab, "switch", up.port)
    return br, vm1, up


def assert_late_frame_caught(sender: Endpoint, receiver: Endpoint, dst: str) -> None:
    sender.send(probe(sender.mac, dst, b"f" * 986))
    late = probe(sender.mac, dst, b"L" * 986)
    sender.send(late)
    start = time.monotonic()
    with pytest.raises(AssertionError, match="expected no frame like"):
        receiver.expect_none(late)
    waited = time.monotonic() - start
    assert waited > 0.2, f"expect_none answered after {waited:.3f} s: it did not wait for the tbf"


def test_expect_none_fails_on_a_frame_held_back_by_tbf(lab: Lab) -> None:
    _br, vm1, up = shaped_lab(lab)
    assert_late_frame_caught(vm1, up, "02:00:00:00:00:99")


def test_a_shaper_added_later_in_another_namespace_is_noticed(lab: Lab) -> None:
    """Namespaces whose qdiscs cannot queue are not re-read on every check; a tbf added there
    afterwards (announced by the kernel) must be seen all the same."""
    br = lab.bridge("br0")
    vm = lab.vm("vm1", bridge=br)
    up = lab.uplink(br)
    warm = probe(up.mac, vm.mac, b"warm")
    up.send(warm)
    vm.expect(warm)
    vm.expect_none()  # the upstream namespace now reads as "noqueue only"
    shape(lab, "upstream", "eth0")
    assert_late_frame_caught(up, vm, vm.mac)


def test_settle_waits_for_the_shaper_then_frames_are_there(lab: Lab) -> None:
    _br, vm1, up = shaped_lab(lab)
    frames = [probe(vm1.mac, "02:00:00:00:00:99", bytes([i]) * 986) for i in range(3)]
    for f in frames:
        vm1.send(f)
    lab.settle()
    got = up.frames()
    assert [bytes(g) for g in got] == [bytes(f) for f in frames]


def uplink_shaped_at_its_far_end(lab: Lab, *tbf: str) -> tuple[Host, Uplink]:
    """h1 and an uplink on br0, the uplink's own link (where its sends leave) behind a tbf."""
    br = lab.bridge("br0")
    h1 = lab.host("h1", bridge=br)
    up = lab.uplink(br)
    lab.run("upstream", "tc", "qdisc", "add", "dev", "eth0", "root", "tbf", *tbf)
    return h1, up


def test_a_flood_behind_a_shaper_on_the_senders_own_link_is_sent_whole(lab: Lab) -> None:
    """A send waits while the kernel holds earlier frames (the socket's send buffer is full),
    as a blocking send would: the 97th 1400-byte frame into a 10 Mbit/s tbf was refused with
    EAGAIN, and the same happens under load when softirqs run late."""
    h1, up = uplink_shaped_at_its_far_end(lab, "rate", "10mbit", "burst", "5k", "latency", "5s")
    frames = [bytes(probe(up.mac, BCAST, i.to_bytes(2, "big") * 693)) for i in range(300)]
    for f in frames:
        up.send(f)
    lab.settle()
    assert [bytes(g) for g in h1.frames()] == frames


def test_a_send_the_kernel_never_makes_room_for_is_a_lab_error(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(capture, "SEND_WAIT", 0.3)
    _h1, up = uplink_shaped_at_its_far_end(lab, "rate", "8kbit", "burst", "1600", "limit", "10M")
    frame = probe(up.mac, BCAST, b"x" * 1386)
    start = time.monotonic()
    with pytest.raises(LabError, match=r"on eth0: the kernel still held .* after 0.3 s"):
        for _ in range(1000):
            up.send(frame)
    assert 0.3 <= time.monotonic() - start < 5


def test_a_frame_the_senders_qdisc_drops_is_a_lab_error_that_says_so(lab: Lab) -> None:
    _h1, up = uplink_shaped_at_its_far_end(lab, "rate", "8kbit", "burst", "1600", "limit", "3000")
    frame = probe(up.mac, BCAST, b"x" * 1386)
    with pytest.raises(LabError, match=r"on eth0: the link's qdisc dropped it \(ENOBUFS"):
        for _ in range(10):
            up.send(frame)


def test_expect_none_passes_fast_when_nothing_is_in_flight(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm1, vm2 = lab.vm("vm1", bridge=br), lab.vm("vm2", bridge=br)
    f = probe(vm1.mac, vm1.mac)  # to itself: learnt on ingress, so discarded
    vm1.send(probe(vm1.mac, "ff:ff:ff:ff:ff:ff"))
    vm2.expect(probe(vm1.mac, "ff:ff:ff:ff:ff:ff"))
    times = []
    for _ in range(50):
        vm1.send(f)
        t = time.perf_counter()
        vm2.expect_none()
        times.append(time.perf_counter() - t)
    times.sort()
    assert times[len(times) // 2] < 0.05  # generous: a median well under PTF's 100 ms sleep


def test_expect_none_of_one_frame_ignores_others(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm1, vm2 = lab.vm("vm1", bridge=br), lab.vm("vm2", bridge=br)
    a, b = probe(vm1.mac, "ff:ff:ff:ff:ff:ff", b"a"), probe(vm1.mac, "ff:ff:ff:ff:ff:ff", b"b")
    vm1.send(a)
    vm2.expect_none(b)  # a arrived, b did not
    with pytest.raises(AssertionError):
        vm2.expect_none(a)  # positive control: the same check catches a frame that arrived
    with pytest.raises(AssertionError):
        vm2.expect_none()  # a is still unconsumed
    vm2.expect(a)
    vm2.expect_none()


def test_expect_quiet_catches_any_unconsumed_frame(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm1, vm2, vm3 = (lab.vm(f"vm{i}", bridge=br) for i in (1, 2, 3))
    f = probe(vm1.mac, "ff:ff:ff:ff:ff:ff")
    vm1.send(f)
    vm2.expect(f)
    with pytest.raises(AssertionError, match="at vm3"):
        lab.expect_quiet()
    vm3.expect(f)
    lab.expect_quiet()


def test_expect_failure_text_shows_closest_frame_and_where_it_went(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm1 = lab.vm("vm1", bridge=br)
    lab.vm("vm2", bridge=br)
    up = lab.uplink(br)
    vm1.send(probe(vm1.mac, "ff:ff:ff:ff:ff:ff", b"x"))
    vm1.send(probe(vm1.mac, "ff:ff:ff:ff:ff:ff", b"probe"))
    with pytest.raises(AssertionError) as err:
        vm1.expect(probe(vm1.mac, "ff:ff:ff:ff:ff:ff", b"probe"), timeout=0.05)
    text = str(err.value)
    assert "vm1 (port vnet0 on br0) did not receive the expected frame" in text
    assert "nothing else arrived at vm1" in text
    assert "did arrive at: vm2, uplink" in text
    assert "pcaps (one per endpoint) and topology: /" in text
    wrong = Ether(src=vm1.mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B6) / b"probe"
    with pytest.raises(AssertionError) as err:
        up.expect(wrong, timeout=0.05)
    text = str(err.value)
    lines = text.splitlines()
    closest = lines.index(next(x for x in lines if "closest first" in x))
    assert "probe" in lines[closest + 1] or "19 B" in lines[closest + 1]  # the 5-byte payload
    assert "Ether.type: expected 35000 (0x88b8), got 35001" not in text
    assert "Ether.type: expected 34998 (0x88b6), got 34997 (0x88b5)" in text
    assert "Raw.load: expected b'probe', got b'x'" in text


def test_mask_accepts_only_differences_in_ignored_fields(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm1, vm2 = lab.vm("vm1", bridge=br), lab.vm("vm2", bridge=br)
    sent = (
        Ether(src=vm1.mac, dst=vm2.mac)
        / IP(src="192.0.2.1", dst="192.0.2.2", ttl=7)
        / UDP(sport=1, dport=2)
        / b"payload"
    )
    vm1.send(sent)
    expected = (
        Ether(src=vm1.mac, dst=vm2.mac)
        / IP(src="192.0.2.1", dst="192.0.2.2", ttl=64)
        / UDP(sport=1, dport=2)
        / b"payload"
    )
    with pytest.raises(AssertionError):
        vm2.expect(expected, timeout=0.05)  # exact comparison sees the ttl (and checksum)
    got = vm2.expect(Mask(expected).ignore("IP.ttl", "IP.chksum"))
    assert got[IP].ttl == 7
    vm1.send(sent)
    other = expected.copy()
    other[UDP].dport = 3
    with pytest.raises(AssertionError, match=r"UDP\.dport: expected 3, got 2"):
        vm2.expect(Mask(other).ignore("IP.ttl", "IP.chksum"), timeout=0.05)
    vm2.expect(expected, mask=["IP.ttl", "IP.chksum"])


def test_mask_with_unknown_field_is_a_lab_error() -> None:
    f = Ether() / IP() / b"x"
    with pytest.raises(LabError, match="no TCP layer"):
        Mask(f).ignore("TCP.sport")
    with pytest.raises(LabError, match="IP has no field 'tll'"):
        Mask(f).ignore("IP.tll")


@pytest.mark.parametrize(("vid", "prio"), [(100, 5), (0, 3), (4094, 0)])
def test_vlan_tags_survive_a_vlan_unaware_bridge(lab: Lab, vid: int, prio: int) -> None:
    br = lab.bridge("br0")
    vm = lab.vm("vm1", bridge=br)
    h = lab.host("h1", bridge=br)
    up = lab.uplink(br)
    tagged = (
        Ether(src=vm.mac, dst="ff:ff:ff:ff:ff:ff")
        / Dot1Q(vlan=vid, prio=prio, type=PROBE)
        / (b"t" * 46)
    )
    vm.send(tagged)
    got = up.expect(tagged)  # AF_PACKET path: the tag comes back from PACKET_AUXDATA
    assert got[Dot1Q].vlan == vid and got[Dot1Q].prio == prio
    h.expect(tagged)
    back = Ether(src=up.mac, dst=vm.mac) / Dot1Q(vlan=vid, prio=prio, type=PROBE) / (b"u" * 46)
    up.send(back)
    got = vm.expect(back)  # tap path: the kernel writes the tag into the frame itself
    assert got[Dot1Q].vlan == vid and got[Dot1Q].prio == prio


def test_oversized_frame_is_a_lab_error_at_send(lab: Lab) -> None:
    br = lab.bridge("br0")
    h = lab.host("h1", bridge=br)
    with pytest.raises(LabError, match="larger than"):
        h.send(probe(h.mac, "ff:ff:ff:ff:ff:ff", b"x" * 1501))
    with pytest.raises(LabError, match="shorter than an Ethernet header"):
        h.send(b"\x01\x02")


def test_quiet_lab_stays_quiet_for_3_seconds(lab: Lab) -> None:
    """A new namespace starts with the kernel's IPv6 defaults whatever the host has; vlab's
    quiet sysctls are what keeps router solicitations, DAD and MLD off lab links."""
    br = lab.bridge("br0")
    for i in range(2):
        lab.vm(f"vm{i}", bridge=br)
    lab.host("h1", bridge=br)
    lab.uplink(br)
    lab.settle()
    time.sleep(3)
    lab.expect_quiet()


def test_a_lab_that_is_not_quiet_is_caught(tmp_path: Path) -> None:
    """Positive control for the quiet test: with quiet=False the kernel's chatter is seen."""
    with Lab(quiet=False, artifacts=tmp_path) as lab:
        br = lab.bridge("br0", multicast_snooping=True)
        lab.vm("vm1", bridge=br)
        lab.host("h1", bridge=br)
        lab.uplink(br)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                lab.expect_quiet()
            except AssertionError as exc:
                assert "not quiet" in str(exc)
                return
            time.sleep(0.2)
        pytest.fail("a lab with IPv6 on sent nothing in 5 s: the quiet test proves nothing")


FAILING_TEST = textwrap.dedent(
    """
    import pytest
    from scapy.layers.l2 import Ether

    pytestmark = pytest.mark.vlab

    def test_fails(lab):
        br = lab.bridge("br0")
        vm1, vm2 = lab.vm("vm1", bridge=br), lab.vm("vm2", bridge=br)
        up = lab.uplink(br)
        for i in range(3):
            vm1.send(Ether(src=vm1.mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / (bytes([i]) * 10))
        never = Ether(src=vm1.mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / b"never"
        vm2.expect(never, timeout=0.05)
    """
)


def test_failing_test_leaves_pcaps_named_in_the_report(tmp_path: Path) -> None:
    (tmp_path / "test_failing.py").write_text(FAILING_TEST)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--vlab",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            f"--basetemp={tmp_path / 'base'}",
            str(tmp_path / "test_failing.py"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "vlab lab" in out and "bridge br0" in out and "fdb of br0" in out
    pcaps = sorted((tmp_path / "base").rglob("*.pcap"))
    names = sorted(p.name for p in pcaps)
    assert names == ["uplink-eth0.pcap", "vm1-vnet0.pcap", "vm2-vnet1.pcap"], names
    assert str(pcaps[0].parent) in out
    by_name = {p.name: p for p in pcaps}
    sent = [bytes(p) for p in rdpcap(str(by_name["vm1-vnet0.pcap"]))]
    got = [bytes(p) for p in rdpcap(str(by_name["vm2-vnet1.pcap"]))]
    assert len(sent) == 3 and got == sent  # what vm1 sent is exactly what vm2 received
    assert [p[Ether].type for p in rdpcap(str(by_name["uplink-eth0.pcap"]))] == [0x88B5] * 3
    with open(by_name["vm2-vnet1.pcap"], "rb") as fh:
        assert fh.read(4) == bytes.fromhex("4d3cb2a1")  # nanosecond pcap, little-endian
