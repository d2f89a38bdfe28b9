"""Reading frame declarations: plain Ethernet fields, a protocol helper, or raw bytes."""

from __future__ import annotations

from typing import Literal, cast

from yaml.nodes import Node, ScalarNode

from vlab.scenario import fields
from vlab.scenario.names import Names
from vlab.scenario.spec import (
    Arp,
    Eapol,
    FrameSpec,
    Helper,
    HexPayload,
    Igmp,
    IgmpRecord,
    IgmpRecordType,
    Ipv4,
    Ipv6Ns,
    Lldp,
    NdOption,
    Payload,
    SizePayload,
    Stp,
    TextPayload,
    Udp,
    Vlan,
)
from vlab.scenario.wire import IGMP_RECORD_TYPES, default_dst

MAX_FRAME = 9216
"""Jumbo frames are the largest anything in a lab carries."""

HELPERS = ("arp", "ipv4", "igmp", "lldp", "eapol", "stp", "ipv6_ns")
FRAME_KEYS = ("src", "dst", "ethertype", "vlan", "payload", "raw", *HELPERS)
PAYLOAD_KEYS = ("text", "hex", "size")


def payload(node: Node, what: str) -> Payload:
    """Text (a plain string or ``{text: ...}``), ``{hex: ...}`` or ``{size: N}``."""
    if isinstance(node, ScalarNode):
        return TextPayload(fields.text(node, what, max_len=MAX_FRAME))
    found = fields.keys(node, what, PAYLOAD_KEYS)
    if len(found) != 1:
        fields.fail(node, f"{what} needs exactly one of text, hex, size", "pick one form")
    ((key, value),) = found.items()
    if key == "text":
        return TextPayload(fields.text(value, f"{what} text", max_len=MAX_FRAME))
    if key == "hex":
        return HexPayload(fields.hexbytes(value, f"{what} hex", MAX_FRAME))
    return SizePayload(fields.integer(value, f"{what} size", 0, MAX_FRAME))


def vlan(node: Node) -> Vlan:
    """``vlan: 10`` or ``vlan: {id: 10, prio: 3}``; ``tpid: 0x88a8`` makes it an 802.1ad
    (S-)tag, ``inner: 5`` adds an 802.1Q (C-)tag with VLAN 5 inside it (QinQ)."""
    if isinstance(node, ScalarNode):
        return Vlan(fields.integer(node, "vlan id", 0, 4095))
    found = fields.keys(node, "vlan", ("id", "prio", "tpid", "inner"), required=("id",))
    prio = fields.integer(found["prio"], "vlan prio", 0, 7) if "prio" in found else 0
    tpid = 0x8100
    if "tpid" in found:
        tpid = fields.integer(found["tpid"], "vlan tpid", 0, 0xFFFF)
        if tpid not in (0x8100, 0x88A8, 0x9100):
            fields.fail(found["tpid"], f"vlan tpid {tpid:#06x} is not a tag type", TPID_FIX)
    inner = fields.integer(found["inner"], "vlan inner", 0, 4095) if "inner" in found else None
    return Vlan(fields.integer(found["id"], "vlan id", 0, 4095), prio, tpid, inner)


TPID_FIX = "write 0x8100 (802.1Q), 0x88a8 (802.1ad) or 0x9100"


def _arp(node: Node, names: Names) -> Arp:
    keys = ("op", "sender_ip", "target_ip", "sender_mac", "target_mac")
    found = fields.keys(node, "arp", keys, required=("sender_ip", "target_ip"))
    op = fields.choice(found["op"], "arp op", ("request", "reply")) if "op" in found else "request"
    return Arp(
        op=cast(Literal["request", "reply"], op),
        sender_ip=fields.ipv4(found["sender_ip"], "arp sender_ip"),
        target_ip=fields.ipv4(found["target_ip"], "arp target_ip"),
        sender_mac=names.mac(found["sender_mac"], "arp sender_mac")
        if "sender_mac" in found
        else None,
        target_mac=names.mac(found["target_mac"], "arp target_mac")
        if "target_mac" in found
        else None,
    )


