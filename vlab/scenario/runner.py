"""Playing a scenario on a lab: build the topology, then run each step through the public API.

Every failure names the step the way a reviewer finds it in the file, e.g. ``step 3 (expect at
vm2, line 41)``, followed by the lab's own explanation (expected frame, what arrived, pcaps).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vlab.errors import LabError
from vlab.frames import Mask
from vlab.scenario import run_vlans
from vlab.scenario.api import BridgeLike, EndpointLike, FdbEntryLike, LabLike
from vlab.scenario.spec import (
    BridgeSpec,
    Carrier,
    Converge,
    Expect,
    ExpectNone,
    Fdb,
    FdbAdd,
    FdbCheckEntry,
    FdbDel,
    FdbEntrySpec,
    FdbFlush,
    FrameRef,
    Neigh,
    Scenario,
    Send,
    SetBridge,
    SetPort,
    Step,
    VlanAdd,
    VlanDel,
    VlanGlobal,
    Vlans,
    VlanSet,
    Wait,
)
from vlab.scenario.wire import build


def describe(step: Step) -> str:
    """A step in a few words: ``expect at vm2, up``, ``set port vm1``, ``wait 2 s``."""
    if isinstance(step, Send):
        return f"send from {step.source}"
    if isinstance(step, Expect):
        return f"expect at {', '.join(step.at)}" + (" only" if step.only else "")
    if isinstance(step, ExpectNone):
        return f"expect_none at {', '.join(step.at) or 'every endpoint'}"
    if isinstance(step, Fdb):
        return f"fdb of {step.bridge}"
    if isinstance(step, FdbAdd):
        return f"fdb_add {step.entry.mac} at {step.entry.at}"
    if isinstance(step, FdbDel):
        return f"fdb_del {step.mac} at {step.at}"
    if isinstance(step, FdbFlush):
        return f"fdb_flush {step.bridge}"
    if isinstance(step, SetBridge):
        return f"set bridge {step.bridge}"
    if isinstance(step, SetPort):
        return f"set port {step.at}"
    if isinstance(step, Carrier):
        return f"carrier {'up' if step.up else 'down'} at {step.at}"
    if isinstance(step, Wait):
        return f"wait {step.seconds:g} s"
    if isinstance(step, Converge):
        return "converge"
    if isinstance(step, VlanAdd):
        return f"vlan_add {step.member.vids} at {step.at}"
    if isinstance(step, VlanDel | VlanSet):
        return f"{'vlan_del' if isinstance(step, VlanDel) else 'vlan_set'} at {step.at}"
    if isinstance(step, VlanGlobal):
        return f"vlan_global on {step.bridge}"
    if isinstance(step, Vlans):
        return f"vlans of {step.at}"
    return f"neigh {step.ip} on {step.bridge}"


def label(number: int, step: Step) -> str:
    """How a failure names its step: number, what it does, and its line in the file."""
    where = f", line {step.where.line}" if step.where is not None else ""
    return f"step {number} ({describe(step)}{where})"


@dataclass
class World:
    """The live objects a scenario's names stand for."""

    lab: LabLike
    bridges: dict[str, BridgeLike] = field(default_factory=dict)
    endpoints: dict[str, EndpointLike] = field(default_factory=dict)
    bridge_of: dict[str, str] = field(default_factory=dict)
    cables: dict[str, Any] = field(default_factory=dict)
    hypervisors: dict[str, Any] = field(default_factory=dict)  # by name, built on first use

    def mac(self, ref: str) -> str:
        """Resolve ``vm1.mac``, ``vm1.port_mac`` or ``br0.mac`` to the live MAC."""
        owner, _, attribute = ref.partition(".")
        if owner in self.bridges:
            return self.bridges[owner].mac.lower()
        endpoint = self.endpoints[owner]
        if attribute == "mac":
            return endpoint.mac.lower()
        return _port_mac(self, endpoint, ref)


