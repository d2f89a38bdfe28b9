"""Reading ``topology:`` (bridges, what is cabled to them, static fdb entries) and option maps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from vlab.errors import LabError
from vlab.ip import interfaces as ip_interfaces
from vlab.scenario import fields, problems, read_overlay, read_vlans
from vlab.scenario.errors import Position, ScenarioError
from vlab.scenario.names import Names
from vlab.scenario.source import where
from vlab.scenario.spec import BridgeSpec, EndpointSpec, FdbEntrySpec, Options, OptionValue
from vlab.scenario.vocabulary import BRIDGE_OPTIONS, PORT_OPTIONS, Kind, check_bridge, check_port

MAX_BRIDGES = 8
MAX_ENDPOINTS = 64
BRIDGE_KEYS = (
    "options",
    "vms",
    "hosts",
    "uplink",
    "fdb",
    "vlans",
    "nics",
    "hypervisor",
    "vxlan",
)
ENDPOINT_KEYS = ("mac", "port", "mtu", "ip", "vlans", "macvtap", "mode")
FDB_KEYS = ("mac", "at", "sticky", "static", "vlan")


def option_value(node: Node, name: str, kind: Kind) -> OptionValue:
    """One option's value, read according to its kind."""
    if kind.type == "bool":
        return fields.boolean(node, name)
    if kind.type == "seconds":
        return fields.seconds(node, name, kind.lo, kind.hi)
    if kind.type == "int":
        return fields.integer(node, name, int(kind.lo), int(kind.hi))
    if kind.type == "mac":
        return fields.mac(node, name)
    return fields.choice(node, name, kind.choices)


def options(
    node: Node,
    what: str,
    table: dict[str, Kind],
    skip: tuple[str, ...] = (),
    check: Callable[[dict[str, OptionValue]], str | None] | None = None,
) -> Options:
    """``name: value`` pairs checked against ``table``; keys in ``skip`` belong to the caller.

    ``check`` is the lab's own validation of the whole set (kernel rules such as refused mask
    bits), so a value the lab would refuse is reported here, at its line.
    """
    result: list[tuple[str, OptionValue]] = []
    if isinstance(node, ScalarNode) and node.tag == fields.NULL_TAG:
        return ()
    for key, value in fields.mapping(node, what).value:
        if key.value in skip:
            continue
        kind = table.get(key.value)
        if kind is None:
            problems.fail_later(
                where(key), f"unknown {what} '{key.value}'", fields.suggest(key.value, list(table))
            )
            continue
        read = problems.attempt(partial(option_value, value, key.value, kind), None)
        if read is not None:  # a bad value was recorded; the other options are still read
            result.append((key.value, read))
    problem = check(dict(result)) if check is not None and result else None
    if problem is not None:
        fields.fail(node, problem, "change the value, or mark a set step `rejected: true`")
    return tuple(result)


def _addresses(node: Node, name: str, what: str) -> tuple[str, ...]:
    """A host's ``ip:``: one address with its prefix length, or a list of them."""
    if what != "host":
        fields.fail(node, f"{what} {name}: only hosts have IP addresses", "move ip: to a host")
    items = fields.sequence(node, "ip") if isinstance(node, SequenceNode) else [node]
    out = tuple(fields.text(item, f"{name} ip") for item in items)
    try:
        ip_interfaces(list(out), f"host {name} ip")
    except LabError as exc:
        fields.fail(
            node, str(exc), "write e.g. ip: 192.0.2.1/24 or ip: [192.0.2.1/24, 2001:db8::1/64]"
        )
    return out


def _endpoint_from(name_node: Node, found: dict[str, Node], what: str) -> EndpointSpec:
    name = fields.name(name_node, f"{what} name")
    # each field on its own: a bad one is recorded and the endpoint still declared
    return EndpointSpec(
        ip=_addresses(found["ip"], name, what) if "ip" in found else (),
        name=name,
        mac=problems.attempt(lambda: fields.endpoint_mac(found["mac"], f"{name} mac"), None)
        if "mac" in found
        else None,
        mtu=problems.attempt(lambda: fields.endpoint_mtu(found["mtu"], f"{name} mtu", what), None)
        if "mtu" in found
        else None,
        port=problems.attempt(
            lambda: options(found["port"], "port option", PORT_OPTIONS, check=check_port), ()
        )
        if "port" in found
        else (),
        where=where(name_node),
        vlans=problems.attempt(lambda: read_vlans.members(found["vlans"], f"{name} vlans"), None)
        if "vlans" in found
        else None,
        **read_overlay.macvtap_fields(found, name, what),
    )


def _endpoint(name_node: Node, node: Node | None, what: str) -> EndpointSpec:
    if node is None or (isinstance(node, ScalarNode) and node.tag == fields.NULL_TAG):
        return _endpoint_from(name_node, {}, what)
    label = f"{what} '{fields.text(name_node, f'{what} name')}'"
    return _endpoint_from(name_node, fields.keys(node, label, ENDPOINT_KEYS), what)


def _endpoints(node: Node, what: str) -> tuple[EndpointSpec, ...]:
    """``[vm1, vm2]`` or ``{vm1: {mac: ...}, vm2: {}}``."""
    if isinstance(node, SequenceNode):
        return tuple(_endpoint(item, None, what) for item in node.value)
    if isinstance(node, MappingNode):
        return tuple(_endpoint(key, value, what) for key, value in node.value)
    fields.fail(node, f"{what}s must be a list of names or a mapping", f"write [{what}1, {what}2]")


