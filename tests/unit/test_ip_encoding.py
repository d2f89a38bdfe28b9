"""The address, route and ICMP encoders, checked against pyroute2's and scapy's decoders."""

from __future__ import annotations

import ipaddress
import struct

from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg
from scapy.layers.inet import ICMP

from vlab import ip as iplib
from vlab import rtnl as nl


def decode(cls: type, body: bytes) -> object:
    header = struct.pack("=IHHII", 16 + len(body), 0, 0, 0, 0)
    msg = cls(header + body)
    msg.decode()
    return msg


def test_ipv4_address_body() -> None:
    msg = decode(ifaddrmsg, nl.addr_body(7, ipaddress.ip_address("192.0.2.1").packed, 24))
    assert (msg["family"], msg["prefixlen"], msg["index"]) == (2, 24, 7)
    assert msg.get_attr("IFA_LOCAL") == msg.get_attr("IFA_ADDRESS") == "192.0.2.1"


def test_ipv6_address_body_skips_dad() -> None:
    msg = decode(ifaddrmsg, nl.addr_body(3, ipaddress.ip_address("2001:db8::1").packed, 64))
    assert (msg["family"], msg["prefixlen"]) == (10, 64)
    assert msg.get_attr("IFA_ADDRESS") == "2001:db8::1"
    assert msg["flags"] & nl.IFA_F_NODAD


def test_route_body() -> None:
    gw = ipaddress.ip_address("192.0.2.254").packed
    msg = decode(rtmsg, nl.route_body(ipaddress.ip_address("198.51.100.0").packed, 24, gw, 2))
    assert (msg["family"], msg["dst_len"], msg["table"]) == (2, 24, 254)
    assert msg.get_attr("RTA_DST") == "198.51.100.0"
    assert msg.get_attr("RTA_GATEWAY") == "192.0.2.254"
    assert msg.get_attr("RTA_OIF") == 2
    default = decode(rtmsg, nl.route_body(bytes(16), 0, None, 2))
    assert default.get_attr("RTA_DST") is None and default["scope"] == nl.RT_SCOPE_LINK


def test_echo_request_checksum_and_reply_match() -> None:
    packet = iplib.echo_request(0x1234, 5, b"payload", v6=False)
    icmp = ICMP(packet)
    assert (icmp.type, icmp.id, icmp.seq) == (8, 0x1234, 5)
    assert bytes(ICMP(type=8, id=0x1234, seq=5) / b"payload") == packet  # scapy's checksum
    reply = bytes(20) + bytes([0]) + packet[1:]
    ip_header = bytes([0x45]) + reply[1:]
    assert iplib.is_reply(ip_header, 0x1234, 5, v6=False)
    assert not iplib.is_reply(ip_header, 0x1234, 6, v6=False)
    assert not iplib.is_reply(bytes([0x45]) + bytes(19) + packet, 0x1234, 5, v6=False)  # request
    assert iplib.is_reply(bytes([129]) + packet[1:], 0x1234, 5, v6=True)