def _port_mac(world: World, endpoint: EndpointLike, ref: str) -> str:
    """The MAC of the bridge-side device: a VM's tap, a host's or uplink's bridge-side veth.

    Every port's own MAC is a local fdb entry on that port, so the fdb answers for any endpoint.
    """
    bridge = world.bridges[world.bridge_of[endpoint.name]]
    for entry in bridge.fdb_entries():
        if entry.local and entry.port == endpoint.port:
            return entry.mac.lower()
    raise LabError(f"{ref}: {endpoint.port} has no local fdb entry to read its MAC from")


def build_topology(scenario: Scenario, lab: LabLike) -> World:
    """Create bridges, endpoints, port options and static entries in file order."""
    from vlab.scenario.build_overlay import build_links

    world = World(lab)
    for spec in scenario.bridges:
        _build_bridge(world, spec)
    for cable in scenario.cables:
        a, b = (world.bridges[n] for n in cable.between)
        world.cables[cable.name] = lab.cable(a, b, name=cable.name, **dict(cable.options))
    build_links(world, scenario.bridges)
    for spec in scenario.bridges:
        for entry in spec.fdb:
            _fdb_add(world, spec.name, entry)
    lab.settle()
    return world


def _build_bridge(world: World, spec: BridgeSpec) -> None:
    from vlab.scenario.build_overlay import build_macvtaps, build_nics, builder

    on = builder(world, spec)  # the lab, or the hypervisor the bridge lives on
    bridge = on.bridge(spec.name, **dict(spec.options))
    world.bridges[spec.name] = bridge
    for ep in spec.endpoints():
        world.bridge_of[ep.name] = spec.name
    nics = build_nics(world, spec, bridge)
    for ep in spec.vms:
        if ep.macvtap is None:
            world.endpoints[ep.name] = on.vm(ep.name, bridge=bridge, mac=ep.mac, mtu=ep.mtu)
    for ep in spec.hosts:
        if ep.ip:  # only then: stand-in labs need not know about addresses
            host = on.host(ep.name, bridge=bridge, mac=ep.mac, mtu=ep.mtu, ip=list(ep.ip))
        else:
            host = on.host(ep.name, bridge=bridge, mac=ep.mac, mtu=ep.mtu)
        world.endpoints[ep.name] = host
    if spec.uplink is not None:
        uplink = on.uplink(bridge, mac=spec.uplink.mac, mtu=spec.uplink.mtu, name=spec.uplink.name)
        world.endpoints[spec.uplink.name] = uplink
    build_macvtaps(world, spec, on, nics)
    for ep in spec.endpoints():
        if ep.port:
            bridge.port(world.endpoints[ep.name]).set(**dict(ep.port))
    if spec.vlans is not None:
        run_vlans.apply_members(bridge, spec.vlans)
    for ep in spec.endpoints():
        if ep.vlans is not None:
            run_vlans.apply_members(bridge.port(world.endpoints[ep.name]), ep.vlans)


def _fdb_add(world: World, bridge: str, entry: FdbEntrySpec) -> None:
    mac = world.mac(entry.mac) if "." in entry.mac else entry.mac
    vlan: dict[str, int] = {} if entry.vlan is None else {"vlan": entry.vlan}
    world.bridges[bridge].fdb_add(
        mac, world.endpoints[entry.at], static=entry.static, sticky=entry.sticky, **vlan
    )


