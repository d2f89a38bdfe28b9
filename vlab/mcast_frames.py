"""Multicast membership reports as frames: what a host's IGMP/MLD stack would send.

scapy builds IGMPv3 and MLDv2 reports only through contrib layers whose stacking is easy to get
wrong (a doubled header is silently ignored by the bridge); these build exactly the frames the
bridge's snooping parses: IGMPv2 reports and leaves, IGMPv3 and MLDv2 reports with one group
record. Record types: 1 is_include, 2 is_exclude, 3 to_include, 4 to_exclude, 5 allow, 6 block.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable

from scapy.layers import inet6
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether

from vlab.ip import checksum

IS_INCLUDE, IS_EXCLUDE, TO_INCLUDE, TO_EXCLUDE, ALLOW, BLOCK = 1, 2, 3, 4, 5, 6


def _record(rtype: int, group: str, sources: Iterable[str]) -> bytes:
    srcs = [ipaddress.ip_address(s).packed for s in sorted(sources)]
    head = struct.pack("!BBH", rtype, 0, len(srcs)) + ipaddress.ip_address(group).packed
    return head + b"".join(srcs)


def group_mac(group: str) -> str:
    """The MAC a multicast IP group is sent to: 01:00:5e + its low 23 bits (RFC 1112), or
    33:33 + its low 32 bits for IPv6 (RFC 2464)."""
    b = ipaddress.ip_address(group).packed
    if len(b) == 16:
        return "33:33:" + ":".join(f"{x:02x}" for x in b[12:])
    return f"01:00:5e:{b[1] & 0x7F:02x}:{b[2]:02x}:{b[3]:02x}"


def igmp_v2(src_mac: str, group: str, leave: bool = False, src: str = "192.0.2.2") -> Ether:
    """An IGMPv2 membership report for ``group`` (or its leave, sent to 224.0.0.2)."""
    kind, dst = (0x17, "224.0.0.2") if leave else (0x16, group)
    body = struct.pack("!BBH4s", kind, 0, 0, ipaddress.ip_address(group).packed)
    body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
    return Ether(src=src_mac, dst=group_mac(dst)) / IP(src=src, dst=dst, ttl=1, proto=2) / body


def igmp_v3(
    src_mac: str, rtype: int, group: str, sources: Iterable[str], src: str = "192.0.2.1"
) -> Ether:
    """An IGMPv3 report with one group record, to 224.0.0.1 as the kernel selftests send it."""
    body = struct.pack("!BBHHH", 0x22, 0, 0, 0, 1) + _record(rtype, group, sources)
    body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
    return (
        Ether(src=src_mac, dst="01:00:5e:00:00:01")
        / IP(src=src, dst="224.0.0.1", ttl=1, proto=2)
        / body
    )


def mld_v2(src_mac: str, rtype: int, group: str, sources: Iterable[str]) -> Ether:
    """An MLDv2 report with one group record, from a link-local source, Router Alert on."""
    rec = inet6.ICMPv6MLDMultAddrRec(rtype=rtype, dst=group, sources=sorted(sources))
    hbh = inet6.IPv6ExtHdrHopByHop(options=[inet6.RouterAlert()])
    ip = inet6.IPv6(src="fe80::1", dst="ff02::1", hlim=1) / hbh
    return Ether(src=src_mac, dst="33:33:00:00:00:01") / ip / inet6.ICMPv6MLReport2(records=[rec])