def _ipv4(node: Node) -> Ipv4:
    found = fields.keys(
        node, "ipv4", ("src", "dst", "ttl", "udp", "payload"), required=("src", "dst")
    )
    udp = None
    if "udp" in found:
        ports = fields.keys(found["udp"], "udp", ("sport", "dport"), required=("sport", "dport"))
        udp = Udp(
            fields.integer(ports["sport"], "udp sport", 0, 65535),
            fields.integer(ports["dport"], "udp dport", 0, 65535),
        )
    return Ipv4(
        src=fields.ipv4(found["src"], "ipv4 src"),
        dst=fields.ipv4(found["dst"], "ipv4 dst"),
        ttl=fields.integer(found["ttl"], "ipv4 ttl", 0, 255) if "ttl" in found else 64,
        udp=udp,
        payload=payload(found["payload"], "ipv4 payload") if "payload" in found else None,
    )


def _igmp_record(node: Node) -> IgmpRecord:
    found = fields.keys(
        node, "igmp record", ("type", "group", "sources"), required=("type", "group")
    )
    kind = fields.choice(found["type"], "igmp record type", tuple(IGMP_RECORD_TYPES))
    sources = found.get("sources")
    return IgmpRecord(
        type=cast(IgmpRecordType, kind),
        group=fields.ipv4_multicast(found["group"], "igmp record group"),
        sources=tuple(fields.ipv4(s, "igmp source") for s in fields.sequence(sources, "sources"))
        if sources is not None
        else (),
    )


def _igmp(node: Node) -> Igmp:
    keys = ("version", "report", "leave", "query", "records", "source_ip")
    found = fields.keys(node, "igmp", keys)
    version = fields.integer(found["version"], "igmp version", 2, 3) if "version" in found else 2
    allowed = ("records", "query") if version == 3 else ("report", "leave", "query")
    kinds = [k for k in ("report", "leave", "query", "records") if k in found]
    if len(kinds) != 1 or kinds[0] not in allowed:
        fields.fail(
            node,
            f"igmp version {version} needs exactly one of {', '.join(allowed)}",
            f"write one of {', '.join(allowed)}"
            + ("; records need version: 3" if version == 2 else ""),
        )
    source_ip = fields.ipv4(found["source_ip"], "igmp source_ip") if "source_ip" in found else None
    kind = kinds[0]
    if kind == "records":
        items = fields.sequence(found["records"], "igmp records")
        if len(items) > 64:
            fields.fail(found["records"], "igmp has more than 64 records", "split the report")
        result = Igmp(version=3, records=tuple(_igmp_record(r) for r in items))
    elif kind == "query":
        query = fields.ipv4(found["query"], "igmp query")
        result = Igmp(version=2 if version == 2 else 3, query=query)
    else:
        group = fields.ipv4_multicast(found[kind], f"igmp {kind}")
        result = Igmp(version=2, report=group) if kind == "report" else Igmp(version=2, leave=group)
    if source_ip is not None:
        result = Igmp(
            result.version, result.report, result.leave, result.query, result.records, source_ip
        )
    return result


def _lldp(node: Node) -> Lldp:
    found = fields.keys(node, "lldp", ("chassis", "port", "ttl"))
    return Lldp(
        chassis=fields.text(found["chassis"], "lldp chassis", 255) if "chassis" in found else None,
        port=fields.text(found["port"], "lldp port", 255) if "port" in found else "1",
        ttl=fields.integer(found["ttl"], "lldp ttl", 0, 65535) if "ttl" in found else 120,
    )


def _eapol(node: Node) -> Eapol:
    found = fields.keys(node, "eapol", ("type",))
    kind = (
        fields.choice(found["type"], "eapol type", ("start", "logoff"))
        if "type" in found
        else "start"
    )
    return Eapol(cast(Literal["start", "logoff"], kind))