class Player:
    """Runs steps in order, remembering the last frame sent for ``expect`` without a frame."""

    def __init__(self, scenario: Scenario, world: World) -> None:
        self.scenario = scenario
        self.world = world
        self.last_sent: bytes | None = None

    def frame(self, ref: FrameRef | None) -> bytes:
        """The bytes of a frame reference, or of the frame sent last."""
        if ref is None:
            if self.last_sent is None:
                raise AssertionError("no frame given and nothing has been sent yet")
            return self.last_sent
        return build(self.scenario.frame(ref), self.world.mac)

    def play(self, step: Step) -> None:
        """Run one step; failures raise AssertionError (or LabError for a lab problem)."""
        handler = getattr(self, f"_{type(step).__name__.lower()}")
        handler(step)

    def _send(self, step: Send) -> None:
        data = self.frame(step.frame)
        self.world.endpoints[step.source].send(data)
        self.last_sent = data

    def _expect(self, step: Expect) -> None:
        target = self._target(self.frame(step.frame), step.ignore)
        for name in step.at:
            self.world.endpoints[name].expect(target)
        if step.only:
            for name, endpoint in self.world.endpoints.items():
                if name not in step.at:
                    endpoint.expect_none(target)

    def _expectnone(self, step: ExpectNone) -> None:
        target = None if step.frame is None else self.frame(step.frame)
        for name in step.at or tuple(self.world.endpoints):
            self.world.endpoints[name].expect_none(target)

    def _target(self, data: bytes, ignore: tuple[str, ...]) -> bytes | Mask:
        return Mask(data).ignore(*ignore) if ignore else data

    def _fdb(self, step: Fdb) -> None:
        rows = self.world.bridges[step.bridge].fdb_entries()
        if {e.vlan for e in (*step.contains, *step.lacks)} != {None}:
            self._fdb_vlans(step, rows)  # entries per VLAN: each against its VLAN's rows
            return
        entries = {e.mac.lower(): e for e in rows}
        problems = [p for e in step.contains if (p := self._missing(e, entries, step.bridge))]
        problems += [p for e in step.lacks if (p := self._present(e, entries, step.bridge))]
        if problems:
            listing = "\n".join(
                f"  {mac} -> {e.port} ({'/'.join(sorted(kinds_of(e)))})"
                for mac, e in sorted(entries.items())
            )
            raise AssertionError(
                "; ".join(problems) + f"\nfdb of {step.bridge}:\n" + (listing or "  (empty)")
            )

    def _fdb_vlans(self, step: Fdb, rows: Any) -> None:
        problems = []
        for want, present in [(e, True) for e in step.contains] + [(e, False) for e in step.lacks]:
            table = {
                e.mac.lower(): e
                for e in rows
                if want.vlan is None or getattr(e, "vlan", None) == want.vlan
            }
            problem = (
                self._missing(want, table, step.bridge)
                if present
                else self._present(want, table, step.bridge)
            )
            if problem:
                problems.append(problem + (f" in VLAN {want.vlan}" if want.vlan else ""))
        if problems:
            listing = "\n".join(
                f"  {e.mac} -> {e.port} vlan {getattr(e, 'vlan', None)} "
                f"({'/'.join(sorted(kinds_of(e)))})"
                for e in rows
            )
            raise AssertionError("; ".join(problems) + f"\nfdb of {step.bridge}:\n" + listing)

    def _port_name(self, owner: str, bridge: str) -> str:
        if owner in self.world.cables:  # the cable's end on the bridge whose fdb is read
            ends = self.world.cables[owner].ports
            return str(next((p.name for p in ends if p.bridge.name == bridge), ends[0].name))
        if owner in self.world.bridges:
            return self.world.bridges[owner].name
        return self.world.endpoints[owner].port

    def _missing(
        self, want: FdbCheckEntry, entries: dict[str, FdbEntryLike], bridge: str
    ) -> str | None:
        mac = self._entry_mac(want)
        entry = entries.get(mac)
        if entry is None:
            return f"{_show(want.mac, mac)} is not in the fdb"
        if want.at is not None and entry.port != self._port_name(want.at, bridge):
            return f"{_show(want.mac, mac)} is behind {entry.port}, not {want.at}"
        if want.kind != "any" and want.kind not in kinds_of(entry):
            shown = "/".join(sorted(kinds_of(entry)))
            return f"{_show(want.mac, mac)} is {shown}, not {want.kind}"
        return None

    def _present(
        self, want: FdbCheckEntry, entries: dict[str, FdbEntryLike], bridge: str
    ) -> str | None:
        mac = self._entry_mac(want)
        entry = entries.get(mac)
        if entry is None or (
            want.at is not None and entry.port != self._port_name(want.at, bridge)
        ):
            return None
        if want.kind != "any" and want.kind not in kinds_of(entry):
            return None
        return f"{_show(want.mac, mac)} is in the fdb (behind {entry.port})"

    def _entry_mac(self, entry: FdbCheckEntry) -> str:
        return self.world.mac(entry.mac) if "." in entry.mac else entry.mac

    def _fdbadd(self, step: FdbAdd) -> None:
        _fdb_add(self.world, self.world.bridge_of[step.entry.at], step.entry)

    def _fdbdel(self, step: FdbDel) -> None:
        mac = self.world.mac(step.mac) if "." in step.mac else step.mac
        bridge = self.world.bridges[self.world.bridge_of[step.at]]
        vlan: dict[str, int] = {} if step.vlan is None else {"vlan": step.vlan}
        bridge.fdb_del(mac, self.world.endpoints[step.at], **vlan)

    def _fdbflush(self, step: FdbFlush) -> None:
        self.world.bridges[step.bridge].fdb_flush()

    def _setbridge(self, step: SetBridge) -> None:
        bridge = self.world.bridges[step.bridge]
        _apply(lambda: bridge.set(**dict(step.options)), step.rejected, step.options)

    def _setport(self, step: SetPort) -> None:
        endpoint = self.world.endpoints[step.at]
        port = self.world.bridges[self.world.bridge_of[step.at]].port(endpoint)
        _apply(lambda: port.set(**dict(step.options)), step.rejected, step.options)

    def _carrier(self, step: Carrier) -> None:
        # returns once the bridge has acted on it (the lab syncs the kernel's link events)
        target = self.world.cables.get(step.at) or self.world.endpoints[step.at]
        target.set_carrier(step.up)

    def _converge(self, step: Converge) -> None:
        self.world.lab.converge(step.timeout)

    def _wait(self, step: Wait) -> None:
        # The kernel's timers (ageing, STP, IGMP) run on real time: lab time is wall time here,
        # which is why scenarios use short ageing and query intervals.
        time.sleep(step.seconds)

    def _vlan_target(self, at: str) -> Any:
        """A port's VLAN calls, or the bridge's own for a bridge name."""
        if at in self.world.bridges:
            return self.world.bridges[at]
        bridge = self.world.bridges[self.world.bridge_of[at]]
        return bridge.port(self.world.endpoints[at])

    def _vlanadd(self, step: VlanAdd) -> None:
        run_vlans.vlan_add(self._vlan_target(step.at), step)

    def _vlandel(self, step: VlanDel) -> None:
        run_vlans.vlan_del(self._vlan_target(step.at), step)

    def _vlanset(self, step: VlanSet) -> None:
        run_vlans.vlan_set(self._vlan_target(step.at), step)

    def _vlanglobal(self, step: VlanGlobal) -> None:
        run_vlans.vlan_global(self.world.bridges[step.bridge], step)

    def _vlans(self, step: Vlans) -> None:
        run_vlans.check(self._vlan_target(step.at), step)

    def _neigh(self, step: Neigh) -> None:
        mac = self.world.mac(step.mac) if "." in step.mac else step.mac
        self.world.bridges[step.bridge].neigh_add(step.ip, mac)


