"""Reading the parts of ``topology:`` beyond one bridge: NICs, macvtap VMs, hypervisors, VXLAN.

A bridge may say which hypervisor it lives on (``hypervisor: hv2``; without it, the lab's own
switch namespace), list bare ports as ``nics:`` (the hypervisor NICs macvtap VMs stack on), give
a VM ``macvtap: NIC`` and ``mode:``, and join a bridge on another hypervisor with ``vxlan:``.
What refers across bridges (a VXLAN peer) is checked once every bridge has been read.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from vlab.scenario import fields, problems
from vlab.scenario.names import Names
from vlab.scenario.source import where
from vlab.scenario.spec import BridgeSpec, EndpointSpec, NicSpec, VxlanSpec
from vlab.stacked import MACVLAN_MODES

MODES = tuple(MACVLAN_MODES)
NIC_KEYS = ("mac", "port")
VXLAN_KEYS = ("peer", "vni", "dstport", "learning", "underlay")
MAX_VNI = (1 << 24) - 1


def macvtap_fields(found: dict[str, Node], name: str, what: str) -> dict[str, str | None]:
    """A VM's ``macvtap:`` (its lower device, checked against the bridge later) and ``mode:``."""
    if what != "vm" and ("macvtap" in found or "mode" in found):
        key = "macvtap" if "macvtap" in found else "mode"
        fields.fail(found[key], f"{what} {name}: only VMs have a macvtap", f"remove {key}:")
    if "mode" in found and "macvtap" not in found:
        fields.fail(found["mode"], f"vm {name}: mode is a macvtap's", "add macvtap: <nic>")
    lower = fields.name(found["macvtap"], f"{name} macvtap") if "macvtap" in found else None
    mode = fields.choice(found["mode"], f"{name} mode", MODES) if "mode" in found else None
    if lower is not None and "port" in found:
        fields.fail(
            found["port"],
            f"vm {name} is a macvtap VM: it has no bridge port to set options on",
            f"set them on its NIC ({lower})",
        )
    return {"macvtap": lower, "mode": mode}


def _nic(name_node: Node, node: Node | None, taken: list[str]) -> NicSpec:
    from vlab.scenario.read_topology import options
    from vlab.scenario.vocabulary import PORT_OPTIONS, check_port

    name = fields.name(name_node, "nic name")
    if name in taken:
        fields.fail(name_node, f"name '{name}' is used twice", "give every nic its own name")
    taken.append(name)
    found: dict[str, Node] = {}
    if node is not None and not (isinstance(node, ScalarNode) and node.tag == fields.NULL_TAG):
        found = fields.keys(node, f"nic '{name}'", NIC_KEYS)
    return NicSpec(
        name=name,
        mac=fields.endpoint_mac(found["mac"], f"{name} mac") if "mac" in found else None,
        port=options(found["port"], "port option", PORT_OPTIONS, check=check_port)
        if "port" in found
        else (),
        where=where(name_node),
    )


def nics(node: Node, taken: list[str]) -> tuple[NicSpec, ...]:
    """``nics: [nic0]`` or ``nics: {nic0: {port: {hairpin: true}}}``."""
    if isinstance(node, SequenceNode):
        return tuple(_nic(item, None, taken) for item in node.value)
    if isinstance(node, MappingNode):
        return tuple(_nic(key, value, taken) for key, value in node.value)
    fields.fail(node, "nics must be a list of names or a mapping", "write [nic0, nic1]")


