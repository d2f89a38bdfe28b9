"""Writing a :class:`Scenario` back as scenario YAML, in the style a person would write it.

The property-test machine saves shrunk failing examples through :func:`dump_scenario`, so the text
must load back to an equal scenario; the writer checks that itself rather than hand back a file
that does not reproduce. Defaults are left out and small mappings are written on one line so the
result reads well in a pull request.
"""

from __future__ import annotations

from typing import Any

import yaml

from vlab.scenario.spec import (
    Arp,
    BridgeSpec,
    Carrier,
    Converge,
    Eapol,
    EndpointSpec,
    Expect,
    ExpectNone,
    Fdb,
    FdbAdd,
    FdbCheckEntry,
    FdbDel,
    FdbEntrySpec,
    FdbFlush,
    FrameRef,
    FrameSpec,
    Helper,
    HexPayload,
    Igmp,
    Ipv4,
    Ipv6Ns,
    Lldp,
    Neigh,
    Options,
    Payload,
    Scenario,
    Send,
    SetBridge,
    SetPort,
    SizePayload,
    Step,
    Stp,
    TextPayload,
    VlanAdd,
    VlanDel,
    VlanGlobal,
    VlanMember,
    Vlans,
    VlanSet,
    Wait,
)

HEX_OPTIONS = ("group_fwd_mask",)


class Flow(dict[str, Any]):
    """A mapping written on one line: ``{src: vm1.mac, dst: ...}``."""


class FlowList(list[Any]):
    """A list written on one line: ``[vm1, vm2]``."""


class Hex(int):
    """An integer written in hex (ethertypes, masks), as people read them."""