def kinds_of(entry: FdbEntryLike) -> set[str]:
    """The scenario kinds an fdb row satisfies (a sticky entry is also static)."""
    if entry.local:
        return {"local"}
    if entry.locked:
        return {"locked"}
    kinds = {"static"} if entry.static else {"learnt"}
    return kinds | ({"sticky"} if entry.sticky else set())


def _show(ref: str, mac: str) -> str:
    return mac if ref == mac else f"{ref} ({mac})"


def _apply(
    change: Callable[[], None], rejected: bool, options: tuple[tuple[str, Any], ...]
) -> None:
    if not rejected:
        change()
        return
    try:
        change()
    except LabError:
        return
    shown = ", ".join(f"{k}={v!r}" for k, v in options)
    raise AssertionError(f"the change {shown} was accepted, but the scenario expects a refusal")


def run_scenario(scenario: Scenario, lab: LabLike) -> None:
    """Build ``scenario``'s topology on ``lab`` and run its steps, naming the first that fails."""
    world = build_topology(scenario, lab)
    player = Player(scenario, world)
    for number, step in enumerate(scenario.steps, 1):
        try:
            player.play(step)
        except AssertionError as exc:
            note = f": {step.note}" if step.note else ""
            raise AssertionError(f"{label(number, step)} failed{note}\n{exc}") from None
        except LabError as exc:
            exc.add_note(f"in {label(number, step)} of {scenario.name!r}")
            raise
