"""A second hypervisor: another switch namespace with the same building calls as the lab.

``hv = lab.hypervisor("hv2")`` is a :class:`vlab.build.Builder` over a switch namespace of its
own (:class:`vlab.switch.Switch`), so ``hv.bridge()``, ``hv.vm()``, ``hv.host()``,
``hv.uplink()`` and ``hv.port()`` build there exactly as the lab's own calls build in the lab's
switch namespace. Bridges and endpoints of every hypervisor share the lab's registries (names
are unique across the lab), its readiness, settling, ``lab.expect`` and failure reports, and
die with the lab. Two hypervisors' bridges are joined by ``lab.vxlan`` (:mod:`vlab.vxlan`).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from vlab.build import Builder
from vlab.errors import LabError
from vlab.guard import LabGuard
from vlab.switch import Switch

if TYPE_CHECKING:
    from vlab.bridge import Bridge
    from vlab.lab import Lab

_hypervisors: weakref.WeakKeyDictionary[Lab, dict[str, Hypervisor]] = weakref.WeakKeyDictionary()


class Hypervisor(Builder):
    """Another hypervisor of the lab: ``hv.bridge()``, ``hv.vm()``, ``hv.host()``, ...

    ``name`` is its switch namespace's node name (``lab.run("hv2", "bridge", "link")``); its
    uplinks' far ends live in the node ``NAME-up``.
    """

    def __init__(self, lab: Lab, name: str) -> None:
        """Made by :meth:`vlab.lab.Lab.hypervisor`."""
        self.lab = lab
        self.name = name
        self._guard: LabGuard = lab.switch.guard
        space = lab.switch.fabric.namespace(name)
        self.switch = Switch(lab, lab.switch.fabric, name, space, upstream=f"{name}-up")

    @property
    def bridges(self) -> list[Bridge]:
        """The bridges of this hypervisor."""
        return self.switch.bridges()

    def __repr__(self) -> str:
        return f"<Hypervisor {self.name} of lab {self.lab.name}>"


def add_hypervisor(lab: Lab, name: str) -> Hypervisor:
    """``lab.hypervisor(name)``: a new switch namespace, registered with the lab."""
    registry = _hypervisors.setdefault(lab, {})
    if name in registry:
        raise LabError(f"hypervisor {name!r} exists already; use lab.hypervisors()[{name!r}]")
    lab.switch.fabric.check_name(name, "hypervisor")
    upstream = f"{name}-up"
    if len(upstream) > 15:
        raise LabError(f"hypervisor name {name!r}: at most 12 characters")
    lab.switch.fabric.check_name(upstream, "hypervisor")
    hv = Hypervisor(lab, name)
    lab.add_switch(hv.switch)
    registry[name] = hv
    return hv


def hypervisors(lab: Lab) -> dict[str, Hypervisor]:
    """The lab's hypervisors by name (the lab's own switch namespace is not one of them)."""
    return dict(_hypervisors.get(lab, {}))


def builder_for(lab: Lab, br: Bridge) -> Builder:
    """The building calls over ``br``'s switch namespace: the lab's, or a hypervisor's."""
    if br.switch is lab.switch:
        return lab
    for hv in _hypervisors.get(lab, {}).values():
        if hv.switch is br.switch:
            return hv
    raise LabError(f"bridge {br.name} is in no switch namespace of lab {lab.name}")


__all__ = ["Hypervisor", "add_hypervisor", "builder_for", "hypervisors"]
