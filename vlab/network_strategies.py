"""Hypothesis strategies for networks of bridges: loop-free topologies of 2-3 bridges and cables.

:func:`network_topologies` draws a tree of bridges (each new bridge cabled to one drawn before
it, so no loop ever needs STP), a few VMs on each bridge, and port options for each cable that
:class:`vlab.reference.network.NetworkModel` predicts (learning and the three flood flags). It
shrinks towards two bridges, one VM each, one plain cable.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from vlab.reference.bridge import OptionValue

CABLE_FLAGS = ("learning", "flood", "bcast_flood", "mcast_flood")
"""Port options a drawn cable may turn off (both ends alike); all on by default."""


@dataclass(frozen=True)
class NetworkTopology:
    """Bridges ``br0..brN``, VMs ``vm<bridge><k>`` on each, and cables between bridges."""

    vms: tuple[int, ...]  # VMs per bridge
    cables: tuple[tuple[int, int, tuple[tuple[str, OptionValue], ...]], ...]  # (a, b, options)

    @property
    def bridges(self) -> tuple[str, ...]:
        """The bridge names, ``br0`` first."""
        return tuple(f"br{i}" for i in range(len(self.vms)))

    def vm_names(self, bridge: int) -> tuple[str, ...]:
        """The VMs of bridge number ``bridge``."""
        return tuple(f"vm{bridge}{k}" for k in range(self.vms[bridge]))

    def mac(self, vm: str) -> str:
        """A pinned MAC per VM, so a replay sees the same addresses."""
        return f"52:54:00:00:{int(vm[2]):02x}:{int(vm[3:]):02x}"

    def endpoints(self) -> tuple[str, ...]:
        """Every VM of the network, bridge by bridge."""
        return tuple(vm for i in range(len(self.vms)) for vm in self.vm_names(i))


@st.composite
def network_topologies(
    draw: st.DrawFn, min_bridges: int = 2, max_bridges: int = 3, max_vms: int = 2
) -> NetworkTopology:
    """A loop-free network: a tree of ``min_bridges``-``max_bridges`` bridges, 1-``max_vms``
    VMs on each, and per cable the flags of :data:`CABLE_FLAGS` it turns off."""
    n = draw(st.integers(min_bridges, max_bridges))
    vms = tuple(draw(st.integers(1, max_vms)) for _ in range(n))
    cables = []
    for child in range(1, n):
        parent = draw(st.integers(0, child - 1))
        off = draw(st.lists(st.sampled_from(CABLE_FLAGS), unique=True, max_size=2))
        cables.append((parent, child, tuple((flag, False) for flag in sorted(off))))
    return NetworkTopology(vms, tuple(cables))
