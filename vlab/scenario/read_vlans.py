"""Reading the VLAN parts of a scenario: memberships, VLAN IDs, the VLAN steps.

In a topology, ``vlans:`` under an endpoint (its port) or a bridge (the bridge device itself)
lists exactly the VLANs it is a member of — the default PVID membership goes unless listed::

    vms:
      vm1: {vlans: [{vid: 10, pvid: true, untagged: true}]}     # an access port of VLAN 10
    uplink: {name: up, vlans: ["10-20", 30]}                     # a trunk, tagged

The steps ``vlan_add``, ``vlan_del``, ``vlan_set`` (per-VLAN STP state), ``vlan_global``
(per-VLAN multicast options) and ``vlans`` (a read-back check) take ``at:`` an endpoint or the
bridge's own name. VLAN options need a VLAN-aware bridge (``vlan_filtering: true``): that is
checked at the line that uses them.
"""

from __future__ import annotations

import re

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from vlab.scenario import fields
from vlab.scenario.names import Names
from vlab.scenario.source import where
from vlab.scenario.spec import (
    BridgeSpec,
    Options,
    VlanAdd,
    VlanDel,
    VlanGlobal,
    VlanMember,
    Vlans,
    VlanSet,
)
from vlab.scenario.vocabulary import BRIDGE_OPTIONS, Kind

VID_LO, VID_HI = 1, 4094
MEMBER_KEYS = ("vid", "pvid", "untagged")
STATES = ("disabled", "listening", "learning", "forwarding", "blocking")
GLOBAL_OPTIONS = (
    "multicast_snooping",
    "multicast_querier",
    "multicast_igmp_version",
    "multicast_mld_version",
    "multicast_last_member_count",
    "multicast_startup_query_count",
    "multicast_last_member_interval",
    "multicast_membership_interval",
    "multicast_querier_interval",
    "multicast_query_interval",
    "multicast_query_response_interval",
    "multicast_startup_query_interval",
)
"""Per-VLAN multicast options (``vlan_global``), the bridge options' names and units."""
_RANGE = re.compile(r"^(\d+)-(\d+)$")


def vid(node: Node, what: str) -> int:
    """One VLAN ID, 1-4094."""
    return fields.integer(node, what, VID_LO, VID_HI)


def vid_range(node: Node, what: str) -> tuple[int, int]:
    """``10`` or ``"10-20"`` as an inclusive range."""
    if isinstance(node, ScalarNode) and (node.style is not None or "-" in str(node.value)):
        m = _RANGE.match(str(node.value).replace(" ", ""))
        if m is None:
            fields.fail(
                node, f"{what} '{node.value}' is not a VLAN or range", "write 10 or '10-20'"
            )
        first, last = int(m.group(1)), int(m.group(2))
        for number in (first, last):
            if not VID_LO <= number <= VID_HI:
                fields.fail(node, f"{what} {number} is out of range", "VLAN IDs are 1 to 4094")
        if last < first:
            fields.fail(node, f"{what} '{node.value}' runs backwards", f"write '{last}-{first}'")
        return first, last
    one = vid(node, what)
    return one, one


def member(node: Node, what: str) -> VlanMember:
    """``10``, ``"10-20"`` or ``{vid: 10, pvid: true, untagged: true}``."""
    if not isinstance(node, MappingNode):
        first, last = vid_range(node, f"{what} vid")
        return VlanMember(first, last)
    return _member(node, fields.keys(node, what, MEMBER_KEYS, required=("vid",)), what)


def _member(node: Node, found: dict[str, Node], what: str) -> VlanMember:
    first, last = vid_range(found["vid"], f"{what} vid")
    pvid = fields.boolean(found["pvid"], "pvid") if "pvid" in found else False
    untagged = fields.boolean(found["untagged"], "untagged") if "untagged" in found else False
    if pvid and first != last:
        fields.fail(
            node,
            f"{what}: pvid on the range {first}-{last}",
            "a port has one PVID: give it to one VLAN",
        )
    return VlanMember(first, last, pvid, untagged)


