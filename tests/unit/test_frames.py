"""Matching, masks, diffs and pcap files: pure logic, no kernel."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether
from scapy.utils import rdpcap

from vlab.capture import restore_vlan, write_pcap
from vlab.errors import LabError
from vlab.frames import Mask, closeness, field_diff, to_bytes

BASE = Ether(src="52:54:00:00:00:01", dst="52:54:00:00:00:02") / IP(ttl=5) / UDP() / b"data"


def test_exact_match_is_byte_equality() -> None:
    m = Mask(BASE)
    assert m.matches(bytes(BASE))
    assert not m.matches(bytes(BASE) + b"\0")  # padding is a difference
    assert m.describe() == "exact bytes"


def test_mask_ignores_only_named_fields() -> None:
    m = Mask(BASE).ignore("IP.ttl", "IP.chksum")
    other = BASE.copy()
    other[IP].ttl = 99
    assert m.matches(bytes(Ether(bytes(other))))
    other[UDP].dport = 1
    assert not m.matches(bytes(Ether(bytes(other))))
    assert not m.matches(bytes(Ether(src="52:54:00:00:00:01", dst="52:54:00:00:00:02") / b"x"))


def test_mask_on_payload_and_macs() -> None:
    m = Mask(BASE).ignore("Raw.load", "IP.len", "IP.chksum", "UDP.len", "UDP.chksum")
    assert m.matches(bytes(BASE.copy()[Ether]))
    longer = Ether(src="52:54:00:00:00:01", dst="52:54:00:00:00:02") / IP(ttl=5) / UDP() / b"zz"
    assert m.matches(bytes(longer))
    assert (
        Mask(BASE)
        .ignore("Ether.src")
        .matches(
            bytes(
                Ether(src="02:00:00:00:00:09", dst="52:54:00:00:00:02")
                / IP(ttl=5)
                / UDP()
                / b"data"
            )
        )
    )


def test_mask_errors_name_the_problem() -> None:
    with pytest.raises(LabError, match=r"no TCP layer \(it has Ether, IP, UDP, Raw\)"):
        Mask(BASE).ignore("TCP.flags")
    with pytest.raises(LabError, match="UDP has no field 'port'"):
        Mask(BASE).ignore("UDP.port")


def test_field_diff_and_closeness() -> None:
    other = BASE.copy()
    other[UDP].dport = 99
    diff = field_diff(BASE, Ether(bytes(other)))
    assert any(line.startswith("UDP.dport: expected 53") for line in diff)
    m = Mask(BASE)
    assert closeness(m, bytes(BASE)) < closeness(m, bytes(other))
    assert field_diff(BASE, Ether(bytes(Ether() / b"x")))[0].startswith("Ether.dst")


def test_to_bytes_rejects_lists_with_a_hint() -> None:
    with pytest.raises(LabError, match="not list"):
        to_bytes([BASE])  # type: ignore[arg-type]


def test_restore_vlan_puts_the_tag_back_in_wire_order() -> None:
    untagged = bytes(Ether(src="52:54:00:00:00:01", dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / b"x")
    tagged = restore_vlan(untagged, (5 << 13) | 100, 0x8100)
    pkt = Ether(tagged)
    assert pkt[Dot1Q].vlan == 100 and pkt[Dot1Q].prio == 5 and pkt[Dot1Q].type == 0x88B5


def test_pcap_is_nanosecond_and_readable(tmp_path: Path) -> None:
    frames = [(1_700_000_000_123_456_789, bytes(BASE)), (1_700_000_001_000_000_001, b"\xff" * 60)]
    path = write_pcap(tmp_path / "x.pcap", frames)
    raw = path.read_bytes()
    assert struct.unpack_from("=I", raw)[0] == 0xA1B23C4D
    packets = rdpcap(str(path))
    assert [bytes(p) for p in packets] == [f for _, f in frames]
    assert int(packets[0].time * 10**9) // 1000 == 1_700_000_000_123_456  # ns kept (to float)


def test_mask_on_fields_that_are_not_numbers() -> None:
    """IPv6 addresses and option lists cannot be blanked to 0: masks copy the expected value."""
    from scapy.layers.inet import TCP
    from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6

    v6 = (
        Ether(src="52:54:00:00:00:01", dst="33:33:00:00:00:01")
        / IPv6(src="2001:db8::1", dst="ff02::1")
        / ICMPv6EchoRequest()
    )
    other = v6.copy()
    other[IPv6].src = "2001:db8::99"
    other[ICMPv6EchoRequest].cksum = None
    m = Mask(v6).ignore("IPv6.src", "ICMPv6EchoRequest.cksum")
    assert m.matches(bytes(v6))
    assert m.matches(bytes(other))
    other[IPv6].dst = "ff02::2"
    assert not m.matches(bytes(other))
    tcp = Ether() / IP() / TCP(options=[("MSS", 1460)])
    changed = Ether() / IP() / TCP(options=[("MSS", 1400)])
    assert Mask(tcp).ignore("TCP.options", "TCP.chksum").matches(bytes(changed))
    assert not Mask(tcp).ignore("TCP.options").matches(bytes(Ether() / IP() / TCP(dport=1)))
