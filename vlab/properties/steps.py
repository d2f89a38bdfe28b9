"""Drawing steps: one byte string per step, decoded into a machine method and its arguments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vlab.properties.ops import FrameDraw
from vlab.properties.topology import BRIDGE, DEFAULT_PORT, MachineTopology
from vlab.reference.bridge import LINK_LOCAL, PARSED_ETHERTYPES, OptionValue
from vlab.strategies import TAG_ETHERTYPES

OTHER_MACS = ("02:00:00:00:aa:01", "02:00:00:00:aa:02", "02:00:00:00:aa:03")
"""Unicast MACs no endpoint owns: sources that roam between ports, destinations to learn."""
UNKNOWN_MAC = "02:00:00:00:bb:01"
"""Never a source: a destination that stays unknown unicast (flooded) whatever was learnt."""
MULTICAST_MACS = ("01:00:5e:00:00:01", "33:33:00:00:00:01", "01:80:c2:00:00:10")
BROADCAST = "ff:ff:ff:ff:ff:ff"
MTU_PAYLOAD = 1500


@dataclass(frozen=True)
class Action:
    """One drawn step: a machine method and its arguments; prints as that call would read."""

    method: str
    args: tuple[tuple[str, Any], ...]

    def __repr__(self) -> str:
        return f"{self.method}({', '.join(f'{k}={v!r}' for k, v in self.args)})"


def _port_changes(stp: bool) -> list[dict[str, OptionValue]]:
    """Port-option changes, one flag each; a step merges two (hairpin + isolated...)."""
    changes: list[dict[str, OptionValue]] = [{}]
    for flag in ("hairpin", "isolated", "learning", "flood", "mcast_flood", "bcast_flood",
                 "locked", "proxy_arp"):  # fmt: skip
        changes += [{flag: not DEFAULT_PORT[flag]}, {flag: DEFAULT_PORT[flag]}]
    changes += [{"locked": True, "mab": True}, {"mab": False}]
    changes += [{"group_fwd_mask": m} for m in (0x1, 0x4, 0x8, 0x4000, 0xFFFD, 0)]
    if not stp:
        states = ("disabled", "learning", "listening", "blocking", "forwarding")
        changes += [{"state": s} for s in states]
    return changes


BRIDGE_CHANGES: list[dict[str, OptionValue]] = [
    *({"group_fwd_mask": m} for m in (0x8, 0x4000, 0x4008, 0xFFF8, 0)),  # type: ignore[list-item]
    {"no_linklocal_learn": True},
    {"no_linklocal_learn": False},
    *({"fdb_max_learned": n} for n in (1, 2, 4, 0)),  # type: ignore[list-item]
    {"multicast_snooping": False},
    {"multicast_snooping": True},
]
_UNMODELLED = frozenset({*TAG_ETHERTYPES, *PARSED_ETHERTYPES})
STEP_KINDS = (
    (160, "send"),
    (192, "set_port"),
    (204, "set_bridge"),
    (222, "fdb_add"),
    (234, "fdb_del"),
    (242, "fdb_flush"),
    (256, "carrier"),
)
"""What the first byte of a step chooses (below each bound): 5 steps in 8 send."""


def _weighted(*groups: tuple[int, list[str]]) -> list[str]:
    """A lookup table where each item of a group appears ``weight`` times, simplest first."""
    return [item for weight, items in groups for item in items for _ in range(weight)]


class StepDecoder:
    """Turns one drawn byte string into one step.

    Hypothesis charges tens of microseconds per primitive draw and ~150 us per ``one_of``,
    while the kernel needs ~0.4 ms per checked send: a frame drawn field by field (or with
    :func:`vlab.strategies.frames`, ~2 ms) would cost more than the bridge. So a step is a single
    ``binary`` draw: a 10-byte header choosing the operation and its arguments from tables, and
    the rest as payload. Shrinking bytes towards zero and the string towards short moves every
    choice towards the front of its table (a send, between VMs, untagged, empty payload).
    """

    HEADER = 10

    def __init__(self, topology: MachineTopology) -> None:
        names = list(topology.names())
        own = [f"{n}.mac" for n in names]
        ports = [f"{BRIDGE}.mac", *(f"{n}.port_mac" for n in names)]
        self.names = names
        self.stp = topology.stp
        self.sources = _weighted((4, own), (3, list(OTHER_MACS)), (1, ports))
        self.targets = _weighted(
            (4, own),
            (3, list(OTHER_MACS)),
            (3, [UNKNOWN_MAC]),
            (6, [BROADCAST]),
            (1, list(MULTICAST_MACS)),
            (1, list(LINK_LOCAL)),
            (1, ports),
        )
        self.fdb_macs = own + list(OTHER_MACS)
        self.port_changes = _port_changes(topology.stp)

    def __call__(self, blob: bytes) -> Action:
        kind = next(name for bound, name in STEP_KINDS if blob[0] < bound)
        if kind == "carrier" and self.stp:
            kind = "send"
        a, b, c = blob[1:4]
        if kind == "send":
            return self._send(blob)
        if kind == "set_port":
            changes = self.port_changes
            options = {**changes[b % len(changes)], **changes[c % len(changes)]}
            return Action(kind, (("at", self._pick(self.names, a)), ("options", options)))
        if kind == "set_bridge":
            return Action(kind, (("options", dict(self._pick(BRIDGE_CHANGES, a))),))
        if kind == "fdb_add":
            mac, at = self._pick(self.fdb_macs, a), self._pick(self.names, b)
            flags = (("static", not c & 1), ("sticky", bool(c & 2)))
            return Action(kind, (("mac", mac), ("at", at), *flags))
        if kind == "fdb_del":
            at = None if b < 128 else self._pick(self.names, b)
            return Action(kind, (("mac", self._pick(self.fdb_macs, a)), ("at", at)))
        if kind == "fdb_flush":
            return Action(kind, ())
        return Action(kind, (("at", self._pick(self.names, a)), ("up", bool(b & 1))))

    def _send(self, blob: bytes) -> Action:
        _kind, a, b, c, d, e, f, g, h = blob[:9]
        ethertype = 0x0600 + ((d << 8 | e) % 0xFA00)
        frame = FrameDraw(
            src=self._pick(self.sources, b),
            dst=self._pick(self.targets, c),
            ethertype=0x88B5 if ethertype in _UNMODELLED else ethertype,
            payload=blob[self.HEADER :],
            vlan=(g << 8 | h) if f >= 128 else None,
        )
        return Action("send", (("sender", self._pick(self.names, a)), ("frame", frame)))

    @staticmethod
    def _pick(table: list[Any], byte: int) -> Any:
        return table[byte % len(table)]
