"""Frames built from declarations are the bytes a protocol implementation expects."""

from __future__ import annotations

from scapy.layers.igmp import IGMP, IGMPv3_MR
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import ICMPv6ND_NS, IPv6
from scapy.layers.l2 import ARP, STP, Dot1Q, Dot3, Ether

from vlab.scenario.spec import (
    Arp,
    Eapol,
    FrameSpec,
    HexPayload,
    Igmp,
    IgmpRecord,
    Ipv4,
    Ipv6Ns,
    Lldp,
    NdOption,
    SizePayload,
    Stp,
    TextPayload,
    Udp,
    Vlan,
)
from vlab.scenario.wire import build, default_dst, ipv4_group_mac, solicited_node

MACS = {
    "vm1.mac": "52:54:00:00:00:01",
    "vm2.mac": "52:54:00:00:00:02",
    "br0.mac": "02:00:00:00:00:b0",
}


def frame(**fields: object) -> Ether:
    return Ether(build(FrameSpec(src="vm1.mac", **fields), MACS.__getitem__))  # type: ignore[arg-type]


def test_plain_frame_defaults_to_local_experimental_ethertype() -> None:
    f = frame(dst="vm2.mac", payload=TextPayload("probe"))
    assert (f.src, f.dst, f.type, bytes(f.payload)) == (
        "52:54:00:00:00:01",
        "52:54:00:00:00:02",
        0x88B5,
        b"probe",
    )


def test_vlan_tag_and_payload_forms() -> None:
    f = frame(dst="br0.mac", ethertype=0x0800, vlan=Vlan(10, 5), payload=HexPayload(b"\xde\xad"))
    assert f[Dot1Q].vlan == 10 and f[Dot1Q].prio == 5 and f[Dot1Q].type == 0x0800
    assert bytes(f[Dot1Q].payload) == b"\xde\xad"
    sized = frame(dst="vm2.mac", payload=SizePayload(300))
    assert len(bytes(sized)) == 314


def test_raw_frame_is_verbatim() -> None:
    assert build(FrameSpec(raw=b"\x01\x02"), MACS.__getitem__) == b"\x01\x02"


def test_arp_request_is_broadcast_from_frame_source() -> None:
    f = frame(helper=Arp("request", "10.0.0.1", "10.0.0.2"))
    assert f.dst == "ff:ff:ff:ff:ff:ff"
    assert (f[ARP].op, f[ARP].hwsrc, f[ARP].pdst) == (1, "52:54:00:00:00:01", "10.0.0.2")


def test_arp_reply_goes_to_target_mac() -> None:
    f = frame(helper=Arp("reply", "10.0.0.1", "10.0.0.2", target_mac="vm2.mac"))
    assert f.dst == "52:54:00:00:00:02" and f[ARP].hwdst == "52:54:00:00:00:02"


def test_ipv4_udp_multicast_maps_group_mac() -> None:
    f = frame(helper=Ipv4("10.0.0.1", "239.1.2.3", udp=Udp(1000, 2000), payload=TextPayload("x")))
    assert f.dst == "01:00:5e:01:02:03" and f[UDP].dport == 2000 and f[IP].ttl == 64


def test_igmp_v2_report_and_leave_are_valid() -> None:
    report = frame(helper=Igmp(report="239.1.1.1"))
    assert report.dst == ipv4_group_mac("239.1.1.1") == "01:00:5e:01:01:01"
    assert report[IP].ttl == 1 and report[IP].dst == "239.1.1.1"
    parsed = IGMP(bytes(report[IP].payload))
    assert parsed.type == 0x16 and parsed.gaddr == "239.1.1.1"
    leave = frame(helper=Igmp(leave="239.1.1.1"))
    assert leave[IP].dst == "224.0.0.2" and IGMP(bytes(leave[IP].payload)).type == 0x17


def test_igmp_checksums_verify() -> None:
    for igmp in (
        Igmp(report="239.1.1.1"),
        Igmp(version=3, records=(IgmpRecord("to_ex", "239.1.1.1", ("10.0.0.9",)),)),
        Igmp(query="0.0.0.0"),
        Igmp(version=3, query="239.1.1.1"),
    ):
        body = bytes(frame(helper=igmp)[IP].payload)
        total = sum(int.from_bytes(body[i : i + 2], "big") for i in range(0, len(body), 2))
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        assert total == 0xFFFF, igmp


def test_igmp_v3_report_records() -> None:
    helper = Igmp(version=3, records=(IgmpRecord("to_in", "239.1.1.1"),), source_ip="10.0.0.5")
    f = frame(helper=helper)
    assert f[IP].dst == "224.0.0.22" and f[IP].src == "10.0.0.5" and f.dst == "01:00:5e:00:00:16"
    report = IGMPv3_MR(bytes(f[IP].payload))
    assert report.type == 0x22 and report.numgrp == 1
    record = report.records[0]
    assert record.rtype == 3 and record.maddr == "239.1.1.1" and record.numsrc == 0


def test_link_local_helpers_default_to_their_groups() -> None:
    assert frame(helper=Lldp()).dst == "01:80:c2:00:00:0e"
    assert frame(helper=Lldp()).type == 0x88CC
    eapol = frame(helper=Eapol())
    assert eapol.dst == "01:80:c2:00:00:03" and bytes(eapol.payload) == b"\x01\x01\x00\x00"
    bpdu = Dot3(build(FrameSpec(src="vm1.mac", helper=Stp()), MACS.__getitem__))
    assert bpdu.dst == "01:80:c2:00:00:00" and bpdu.len == 38
    assert bpdu[STP].rootmac == "52:54:00:00:00:01" and bpdu[STP].rootid == 32768


def test_ns_options_are_written_as_declared() -> None:
    bad = NdOption(type=1, length=0)
    f = frame(helper=Ipv6Ns("fe80::1", "2001:db8::2", options=(bad,)))
    assert f.dst == "33:33:ff:00:00:02" and f[IPv6].dst == solicited_node("2001:db8::2")
    assert f[ICMPv6ND_NS].tgt == "2001:db8::2"
    assert bytes(f[ICMPv6ND_NS].payload)[-2:] == b"\x01\x00"


def test_default_dst_is_absent_for_unicast_without_target() -> None:
    assert default_dst(None) is None
    assert default_dst(Ipv4("10.0.0.1", "10.0.0.2")) is None
    assert default_dst(Arp("reply", "10.0.0.1", "10.0.0.2")) is None