def _uplink(node: Node) -> EndpointSpec:
    """``uplink: up`` or ``uplink: {name: up, mac: ..., port: {...}}``."""
    if isinstance(node, ScalarNode):
        return _endpoint(node, None, "uplink")
    found = fields.keys(node, "uplink", ("name", *ENDPOINT_KEYS), required=("name",))
    return _endpoint_from(found["name"], found, "uplink")


def fdb_entry(node: Node, names: Names, what: str) -> FdbEntrySpec:
    """A user fdb entry (topology ``fdb:`` or the ``fdb_add`` step); the MAC may be a reference."""
    found = fields.keys(node, what, FDB_KEYS, required=("mac", "at"))
    return FdbEntrySpec(
        mac=names.mac(found["mac"], f"{what} mac"),
        at=names.endpoint(found["at"], f"{what} at"),
        sticky=fields.boolean(found["sticky"], "sticky") if "sticky" in found else False,
        static=fields.boolean(found["static"], "static") if "static" in found else True,
        where=where(node),
        vlan=read_vlans.vid(found["vlan"], f"{what} vlan") if "vlan" in found else None,
    )


def _bridge_fdb(node: Node, names: Names, bridge: BridgeSpec) -> tuple[FdbEntrySpec, ...]:
    entries = []
    cabled = [ep.name for ep in bridge.endpoints()]
    for item in fields.sequence(node, "fdb"):
        entry = problems.attempt(partial(fdb_entry, item, names, "fdb entry"), None)
        if entry is None:
            continue
        if entry.at not in cabled:
            fields.fail(
                item,
                f"'{entry.at}' is not cabled to {bridge.name}",
                "name one of its endpoints: " + ", ".join(cabled),
            )
        entries.append(entry)
    return tuple(entries)


def topology(node: Node, names: Names) -> tuple[BridgeSpec, ...]:
    """Every bridge in order; fills ``names`` with bridge and endpoint names as they appear."""
    bridges: list[BridgeSpec] = []
    fdb_nodes: list[Node | None] = []
    nics: list[str] = []
    pairs = fields.mapping(node, "topology").value
    if not pairs:
        fields.fail(node, "topology has no bridge", "add one, e.g. `br0: {vms: [vm1, vm2]}`")
    if len(pairs) > MAX_BRIDGES:
        fields.fail(
            node, f"topology has {len(pairs)} bridges", f"at most {MAX_BRIDGES} are allowed"
        )
    for key, value in pairs:
        bridge_name = fields.bridge_name(key, "bridge name")
        _declare(names, where(key), bridge_name)
        names.bridges.append(bridge_name)
        found = fields.keys(value, f"bridge '{bridge_name}'", BRIDGE_KEYS)
        bridge = BridgeSpec(
            name=bridge_name,
            options=problems.attempt(
                partial(
                    options, found["options"], "bridge option", BRIDGE_OPTIONS, check=check_bridge
                ),
                (),
            )
            if "options" in found
            else (),
            vms=_endpoints(found["vms"], "vm") if "vms" in found else (),
            hosts=_endpoints(found["hosts"], "host") if "hosts" in found else (),
            uplink=_uplink(found["uplink"]) if "uplink" in found else None,
            where=where(key),
            vlans=read_vlans.members(found["vlans"], f"{bridge_name} vlans")
            if "vlans" in found
            else None,
        )
        _check_vlans(bridge, found, value)
        bridge = read_overlay.extend(bridge, found, names, nics)
        for ep in bridge.endpoints():
            assert ep.where is not None
            _declare(names, ep.where, ep.name)
            names.endpoints.append(ep.name)
        if len(names.endpoints) > MAX_ENDPOINTS:
            fields.fail(value, "too many endpoints", f"at most {MAX_ENDPOINTS} are allowed")
        fdb_nodes.append(found.get("fdb"))
        bridges.append(bridge)
    read_overlay.check(tuple(bridges))
    # Entries may refer to endpoints of any bridge (``mac: vm3.mac``), so read them last.
    return tuple(
        replace(bridge, fdb=_bridge_fdb(fdb, names, bridge)) if fdb is not None else bridge
        for bridge, fdb in zip(bridges, fdb_nodes, strict=True)
    )


def _check_vlans(bridge: BridgeSpec, found: dict[str, Node], node: Node) -> None:
    """VLAN settings on a bridge that is not VLAN-aware are refused at their line."""
    read_vlans.check_bridge_options(bridge, found.get("options", node))
    if bridge.vlans is not None:
        read_vlans.check_vlan_aware(bridge, found["vlans"], "vlans")
    for ep in bridge.endpoints():
        if ep.vlans is not None:
            assert ep.where is not None
            read_vlans.check_vlan_aware(bridge, _vlans_node(found, ep.name) or node, "vlans")


def _vlans_node(found: dict[str, Node], name: str) -> Node | None:
    """The ``vlans:`` node of endpoint ``name`` (for the error's line)."""
    for key in ("vms", "hosts", "uplink"):
        group = found.get(key)
        if not isinstance(group, MappingNode):
            continue
        pairs: list[tuple[Node, Node]] = group.value
        for k, v in pairs:
            if k.value == "vlans" and key == "uplink":
                return v
            if k.value == name and isinstance(v, MappingNode):
                inner: list[tuple[Node, Node]] = v.value
                for kk, vv in inner:
                    if kk.value == "vlans":
                        return vv
    return None


def _declare(names: Names, at: Position, name: str) -> None:
    """Bridges and endpoints share one namespace, since ``x.mac`` may refer to either."""
    if name in names.bridges or name in names.endpoints:
        raise ScenarioError(
            at, f"name '{name}' is used twice", "give every bridge and endpoint its own name"
        )