def members(node: Node, what: str) -> tuple[VlanMember, ...]:
    """A list of memberships; at most one PVID."""
    if isinstance(node, ScalarNode) and node.tag == fields.NULL_TAG:
        return ()
    items = fields.sequence(node, what) if isinstance(node, SequenceNode) else [node]
    out = tuple(member(item, f"{what} entry") for item in items)
    if sum(m.pvid for m in out) > 1:
        fields.fail(node, f"{what} has more than one PVID", "a port has one PVID: keep one")
    return out


def check_vlan_aware(bridge: BridgeSpec, node: Node, what: str) -> None:
    """VLAN settings on a bridge without ``vlan_filtering: true`` are mistakes."""
    if not dict(bridge.options).get("vlan_filtering"):
        fields.fail(
            node,
            f"{what} on bridge {bridge.name}, which is not VLAN-aware",
            f"add `options: {{vlan_filtering: true}}` to {bridge.name}",
        )


def check_bridge_options(bridge: BridgeSpec, node: Node) -> None:
    """``default_pvid``, ``vlan_protocol``, ``multicast_vlan_snooping`` need VLAN filtering."""
    given = [k for k, _v in bridge.options if k in VLAN_BRIDGE_OPTIONS]
    if given:
        check_vlan_aware(bridge, node, ", ".join(given))


VLAN_BRIDGE_OPTIONS = ("default_pvid", "vlan_protocol", "multicast_vlan_snooping")


# --- steps ------------------------------------------------------------------------------------


def _at(found: dict[str, Node], names: Names, what: str) -> str:
    return names.port_owner(found["at"], f"{what} at")


def vlan_add(node: Node, names: Names, note: str | None) -> VlanAdd:
    """``vlan_add: {at: vm1, vid: 10, pvid: true, untagged: true}``."""
    found = fields.keys(node, "vlan_add", ("at", *MEMBER_KEYS), required=("at", "vid"))
    at = _at(found, names, "vlan_add")
    return VlanAdd(at, _member(node, found, "vlan_add"), note, where(node))


def vlan_del(node: Node, names: Names, note: str | None) -> VlanDel:
    """``vlan_del: {at: vm1, vid: 10}``."""
    found = fields.keys(node, "vlan_del", ("at", "vid"), required=("at", "vid"))
    first, last = vid_range(found["vid"], "vlan_del vid")
    return VlanDel(_at(found, names, "vlan_del"), first, last, note, where(node))


def vlan_set(node: Node, names: Names, note: str | None) -> VlanSet:
    """``vlan_set: {at: up, vid: 10, state: blocking}``."""
    found = fields.keys(node, "vlan_set", ("at", "vid", "state"), required=("at", "vid", "state"))
    first, last = vid_range(found["vid"], "vlan_set vid")
    state = fields.choice(found["state"], "vlan_set state", STATES)
    return VlanSet(_at(found, names, "vlan_set"), first, last, state, note, where(node))


def vlan_global(node: Node, names: Names, note: str | None) -> VlanGlobal:
    """``vlan_global: {bridge: br0, vid: 10, multicast_querier: true, ...}``."""
    from vlab.scenario.read_topology import options

    mapping = fields.mapping(node, "vlan_global")
    found = {k.value: v for k, v in mapping.value if k.value in ("bridge", "vid")}
    if "vid" not in found:
        fields.fail(node, "vlan_global has no vid", "add vid: 10 (or a range '10-20')")
    first, last = vid_range(found["vid"], "vlan_global vid")
    table: dict[str, Kind] = {k: BRIDGE_OPTIONS[k] for k in GLOBAL_OPTIONS}
    opts: Options = options(node, "per-VLAN option", table, skip=("bridge", "vid"))
    if not any(k.value not in ("bridge", "vid") for k, _ in mapping.value):
        fields.fail(node, "vlan_global changes no option", "add e.g. multicast_querier: true")
    if "bridge" in found:
        bridge = names.bridge(found["bridge"], "vlan_global bridge")
    else:
        bridge = names.only_bridge(node, "vlan_global")
    return VlanGlobal(bridge, first, last, opts, note, where(node))


def vlans(node: Node, names: Names, note: str | None) -> Vlans:
    """``vlans: {at: vm1, are: [{vid: 10, pvid: true, untagged: true}]}``."""
    found = fields.keys(node, "vlans", ("at", "are"), required=("at", "are"))
    return Vlans(_at(found, names, "vlans"), members(found["are"], "vlans are"), note, where(node))