class _Dumper(yaml.SafeDumper):
    """Block style overall, flow style for :class:`Flow`, hex for :class:`Hex`."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _flow(dumper: yaml.SafeDumper, data: Flow) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True)


def _flow_list(dumper: yaml.SafeDumper, data: FlowList) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)


def _hex(dumper: yaml.SafeDumper, data: Hex) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:int", f"0x{int(data):04x}")


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(Flow, _flow)
_Dumper.add_representer(FlowList, _flow_list)
_Dumper.add_representer(Hex, _hex)
_Dumper.add_representer(str, _str)


def _options(options: Options) -> Flow:
    return Flow((k, Hex(v) if k in HEX_OPTIONS and isinstance(v, int) else v) for k, v in options)


def _payload(payload: Payload) -> Any:
    if isinstance(payload, TextPayload):
        return payload.text
    if isinstance(payload, HexPayload):
        return Flow(hex=payload.data.hex())
    assert isinstance(payload, SizePayload)
    return Flow(size=payload.size)


def _drop_none(**items: Any) -> Flow:
    return Flow((k, v) for k, v in items.items() if v is not None)


def _helper(helper: Helper) -> tuple[str, Any]:
    if isinstance(helper, Arp):
        return "arp", _drop_none(
            op=helper.op if helper.op != "request" else None,
            sender_ip=helper.sender_ip,
            target_ip=helper.target_ip,
            sender_mac=helper.sender_mac,
            target_mac=helper.target_mac,
        )
    if isinstance(helper, Ipv4):
        return "ipv4", _drop_none(
            src=helper.src,
            dst=helper.dst,
            ttl=helper.ttl if helper.ttl != 64 else None,
            udp=Flow(sport=helper.udp.sport, dport=helper.udp.dport) if helper.udp else None,
            payload=_payload(helper.payload) if helper.payload else None,
        )
    if isinstance(helper, Igmp):
        records = FlowList(
            _drop_none(
                type=r.type, group=r.group, sources=FlowList(r.sources) if r.sources else None
            )
            for r in helper.records
        )
        return "igmp", _drop_none(
            version=3 if helper.version == 3 else None,
            report=helper.report,
            leave=helper.leave,
            query=helper.query,
            records=records if helper.records else None,
            source_ip=helper.source_ip if helper.source_ip != Igmp().source_ip else None,
        )
    if isinstance(helper, Lldp):
        return "lldp", _drop_none(
            chassis=helper.chassis,
            port=helper.port if helper.port != "1" else None,
            ttl=helper.ttl if helper.ttl != 120 else None,
        )
    if isinstance(helper, Eapol):
        return "eapol", _drop_none(type=helper.type if helper.type != "start" else None)
    if isinstance(helper, Stp):
        default = Stp()
        return "stp", _drop_none(
            type=helper.type if helper.type != default.type else None,
            root_priority=helper.root_priority
            if helper.root_priority != default.root_priority
            else None,
            root_mac=helper.root_mac,
            cost=helper.cost if helper.cost else None,
            port_id=Hex(helper.port_id) if helper.port_id != default.port_id else None,
        )
    assert isinstance(helper, Ipv6Ns)
    options = FlowList(
        _drop_none(type=o.type, length=o.length, data=o.data.hex() if o.data else None)
        for o in helper.options
    )
    return "ipv6_ns", _drop_none(
        src=helper.src, target=helper.target, dst=helper.dst, options=options or None
    )


def frame(spec: FrameSpec) -> Flow:
    """A frame declaration as a one-line mapping."""
    if spec.raw is not None:
        return Flow(raw=spec.raw.hex())
    out = _drop_none(
        src=spec.src,
        dst=spec.dst,
        ethertype=Hex(spec.ethertype) if spec.ethertype is not None else None,
    )
    if spec.vlan is not None:
        v = spec.vlan
        plain = not v.prio and v.tpid == 0x8100 and v.inner is None
        out["vlan"] = (
            v.id
            if plain
            else _drop_none(
                id=v.id,
                prio=v.prio or None,
                tpid=Hex(v.tpid) if v.tpid != 0x8100 else None,
                inner=v.inner,
            )
        )
    if spec.payload is not None:
        out["payload"] = _payload(spec.payload)
    if spec.helper is not None:
        key, value = _helper(spec.helper)
        out[key] = value if value else None
    return out


def _fit(value: Any, width: int = 80) -> Any:
    """``value`` with one-line mappings that would run past ``width`` opened up into blocks."""
    if not isinstance(value, Flow):
        return value
    line = yaml.dump(value, Dumper=_Dumper, width=10_000, default_flow_style=True)
    if len(line) <= width:
        return value
    return {k: _fit(v, width - 4) for k, v in value.items()}


def _ref(ref: FrameRef) -> Any:
    return ref if isinstance(ref, str) else frame(ref)


def _at(names: tuple[str, ...]) -> Any:
    return names[0] if len(names) == 1 else FlowList(names)


def _fdb_entry(entry: FdbEntrySpec) -> Flow:
    return _drop_none(
        mac=entry.mac,
        at=entry.at,
        sticky=True if entry.sticky else None,
        static=False if not entry.static else None,
        vlan=entry.vlan,
    )


def _check(entry: FdbCheckEntry) -> Any:
    if entry.at is None and entry.kind == "any" and entry.vlan is None:
        return entry.mac
    kind = entry.kind if entry.kind != "any" else None
    return _drop_none(mac=entry.mac, at=entry.at, kind=kind, vlan=entry.vlan)


def step(item: Step) -> dict[str, Any]:
    """One step as ``{kind: body}`` plus its note."""
    body: Any
    if isinstance(item, Send):
        kind, body = "send", Flow({"from": item.source, "frame": _ref(item.frame)})
    elif isinstance(item, Expect):
        kind, body = (
            "expect",
            _drop_none(
                at=_at(item.at),
                frame=_ref(item.frame) if item.frame is not None else None,
                only=True if item.only else None,
                ignore=FlowList(item.ignore) if item.ignore else None,
            ),
        )
    elif isinstance(item, ExpectNone):
        kind, body = (
            "expect_none",
            _drop_none(
                at=_at(item.at) if item.at else None,
                frame=_ref(item.frame) if item.frame is not None else None,
            ),
        )
    elif isinstance(item, Fdb):
        kind, body = (
            "fdb",
            _drop_none(
                bridge=item.bridge,
                contains=FlowList(_check(e) for e in item.contains) if item.contains else None,
                lacks=FlowList(_check(e) for e in item.lacks) if item.lacks else None,
            ),
        )
    elif isinstance(item, FdbAdd):
        kind, body = "fdb_add", _fdb_entry(item.entry)
    elif isinstance(item, FdbDel):
        kind, body = "fdb_del", _drop_none(mac=item.mac, at=item.at, vlan=item.vlan)
    elif isinstance(item, FdbFlush):
        kind, body = "fdb_flush", Flow(bridge=item.bridge)
    elif isinstance(item, (SetBridge, SetPort)):
        target = {"bridge": item.bridge} if isinstance(item, SetBridge) else {"port": item.at}
        body = Flow(target)
        body.update(_options(item.options))
        if item.rejected:
            body["rejected"] = True
        kind = "set"
    elif isinstance(item, Carrier):
        kind, body = "carrier", Flow(at=item.at, up=item.up)
    elif isinstance(item, Wait):
        kind, body = "wait", item.seconds
    elif isinstance(item, Converge):
        kind, body = "converge", Flow() if item.timeout is None else Flow(timeout=item.timeout)
    elif isinstance(item, Neigh):
        kind, body = "neigh", Flow(bridge=item.bridge, ip=item.ip, mac=item.mac)
    else:
        kind, body = vlan_step(item)
    out: dict[str, Any] = {kind: _fit(body)}
    if item.note is not None:
        out["note"] = item.note
    return out


def _members(members: tuple[VlanMember, ...]) -> FlowList:
    return FlowList(
        _drop_none(
            vid=m.vids if m.first != m.last else m.first,
            pvid=True if m.pvid else None,
            untagged=True if m.untagged else None,
        )
        if m.pvid or m.untagged
        else (m.vids if m.first != m.last else m.first)
        for m in members
    )


def vlan_step(item: Step) -> tuple[str, Any]:
    """The VLAN steps as ``(kind, body)``."""
    if isinstance(item, VlanAdd):
        body = Flow(at=item.at)
        m = item.member
        body.update(
            _drop_none(
                vid=m.vids if m.first != m.last else m.first,
                pvid=True if m.pvid else None,
                untagged=True if m.untagged else None,
            )
        )
        return "vlan_add", body
    if isinstance(item, VlanDel):
        return "vlan_del", Flow(at=item.at, vid=_vids(item.first, item.last))
    if isinstance(item, VlanSet):
        return "vlan_set", Flow(at=item.at, vid=_vids(item.first, item.last), state=item.state)
    if isinstance(item, VlanGlobal):
        body = Flow(bridge=item.bridge, vid=_vids(item.first, item.last))
        body.update(_options(item.options))
        return "vlan_global", body
    assert isinstance(item, Vlans)
    return "vlans", Flow(at=item.at, are=_members(item.members))


def _vids(first: int, last: int) -> Any:
    return first if first == last else f"{first}-{last}"


def _endpoints(endpoints: tuple[EndpointSpec, ...]) -> Any:
    if all(
        ep.mac is None
        and ep.mtu is None
        and not ep.port
        and not ep.ip
        and ep.vlans is None
        and not ep.macvtap
        for ep in endpoints
    ):
        return FlowList(ep.name for ep in endpoints)
    return {ep.name: _endpoint(ep) for ep in endpoints}


def _endpoint(ep: EndpointSpec) -> Flow:
    ip = (ep.ip[0] if len(ep.ip) == 1 else FlowList(ep.ip)) if ep.ip else None
    vlans = _members(ep.vlans) if ep.vlans is not None else None
    return _drop_none(
        mac=ep.mac,
        mtu=ep.mtu,
        port=_options(ep.port) if ep.port else None,
        ip=ip,
        vlans=vlans,
        macvtap=ep.macvtap,
        mode=ep.mode,
    )


def _bridge(bridge: BridgeSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if bridge.hypervisor is not None:
        out["hypervisor"] = bridge.hypervisor
    if bridge.options:
        out["options"] = _options(bridge.options)
    if bridge.nics:
        out["nics"] = {
            n.name: _drop_none(mac=n.mac, port=_options(n.port) if n.port else None)
            for n in bridge.nics
        }
    if bridge.vms:
        out["vms"] = _endpoints(bridge.vms)
    if bridge.hosts:
        out["hosts"] = _endpoints(bridge.hosts)
    if bridge.uplink is not None:
        rest = _endpoint(bridge.uplink)
        out["uplink"] = Flow(name=bridge.uplink.name, **rest) if rest else bridge.uplink.name
    if bridge.vlans is not None:
        out["vlans"] = _members(bridge.vlans)
    if bridge.fdb:
        out["fdb"] = [_fdb_entry(e) for e in bridge.fdb]
    if bridge.vxlan:
        out["vxlan"] = [
            _drop_none(
                peer=v.peer,
                vni=v.vni,
                dstport=v.dstport if v.dstport != 4789 else None,
                learning=None if v.learning else False,
                underlay=FlowList(v.underlay) if v.underlay else None,
            )
            for v in bridge.vxlan
        ]
    return out


def to_data(scenario: Scenario) -> dict[str, Any]:
    """The scenario as the plain YAML tree :func:`dump_scenario` emits."""
    out: dict[str, Any] = {"name": scenario.name}
    if scenario.description:
        out["description"] = scenario.description
    if scenario.references:
        out["references"] = list(scenario.references)
    for key, ranges in (("xfail", scenario.xfail), ("skip", scenario.skip)):
        if ranges:
            items = [Flow(kernel=r.kernel, reason=r.reason) for r in ranges]
            out[key] = _fit(items[0]) if len(items) == 1 else [_fit(i) for i in items]
    if scenario.requires:
        out["requires"] = FlowList(scenario.requires)
    out["topology"] = {b.name: _bridge(b) for b in scenario.bridges}
    if scenario.cables:
        out["cables"] = {
            c.name: Flow(between=FlowList(c.between), **_options(c.options))
            for c in scenario.cables
        }
    if scenario.frames:
        out["frames"] = {name: _fit(frame(spec)) for name, spec in scenario.frames}
    out["steps"] = [step(s) for s in scenario.steps]
    return out


def dump_scenario(scenario: Scenario) -> str:
    """Scenario YAML that loads back to a scenario equal to ``scenario``.

    Raises ValueError if ``scenario`` holds something the file format cannot express (for
    example a name that is not a valid interface name), naming the loader's complaint.
    """
    from vlab.scenario.errors import ScenarioError
    from vlab.scenario.load import loads_scenario

    text = yaml.dump(
        to_data(scenario), Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True
    )
    try:
        again = loads_scenario(text, "<dumped scenario>")
    except ScenarioError as exc:
        raise ValueError(f"scenario cannot be written as a file: {exc}\n{text}") from None
    if again != scenario:
        raise ValueError(f"scenario does not survive being written as a file:\n{text}")
    return text