def _stp(node: Node, names: Names) -> Stp:
    found = fields.keys(node, "stp", ("type", "root_priority", "root_mac", "cost", "port_id"))
    kind = (
        fields.choice(found["type"], "stp type", ("config", "tcn")) if "type" in found else "config"
    )
    return Stp(
        type=cast(Literal["config", "tcn"], kind),
        root_priority=fields.integer(found["root_priority"], "stp root_priority", 0, 65535)
        if "root_priority" in found
        else 32768,
        root_mac=names.mac(found["root_mac"], "stp root_mac") if "root_mac" in found else None,
        cost=fields.integer(found["cost"], "stp cost", 0, 2**32 - 1) if "cost" in found else 0,
        port_id=fields.integer(found["port_id"], "stp port_id", 0, 65535)
        if "port_id" in found
        else 0x8001,
    )


def _nd_option(node: Node) -> NdOption:
    found = fields.keys(node, "ND option", ("type", "length", "data"), required=("type", "length"))
    return NdOption(
        type=fields.integer(found["type"], "ND option type", 0, 255),
        length=fields.integer(found["length"], "ND option length", 0, 255),
        data=fields.hexbytes(found["data"], "ND option data", 2048) if "data" in found else b"",
    )


def _ipv6_ns(node: Node) -> Ipv6Ns:
    found = fields.keys(
        node, "ipv6_ns", ("src", "target", "dst", "options"), required=("src", "target")
    )
    options = found.get("options")
    return Ipv6Ns(
        src=fields.ipv6(found["src"], "ipv6_ns src"),
        target=fields.ipv6(found["target"], "ipv6_ns target"),
        dst=fields.ipv6(found["dst"], "ipv6_ns dst") if "dst" in found else None,
        options=tuple(_nd_option(o) for o in fields.sequence(options, "ipv6_ns options"))
        if options is not None
        else (),
    )


def _helper(key: str, node: Node, names: Names) -> Helper:
    if key == "arp":
        return _arp(node, names)
    if key == "ipv4":
        return _ipv4(node)
    if key == "igmp":
        return _igmp(node)
    if key == "lldp":
        return Lldp() if _empty(node) else _lldp(node)
    if key == "eapol":
        return Eapol() if _empty(node) else _eapol(node)
    if key == "stp":
        return Stp() if _empty(node) else _stp(node, names)
    return _ipv6_ns(node)


def _empty(node: Node) -> bool:
    """``lldp: {}`` and a bare ``lldp:`` both mean "all defaults"."""
    return isinstance(node, ScalarNode) and node.tag == fields.NULL_TAG


def frame(node: Node, what: str, names: Names) -> FrameSpec:
    """A frame declaration; every MAC reference is checked against the topology."""
    found = fields.keys(node, what, FRAME_KEYS)
    if "raw" in found:
        if len(found) > 1:
            others = ", ".join(k for k in found if k != "raw")
            fields.fail(node, f"{what} has raw bytes and also {others}", "use either raw or fields")
        return FrameSpec(raw=fields.hexbytes(found["raw"], f"{what} raw", MAX_FRAME))
    helpers = [k for k in HELPERS if k in found]
    if len(helpers) > 1:
        fields.fail(
            found[helpers[1]],
            f"{what} has both {helpers[0]} and {helpers[1]}",
            "use one helper per frame",
        )
    helper = _helper(helpers[0], found[helpers[0]], names) if helpers else None
    if helper is not None:
        for key in ("ethertype", "payload"):
            if key in found:
                fields.fail(
                    found[key],
                    f"{what} has {helpers[0]} and {key}",
                    f"{helpers[0]} sets the {key} itself; remove {key}",
                )
    if "src" not in found:
        fields.fail(
            node,
            f"{what} has no 'src'",
            "add src: <MAC or endpoint.mac>; the bridge drops frames without a valid source",
        )
    dst = names.mac(found["dst"], f"{what} dst") if "dst" in found else default_dst(helper)
    if dst is None:
        fields.fail(node, f"{what} has no 'dst'", "add dst: <MAC or endpoint.mac>")
    return FrameSpec(
        src=names.mac(found["src"], f"{what} src"),
        dst=dst if "dst" in found else None,
        ethertype=fields.integer(found["ethertype"], "ethertype", 0, 0xFFFF)
        if "ethertype" in found
        else None,
        vlan=vlan(found["vlan"]) if "vlan" in found else None,
        payload=payload(found["payload"], f"{what} payload") if "payload" in found else None,
        helper=helper,
    )
