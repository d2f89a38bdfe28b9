"""Build the bytes of a declared frame.

Building is pure: MAC references (``vm1.mac``) are resolved through a callback, so the same code
serves the runner (resolving against a live lab) and unit tests (resolving against a table).
Protocol bodies that must be malformed on purpose (IGMP records, ND options) are packed by hand;
scapy is used only where it computes checksums over headers we keep well-formed.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable

from scapy.layers.inet import IP, UDP, IPOption_Router_Alert
from scapy.layers.inet6 import ICMPv6ND_NS, IPv6
from scapy.layers.l2 import ARP
from scapy.packet import Raw

from vlab.ip import checksum
from vlab.scenario.spec import (
    Arp,
    Eapol,
    FrameSpec,
    Helper,
    HexPayload,
    Igmp,
    Ipv4,
    Ipv6Ns,
    Lldp,
    Payload,
    SizePayload,
    Stp,
    TextPayload,
)

Resolve = Callable[[str], str]
"""Maps a MAC reference such as ``vm1.mac`` to a literal MAC; literals never reach it."""

DEFAULT_ETHERTYPE = 0x88B5
BROADCAST = "ff:ff:ff:ff:ff:ff"
LLDP_GROUP = "01:80:c2:00:00:0e"
PAE_GROUP = "01:80:c2:00:00:03"
STP_GROUP = "01:80:c2:00:00:00"
IGMP_RECORD_TYPES = {"is_in": 1, "is_ex": 2, "to_in": 3, "to_ex": 4, "allow": 5, "block": 6}


def ipv4_group_mac(group: str) -> str:
    """The 01:00:5e MAC an IPv4 multicast group maps to."""
    low = int(ipaddress.IPv4Address(group)) & 0x7FFFFF
    return "01:00:5e:" + ":".join(f"{b:02x}" for b in low.to_bytes(3, "big"))


def ipv6_group_mac(group: str) -> str:
    """The 33:33 MAC an IPv6 multicast group maps to."""
    low = ipaddress.IPv6Address(group).packed[-4:]
    return "33:33:" + ":".join(f"{b:02x}" for b in low)


def solicited_node(target: str) -> str:
    """The solicited-node multicast group of an IPv6 address."""
    low = int(ipaddress.IPv6Address(target)) & 0xFFFFFF
    return str(ipaddress.IPv6Address(int(ipaddress.IPv6Address("ff02::1:ff00:0")) | low))


def igmp_ip_dst(igmp: Igmp) -> str:
    """Position an IGMP message is addressed, as hosts and routers send it."""
    if igmp.query is not None:
        return "224.0.0.1" if igmp.query == "0.0.0.0" else igmp.query
    if igmp.version == 3:
        return "224.0.0.22"
    if igmp.leave is not None:
        return "224.0.0.2"
    assert igmp.report is not None
    return igmp.report


def default_dst(helper: Helper | None) -> str | None:
    """The destination a helper implies (a literal MAC or a reference), or None if it has none."""
    if isinstance(helper, Arp):
        return BROADCAST if helper.op == "request" else helper.target_mac
    if isinstance(helper, Igmp):
        return ipv4_group_mac(igmp_ip_dst(helper))
    if isinstance(helper, Ipv4):
        dst = ipaddress.IPv4Address(helper.dst)
        if dst.is_multicast:
            return ipv4_group_mac(helper.dst)
        return BROADCAST if helper.dst == "255.255.255.255" else None
    if isinstance(helper, Ipv6Ns):
        return ipv6_group_mac(helper.dst or solicited_node(helper.target))
    if isinstance(helper, Lldp):
        return LLDP_GROUP
    if isinstance(helper, Eapol):
        return PAE_GROUP
    if isinstance(helper, Stp):
        return STP_GROUP
    return None


def payload_bytes(payload: Payload | None) -> bytes:
    """The bytes a payload declaration stands for."""
    if payload is None:
        return b""
    if isinstance(payload, TextPayload):
        return payload.text.encode()
    if isinstance(payload, HexPayload):
        return payload.data
    assert isinstance(payload, SizePayload)
    return bytes(i % 256 for i in range(payload.size))


def _mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def _igmp_body(igmp: Igmp) -> bytes:
    if igmp.query is not None:
        group = ipaddress.IPv4Address(igmp.query).packed
        if igmp.version == 2:
            head = struct.pack("!BBH4s", 0x11, 100, 0, group)
        else:
            head = struct.pack("!BBH4sBBH", 0x11, 100, 0, group, 2, 125, 0)
    elif igmp.version == 2:
        kind, group_ip = (0x16, igmp.report) if igmp.report is not None else (0x17, igmp.leave)
        assert group_ip is not None
        head = struct.pack("!BBH4s", kind, 0, 0, ipaddress.IPv4Address(group_ip).packed)
    else:
        records = b"".join(
            struct.pack(
                "!BBH4s",
                IGMP_RECORD_TYPES[r.type],
                0,
                len(r.sources),
                ipaddress.IPv4Address(r.group).packed,
            )
            + b"".join(ipaddress.IPv4Address(s).packed for s in r.sources)
            for r in igmp.records
        )
        head = struct.pack("!BBHHH", 0x22, 0, 0, 0, len(igmp.records)) + records
    return head[:2] + struct.pack("!H", checksum(head)) + head[4:]


def _igmp(igmp: Igmp) -> bytes:
    ip = IP(
        src=igmp.source_ip,
        dst=igmp_ip_dst(igmp),
        ttl=1,
        tos=0xC0 if igmp.version == 3 else 0,
        proto=2,
        options=[IPOption_Router_Alert()],
    )
    return bytes(ip / Raw(_igmp_body(igmp)))


def _lldp(lldp: Lldp, src: str) -> bytes:
    def tlv(kind: int, value: bytes) -> bytes:
        return struct.pack("!H", (kind << 9) | len(value)) + value

    chassis = b"\x04" + _mac_bytes(src) if lldp.chassis is None else b"\x07" + lldp.chassis.encode()
    return (
        tlv(1, chassis)
        + tlv(2, b"\x07" + lldp.port.encode())
        + tlv(3, struct.pack("!H", lldp.ttl))
        + tlv(0, b"")
    )


def _stp(stp: Stp, root_mac: str) -> bytes:
    if stp.type == "tcn":
        bpdu = bytes.fromhex("00000080")
    else:
        bridge_id = struct.pack("!H", stp.root_priority) + _mac_bytes(root_mac)
        timers = struct.pack("!HHHH", 0, 20 * 256, 2 * 256, 15 * 256)
        bpdu = (
            bytes.fromhex("0000000000")
            + bridge_id
            + struct.pack("!I", stp.cost)
            + bridge_id
            + struct.pack("!H", stp.port_id)
            + timers
        )
    return b"\x42\x42\x03" + bpdu


def _ns(ns: Ipv6Ns) -> bytes:
    options = b"".join(bytes([o.type, o.length]) + o.data for o in ns.options)
    packet = IPv6(src=ns.src, dst=ns.dst or solicited_node(ns.target), hlim=255)
    return bytes(packet / ICMPv6ND_NS(tgt=ns.target) / Raw(options))


def _body(
    spec: FrameSpec, src: str, resolve: Callable[[str | None], str | None]
) -> tuple[int, bytes]:
    """The ethertype (or 802.3 length marker -1) and the bytes after it."""
    helper = spec.helper
    if helper is None:
        return spec.ethertype or DEFAULT_ETHERTYPE, payload_bytes(spec.payload)
    if isinstance(helper, Arp):
        arp = ARP(
            op=1 if helper.op == "request" else 2,
            hwsrc=resolve(helper.sender_mac) or src,
            psrc=helper.sender_ip,
            hwdst=resolve(helper.target_mac) or "00:00:00:00:00:00",
            pdst=helper.target_ip,
        )
        return 0x0806, bytes(arp)
    if isinstance(helper, Ipv4):
        inner = Raw(payload_bytes(helper.payload))
        ip = IP(src=helper.src, dst=helper.dst, ttl=helper.ttl)
        packet = (
            ip / UDP(sport=helper.udp.sport, dport=helper.udp.dport) / inner
            if helper.udp
            else ip / inner
        )
        return 0x0800, bytes(packet)
    if isinstance(helper, Igmp):
        return 0x0800, _igmp(helper)
    if isinstance(helper, Lldp):
        return 0x88CC, _lldp(helper, src)
    if isinstance(helper, Eapol):
        return 0x888E, bytes([1, 1 if helper.type == "start" else 2, 0, 0])
    if isinstance(helper, Stp):
        return -1, _stp(helper, resolve(helper.root_mac) or src)
    assert isinstance(helper, Ipv6Ns)
    return 0x86DD, _ns(helper)


def build(spec: FrameSpec, resolve: Resolve) -> bytes:
    """The frame's bytes, exactly as they will be written to the sending endpoint."""
    if spec.raw is not None:
        return spec.raw

    def mac(value: str | None) -> str | None:
        if value is None or "." not in value:
            return value
        return resolve(value)

    src = mac(spec.src)
    dst = mac(spec.dst) or mac(default_dst(spec.helper))
    if src is None or dst is None:
        raise ValueError("a frame needs src and dst (the loader guarantees this for files)")
    ethertype, body = _body(spec, src, mac)
    header = _mac_bytes(dst) + _mac_bytes(src)
    if spec.vlan is not None:
        tci = (spec.vlan.prio << 13) | spec.vlan.id
        header += struct.pack("!HH", spec.vlan.tpid, tci)
        if spec.vlan.inner is not None:
            header += struct.pack("!HH", 0x8100, spec.vlan.inner)
    if ethertype < 0:
        ethertype = len(body)
    return header + struct.pack("!H", ethertype) + body
