"""The lab a machine runs on, and the pinned names, addresses and defaults it is built with.

Everything here is fixed per topology, so the same draw means the same frame on every lab.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from vlab.errors import LabError
from vlab.reference.bridge import OptionValue

BRIDGE = "br0"
BRIDGE_MAC = "02:00:00:00:00:fe"
DEFAULT_PORT: dict[str, OptionValue] = {
    "learning": True,
    "flood": True,
    "mcast_flood": True,
    "bcast_flood": True,
    "isolated": False,
    "hairpin": False,
    "locked": False,
    "mab": False,
    "proxy_arp": False,
    "group_fwd_mask": 0,
}
BRIDGE_DEFAULTS: dict[str, OptionValue] = {
    "group_fwd_mask": 0,
    "no_linklocal_learn": False,
    "fdb_max_learned": 0,
    "multicast_snooping": True,
}
"""Bridge options the machine changes at run time, with the values a reset restores."""

Options: TypeAlias = dict[str, OptionValue]


@dataclass(frozen=True)
class MachineTopology:
    """The lab a machine runs on: endpoint counts and bridge options (STP is switched on last,
    once every port forwards, as the model assumes)."""

    vms: int = 3
    hosts: int = 1
    uplink: bool = True
    bridge: tuple[tuple[str, OptionValue], ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.vms <= 16 or not 0 <= self.hosts <= 16:
            raise LabError("a forwarding machine takes 0-16 VMs and 0-16 hosts")
        if len(self.names()) < 2:
            raise LabError("a forwarding machine needs at least two endpoints to forward between")

    @property
    def stp(self) -> bool:
        """Whether the generated bridge options turn STP on."""
        return bool(dict(self.bridge).get("stp", False))

    def names(self) -> tuple[str, ...]:
        """The endpoint names of this topology: vm1.., h1.., then uplink."""
        vms = tuple(f"vm{i}" for i in range(1, self.vms + 1))
        hosts = tuple(f"h{i}" for i in range(1, self.hosts + 1))
        return vms + hosts + (("uplink",) if self.uplink else ())

    def kind(self, name: str) -> str:
        """``vm``, ``host`` or ``uplink``: what kind of endpoint the name stands for."""
        return "vm" if name.startswith("vm") else "host" if name.startswith("h") else "uplink"

    def mac(self, name: str) -> str:
        """The pinned MAC of an endpoint: replays on a fresh lab see the same addresses."""
        kind = self.kind(name)
        if kind == "vm":
            return f"52:54:00:00:00:{int(name[2:]):02x}"
        if kind == "host":
            return f"02:00:00:00:01:{int(name[1:]):02x}"
        return "02:00:00:00:02:01"
