"""Membership report builders, checked with scapy's own IGMP/MLD dissectors."""

from __future__ import annotations

from scapy.layers.igmp import IGMP
from scapy.layers.inet import IP
from scapy.layers.inet6 import ICMPv6MLReport2
from scapy.layers.l2 import Ether

from vlab import mcast_frames as mf
from vlab.ip import _checksum


def test_igmp_v2_report_and_leave() -> None:
    report = IGMP(bytes(mf.igmp_v2("02:00:00:00:00:01", "239.10.10.10")[IP].payload))
    assert (report.type, report.gaddr) == (0x16, "239.10.10.10")
    assert report.chksum == IGMP(bytes(IGMP(type=0x16, gaddr="239.10.10.10"))).chksum
    leave = mf.igmp_v2("02:00:00:00:00:01", "239.10.10.10", leave=True)
    assert leave.dst == "01:00:5e:00:00:02" and leave[IP].dst == "224.0.0.2"
    assert mf.igmp_v2("02:00:00:00:00:01", "239.138.1.1").dst == "01:00:5e:0a:01:01"


def test_igmp_v3_record() -> None:
    frame = Ether(bytes(mf.igmp_v3("02:00:00:00:00:01", mf.BLOCK, "239.1.1.1", ["192.0.2.2"])))
    body = bytes(frame[IP].payload)
    assert body[0] == 0x22 and body[6:8] == b"\0\1" and _checksum(body) == 0  # valid sum
    assert body[8:] == bytes([6, 0, 0, 1, 239, 1, 1, 1, 192, 0, 2, 2])  # BLOCK, 1 source


def test_mld_v2_record() -> None:
    frame = Ether(bytes(mf.mld_v2("02:00:00:00:00:01", mf.ALLOW, "ff02::cc", ["2001:db8::1"])))
    record = frame[ICMPv6MLReport2].records[0]
    assert (record.rtype, record.dst, record.sources) == (5, "ff02::cc", ["2001:db8::1"])
