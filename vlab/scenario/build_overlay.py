"""Building what :mod:`vlab.scenario.read_overlay` reads: NICs, macvtap VMs, hypervisors and
VXLAN links, through the public API (``lab.port``, ``lab.vm(macvtap=)``, ``lab.hypervisor``,
``lab.vxlan``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vlab.errors import LabError

if TYPE_CHECKING:
    from vlab.scenario.api import BridgeLike
    from vlab.scenario.runner import World
    from vlab.scenario.spec import BridgeSpec


def builder(world: World, spec: BridgeSpec) -> Any:
    """What builds ``spec``'s bridge and endpoints: the lab, or one of its hypervisors."""
    if spec.hypervisor is None:
        return world.lab
    hypervisors = world.hypervisors
    if spec.hypervisor not in hypervisors:
        make = getattr(world.lab, "hypervisor", None)
        if make is None:
            raise LabError(f"bridge {spec.name}: this lab cannot build hypervisors")
        hypervisors[spec.hypervisor] = make(spec.hypervisor)
    return hypervisors[spec.hypervisor]


def build_nics(world: World, spec: BridgeSpec, bridge: BridgeLike) -> dict[str, Any]:
    """The bridge's bare ports (``nics:``) with their port options, by name."""
    nics: dict[str, Any] = {}
    for nic in spec.nics:
        port = world.lab.port(bridge, mac=nic.mac)  # type: ignore[attr-defined]
        if nic.port:
            port.set(**dict(nic.port))
        nics[nic.name] = port
    return nics


def build_macvtaps(world: World, spec: BridgeSpec, on: Any, nics: dict[str, Any]) -> None:
    """The bridge's macvtap VMs, on the nic, host or uplink each names."""
    for ep in spec.vms:
        if ep.macvtap is None:
            continue
        lower = nics.get(ep.macvtap) or world.endpoints[ep.macvtap]
        world.endpoints[ep.name] = on.vm(
            ep.name, macvtap=lower, mode=ep.mode or "bridge", mac=ep.mac, mtu=ep.mtu
        )


def build_links(world: World, bridges: tuple[BridgeSpec, ...]) -> None:
    """Every ``vxlan:`` link, once all bridges exist; underlay watches become endpoints."""
    for spec in bridges:
        for link in spec.vxlan:
            vx = world.lab.vxlan(  # type: ignore[attr-defined]
                world.bridges[spec.name],
                world.bridges[link.peer],
                vni=link.vni,
                dstport=link.dstport,
                learning=link.learning,
            )
            if not link.underlay:
                continue
            watches = vx.watch_underlay(*link.underlay)
            for name, watch, side in zip(
                link.underlay, watches, (spec.name, link.peer), strict=True
            ):
                world.endpoints[name] = watch
                world.bridge_of[name] = side


__all__ = ["build_links", "build_macvtaps", "build_nics", "builder"]