def _vxlan(node: Node, names: Names) -> VxlanSpec:
    found = fields.keys(node, "vxlan link", VXLAN_KEYS, required=("peer", "vni"))
    underlay: tuple[str, ...] = ()
    if "underlay" in found:
        items = fields.sequence(found["underlay"], "underlay")
        if len(items) != 2:
            fields.fail(
                found["underlay"],
                f"underlay names {len(items)} endpoints",
                "name two: the watch at this bridge's hypervisor, then at the peer's",
            )
        underlay = tuple(fields.name(item, "underlay endpoint") for item in items)
        for item, value in zip(items, underlay, strict=True):
            if value in names.endpoints or value in names.bridges:
                fields.fail(item, f"name '{value}' is used twice", "give it its own name")
            names.endpoints.append(value)
    return VxlanSpec(
        peer=fields.bridge_name(found["peer"], "vxlan peer"),
        vni=fields.integer(found["vni"], "vni", 1, MAX_VNI),
        dstport=fields.integer(found["dstport"], "dstport", 1, 65535)
        if "dstport" in found
        else 4789,
        learning=fields.boolean(found["learning"], "learning") if "learning" in found else True,
        underlay=underlay,
        where=where(node),
    )


def extend(
    bridge: BridgeSpec, found: dict[str, Node], names: Names, taken: list[str]
) -> BridgeSpec:
    """``bridge`` with its ``hypervisor:``, ``nics:`` and ``vxlan:`` read from ``found``."""
    hypervisor = None
    if "hypervisor" in found:
        hypervisor = fields.name(found["hypervisor"], "hypervisor")
        if hypervisor in ("switch", "upstream"):
            fields.fail(found["hypervisor"], f"hypervisor '{hypervisor}'", "pick another name")
    links: list[VxlanSpec] = []
    if "vxlan" in found:
        items = found["vxlan"]
        for item in items.value if isinstance(items, SequenceNode) else [items]:
            link = problems.attempt(partial(_vxlan, item, names), None)
            if link is not None:
                links.append(link)
    return replace(
        bridge,
        hypervisor=hypervisor,
        nics=problems.attempt(lambda: nics(found["nics"], taken), ()) if "nics" in found else (),
        vxlan=tuple(links),
    )


def check(bridges: tuple[BridgeSpec, ...]) -> None:
    """What refers across a bridge: macvtap lower devices, passthru exclusivity, VXLAN peers."""
    by_name = {b.name: b for b in bridges}
    for bridge in bridges:
        _check_macvtaps(bridge)
        for link in bridge.vxlan:
            assert link.where is not None
            peer = by_name.get(link.peer)
            if peer is None:
                problems.fail_later(
                    link.where,
                    f"vxlan peer '{link.peer}' is not a bridge",
                    fields.suggest(link.peer, list(by_name)),
                )
            elif peer.hypervisor == bridge.hypervisor:
                problems.fail_later(
                    link.where,
                    f"vxlan peer {link.peer} is on the same hypervisor as {bridge.name}",
                    "give one of them another `hypervisor:` (VXLAN joins two hypervisors)",
                )


def _check_macvtaps(bridge: BridgeSpec) -> None:
    lowers = {n.name for n in bridge.nics} | {ep.name for ep in bridge.hosts}
    if bridge.uplink is not None:
        lowers.add(bridge.uplink.name)
    users: dict[str, list[EndpointSpec]] = {}
    for vm in bridge.vms:
        if vm.macvtap is None:
            continue
        assert vm.where is not None
        if vm.macvtap not in lowers:
            problems.fail_later(
                vm.where,
                f"vm {vm.name}: macvtap '{vm.macvtap}' is not a nic, host or uplink of "
                f"{bridge.name}",
                fields.suggest(vm.macvtap, sorted(lowers)),
            )
            continue
        users.setdefault(vm.macvtap, []).append(vm)
    for lower, vms in users.items():
        if len(vms) > 1 and any(vm.mode == "passthru" for vm in vms):
            later = vms[1]
            assert later.where is not None
            problems.fail_later(
                later.where,
                f"vm {later.name}: a passthru macvtap owns {lower} alone, and "
                f"{vms[0].name} is on it too",
                "give each passthru VM a nic of its own",
            )


__all__ = ["MODES", "check", "extend", "macvtap_fields", "nics"]
