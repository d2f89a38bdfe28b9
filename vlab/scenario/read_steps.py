"""Reading ``steps:``: each item is a one-key mapping naming what to do, plus an optional note."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import cast

from yaml.nodes import Node, ScalarNode

from vlab.scenario import fields, problems, read_vlans
from vlab.scenario.names import Names
from vlab.scenario.read_frames import frame
from vlab.scenario.read_topology import fdb_entry, options
from vlab.scenario.source import where
from vlab.scenario.spec import (
    Carrier,
    Converge,
    Expect,
    ExpectNone,
    Fdb,
    FdbAdd,
    FdbCheckEntry,
    FdbDel,
    FdbFlush,
    FdbKind,
    FrameRef,
    Neigh,
    Send,
    SetBridge,
    SetPort,
    Step,
    Wait,
)
from vlab.scenario.vocabulary import BRIDGE_OPTIONS, PORT_OPTIONS, check_bridge, check_port

MAX_STEPS = 1000
MAX_WAIT = 120
"""Lab waits should be short (use short ageing/timer values); two minutes is already a smell."""
FDB_KINDS = ("any", "learnt", "static", "sticky", "local", "locked")
STEP_KINDS = (
    "send",
    "expect",
    "expect_none",
    "fdb",
    "fdb_add",
    "fdb_del",
    "fdb_flush",
    "set",
    "carrier",
    "wait",
    "neigh",
    "converge",
    "vlan_add",
    "vlan_del",
    "vlan_set",
    "vlan_global",
    "vlans",
)


def frame_ref(node: Node, what: str, names: Names) -> FrameRef:
    """A frame by name (declared under ``frames:``) or inline."""
    if isinstance(node, ScalarNode):
        return names.frame(node, what)
    return frame(node, what, names)


def _bridge(found: dict[str, Node], node: Node, what: str, names: Names) -> str:
    if "bridge" in found:
        return names.bridge(found["bridge"], f"{what} bridge")
    return names.only_bridge(node, what)


def _send(node: Node, names: Names, note: str | None) -> Send:
    found = fields.keys(node, "send", ("from", "frame"), required=("from", "frame"))
    source = names.endpoint(found["from"], "send from")
    return Send(source, frame_ref(found["frame"], "frame", names), note, where(node))


def _wait(node: Node, names: Names, note: str | None) -> Wait:
    return Wait(fields.seconds(node, "wait", 0, MAX_WAIT), note, where(node))


def _expect(node: Node, names: Names, note: str | None) -> Expect:
    found = fields.keys(node, "expect", ("at", "frame", "only", "ignore"), required=("at",))
    ignore = found.get("ignore")
    return Expect(
        at=names.endpoint_list(found["at"], "expect at"),
        frame=frame_ref(found["frame"], "frame", names) if "frame" in found else None,
        only=fields.boolean(found["only"], "only") if "only" in found else False,
        ignore=tuple(t for _, t in fields.names(ignore, "ignore")) if ignore is not None else (),
        note=note,
        where=where(node),
    )


def _expect_none(node: Node, names: Names, note: str | None) -> ExpectNone:
    if isinstance(node, ScalarNode) and node.tag == fields.NULL_TAG:
        return ExpectNone(note=note, where=where(node))
    found = fields.keys(node, "expect_none", ("at", "frame"))
    return ExpectNone(
        at=names.endpoint_list(found["at"], "expect_none at") if "at" in found else (),
        frame=frame_ref(found["frame"], "frame", names) if "frame" in found else None,
        note=note,
        where=where(node),
    )


def _fdb_check_entry(node: Node, names: Names) -> FdbCheckEntry:
    if isinstance(node, ScalarNode):
        return FdbCheckEntry(names.mac(node, "fdb mac"))
    found = fields.keys(node, "fdb entry", ("mac", "at", "kind", "vlan"), required=("mac",))
    kind = fields.choice(found["kind"], "fdb entry kind", FDB_KINDS) if "kind" in found else "any"
    return FdbCheckEntry(
        mac=names.mac(found["mac"], "fdb mac"),
        at=names.port_owner(found["at"], "fdb entry at") if "at" in found else None,
        kind=cast(FdbKind, kind),
        vlan=read_vlans.vid(found["vlan"], "fdb entry vlan") if "vlan" in found else None,
    )


def _fdb(node: Node, names: Names, note: str | None) -> Fdb:
    found = fields.keys(node, "fdb", ("bridge", "contains", "lacks"))
    if "contains" not in found and "lacks" not in found:
        fields.fail(node, "fdb checks nothing", "add 'contains:' and/or 'lacks:' lists of entries")

    def entries(key: str) -> tuple[FdbCheckEntry, ...]:
        if key not in found:
            return ()
        return tuple(_fdb_check_entry(n, names) for n in fields.sequence(found[key], key))

    return Fdb(
        bridge=_bridge(found, node, "fdb", names),
        contains=entries("contains"),
        lacks=entries("lacks"),
        note=note,
        where=where(node),
    )


def _set(node: Node, names: Names, note: str | None) -> SetBridge | SetPort:
    mapping = fields.mapping(node, "set")
    targets = {k.value: v for k, v in mapping.value if k.value in ("bridge", "port", "rejected")}
    rejected = fields.boolean(targets["rejected"], "rejected") if "rejected" in targets else False
    reserved = ("bridge", "port", "rejected")
    if ("bridge" in targets) == ("port" in targets):
        fields.fail(
            node,
            "set needs exactly one of 'bridge' or 'port'",
            "write `set: {bridge: br0, stp: true}` or `set: {port: vm1, learning: false}`",
        )
    if "bridge" in targets:
        check = None if rejected else check_bridge
        opts = options(node, "bridge option", BRIDGE_OPTIONS, skip=reserved, check=check)
        bridge = names.bridge(targets["bridge"], "set bridge")
        result: SetBridge | SetPort = SetBridge(bridge, opts, rejected, note, where(node))
    else:
        check = None if rejected else check_port
        opts = options(node, "port option", PORT_OPTIONS, skip=reserved, check=check)
        at = names.endpoint(targets["port"], "set port")
        result = SetPort(at, opts, rejected, note, where(node))
    if not any(k.value not in reserved for k, _ in mapping.value):  # not: every one was bad
        fields.fail(node, "set changes no option", "add at least one option to change")
    return result


def _carrier(node: Node, names: Names, note: str | None) -> Carrier:
    found = fields.keys(node, "carrier", ("at", "up"), required=("at", "up"))
    return Carrier(
        names.endpoint_or_cable(found["at"], "carrier at"),
        fields.boolean(found["up"], "up"),
        note,
        where(node),
    )


def _converge(node: Node, names: Names, note: str | None) -> Converge:
    """``converge: {}`` or ``converge: {timeout: 20}``: wait for STP to settle."""
    if isinstance(node, ScalarNode) and node.tag == fields.NULL_TAG:
        return Converge(None, note, where(node))
    found = fields.keys(node, "converge", ("timeout",))
    timeout = (
        fields.seconds(found["timeout"], "timeout", 0, MAX_WAIT) if "timeout" in found else None
    )
    return Converge(timeout, note, where(node))


def _neigh(node: Node, names: Names, note: str | None) -> Neigh:
    found = fields.keys(node, "neigh", ("bridge", "ip", "mac"), required=("ip", "mac"))
    return Neigh(
        bridge=_bridge(found, node, "neigh", names),
        ip=fields.ip(found["ip"], "neigh ip"),
        mac=names.mac(found["mac"], "neigh mac"),
        note=note,
        where=where(node),
    )


def _fdb_del(node: Node, names: Names, note: str | None) -> FdbDel:
    found = fields.keys(node, "fdb_del", ("mac", "at", "vlan"), required=("mac", "at"))
    mac = names.mac(found["mac"], "fdb_del mac")
    vlan = read_vlans.vid(found["vlan"], "fdb_del vlan") if "vlan" in found else None
    return FdbDel(mac, names.endpoint(found["at"], "fdb_del at"), note, where(node), vlan)


def _fdb_flush(node: Node, names: Names, note: str | None) -> FdbFlush:
    if isinstance(node, ScalarNode) and node.tag == fields.NULL_TAG:
        return FdbFlush(names.only_bridge(node, "fdb_flush"), note, where(node))
    found = fields.keys(node, "fdb_flush", ("bridge",))
    return FdbFlush(_bridge(found, node, "fdb_flush", names), note, where(node))


def _fdb_add(node: Node, names: Names, note: str | None) -> FdbAdd:
    return FdbAdd(fdb_entry(node, names, "fdb_add"), note, where(node))


def step(node: Node, names: Names) -> Step:
    """One step; the mapping holds the step kind and optionally ``note`` (shown on failure)."""
    mapping = fields.mapping(node, "a step")
    kinds = [k for k, _ in mapping.value if k.value != "note"]
    for key in kinds:
        if key.value not in STEP_KINDS:
            fields.fail(
                key,
                f"unknown step '{key.value}'",
                fields.suggest(key.value, (*STEP_KINDS, "note")),
            )
    if len(kinds) != 1:
        fields.fail(
            node,
            "a step must do exactly one thing",
            "split it into one list item per step (`- send: ...`, `- expect: ...`)",
        )
    found = dict((k.value, v) for k, v in mapping.value)
    note = fields.text(found["note"], "note") if "note" in found else None
    kind = kinds[0].value
    body = found[kind]
    readers: dict[str, Callable[[Node, Names, str | None], Step]] = {
        "send": _send,
        "wait": _wait,
        "expect": _expect,
        "expect_none": _expect_none,
        "fdb": _fdb,
        "fdb_add": _fdb_add,
        "fdb_del": _fdb_del,
        "fdb_flush": _fdb_flush,
        "set": _set,
        "carrier": _carrier,
        "neigh": _neigh,
        "converge": _converge,
        "vlan_add": read_vlans.vlan_add,
        "vlan_del": read_vlans.vlan_del,
        "vlan_set": read_vlans.vlan_set,
        "vlan_global": read_vlans.vlan_global,
        "vlans": read_vlans.vlans,
    }
    return readers[kind](body, names, note)


def steps(node: Node, names: Names) -> tuple[Step, ...]:
    """All steps in order."""
    items = fields.sequence(node, "steps")
    if not items:
        fields.fail(node, "steps is empty", "add at least one step, e.g. `- send: {...}`")
    if len(items) > MAX_STEPS:
        fields.fail(
            node,
            f"there are {len(items)} steps",
            f"at most {MAX_STEPS} are allowed; split the scenario",
        )
    # each step on its own: a bad one is recorded and dropped, the rest still read
    read = [(item, problems.attempt(partial(step, item, names), None)) for item in items]
    pairs = [(item, parsed) for item, parsed in read if parsed is not None]
    _check_last_sent(pairs)
    return tuple(parsed for _, parsed in pairs)


def _check_last_sent(pairs: list[tuple[Node, Step]]) -> None:
    """``expect`` without a frame means "the frame sent last": something must have been sent."""
    sent = False
    for item, parsed in pairs:
        sent = sent or isinstance(parsed, Send)
        if isinstance(parsed, Expect) and parsed.frame is None and not sent:
            fields.fail(
                item,
                "expect has no 'frame' and nothing was sent before it",
                "add frame: <name or inline frame>, or put a send step first",
            )
