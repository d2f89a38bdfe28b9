"""A reference model of bridges joined by cables: which endpoints receive a frame, network-wide.

:class:`NetworkModel` composes one :class:`vlab.reference.bridge.BridgeModel` per bridge. A
cable is a pair of ports, one on each of two bridges; a frame a bridge sends out of a cable port
enters the far bridge on the far port, unchanged, and is decided there by that bridge's model
(which learns its source behind the cable port, as the kernel does). Endpoints are the ports that
are not cable ends; their names are unique across the network.

Topologies are loop-free, or made loop-free by the ports STP blocks (``blocked``: a blocked port
neither learns nor forwards, and drops what it would send — what the kernel's blocking state
does with data frames). A loop the model is still given shows as a frame crossing the same
cable end twice: :class:`ModelLoop`, never an endless walk. BPDUs themselves are not modelled.

The rules are methods, so a deliberately wrong network is a small subclass::

    class ForgetsLearningAcrossCables(NetworkModel):
        def learns(self, bridge: str, port: str) -> bool:
            return port not in self.cable_ports(bridge)
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import SupportsBytes

from vlab.errors import LabError
from vlab.reference.bridge import BridgeModel, Receivers


class ModelLoop(LabError):
    """The model was given a loop that nothing blocks: a frame came back to a cable end."""


@dataclass(frozen=True)
class CableModel:
    """A cable of the model: its name and its two ends as ``(bridge, port)``."""

    name: str
    a: tuple[str, str]
    b: tuple[str, str]


class NetworkModel:
    """The endpoints that receive a frame, across bridges joined by cables; see the module."""

    def __init__(
        self,
        bridges: Mapping[str, BridgeModel],
        cables: Iterable[CableModel],
        blocked: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.bridges = dict(bridges)
        self.cables = list(cables)
        self.blocked = set(blocked)
        self._peer: dict[tuple[str, str], tuple[str, str]] = {}
        self._unplugged: set[str] = set()
        for cable in self.cables:
            for end in (cable.a, cable.b):
                bridge, port = end
                if bridge not in self.bridges or port not in self.bridges[bridge].ports:
                    raise LabError(f"cable {cable.name}: {bridge} has no port {port!r}")
                if end in self._peer:
                    raise LabError(f"cable {cable.name}: port {port} of {bridge} is cabled twice")
            self._peer[cable.a] = cable.b
            self._peer[cable.b] = cable.a
        owners: dict[str, str] = {}
        for name, model in self.bridges.items():
            for port in model.ports:
                if (name, port) in self._peer:
                    continue
                if port in owners:
                    raise LabError(f"endpoint {port} is on {owners[port]} and on {name}")
                owners[port] = name
        self._owner = owners

    # --- the network --------------------------------------------------------------------

    def bridge_of(self, endpoint: str) -> str:
        """The bridge an endpoint is cabled to."""
        try:
            return self._owner[endpoint]
        except KeyError:
            raise LabError(
                f"no endpoint {endpoint!r}; endpoints: {', '.join(self._owner)}"
            ) from None

    @property
    def endpoints(self) -> tuple[str, ...]:
        """Every endpoint of the network, bridge by bridge."""
        return tuple(self._owner)

    def cable_ports(self, bridge: str) -> set[str]:
        """The ports of ``bridge`` that are cable ends."""
        return {port for (b, port) in self._peer if b == bridge}

    def set_carrier(self, cable: str, up: bool) -> None:
        """Unplug or plug a cable: both ends lose or regain carrier (fact 26 on each bridge)."""
        found = next((c for c in self.cables if c.name == cable), None)
        if found is None:
            raise LabError(f"no cable {cable!r}")
        for bridge, port in (found.a, found.b):
            self.bridges[bridge].set_carrier(port, up)
        (self._unplugged.discard if up else self._unplugged.add)(cable)

    # --- rules a wrong model overrides --------------------------------------------------

    def learns(self, bridge: str, port: str) -> bool:
        """Whether a frame entering ``bridge`` on ``port`` teaches it the frame's source; the
        kernel learns on every port, cable ends included (subject to the port's options)."""
        return True

    def passes(self, bridge: str, port: str) -> bool:
        """Whether a port takes part in forwarding: not when STP blocks it."""
        return (bridge, port) not in self.blocked

    def far_end(self, bridge: str, port: str) -> tuple[str, str] | None:
        """Where a frame sent out of ``port`` enters next: the cable's far end, or None (an
        endpoint receives it)."""
        return self._peer.get((bridge, port))

    # --- the frame path -----------------------------------------------------------------

    def deliveries(self, sender: str, frame: bytes | SupportsBytes) -> collections.Counter[str]:
        """How many copies of ``frame``, sent by endpoint ``sender``, each endpoint receives;
        updates every bridge's fdb on the way. Raises :class:`ModelLoop` on an unblocked loop."""
        data = bytes(frame)
        got: collections.Counter[str] = collections.Counter()
        todo = collections.deque([(self.bridge_of(sender), sender)])
        entered: set[tuple[str, str]] = set()
        while todo:
            bridge, port = todo.popleft()
            if (bridge, port) in entered:
                raise ModelLoop(
                    f"the frame entered {bridge} on {port} twice: a loop no port blocks"
                )
            entered.add((bridge, port))
            if not self.passes(bridge, port):
                continue
            for out in sorted(self._decide(bridge, port, data)):
                if not self.passes(bridge, out):
                    continue
                far = self.far_end(bridge, out)
                if far is None:
                    got[out] += 1
                else:
                    todo.append(far)
        return got

    def deliver(self, sender: str, frame: bytes | SupportsBytes) -> Receivers:
        """The endpoints that receive ``frame`` sent by ``sender`` (each exactly once in a
        loop-free network; see :meth:`deliveries`)."""
        return set(self.deliveries(sender, frame))

    def _decide(self, bridge: str, port: str, data: bytes) -> Receivers:
        model = self.bridges[bridge]
        if self.learns(bridge, port):
            return model.deliver(port, data)
        learning = model.port_option(port, "learning")
        model.set_port(port, learning=False)
        try:
            return model.deliver(port, data)
        finally:
            model.set_port(port, learning=True if learning is None else learning)

    def fdb(self, bridge: str) -> dict[str, str]:
        """``{mac: port}`` of ``bridge`` in the model."""
        return self.bridges[bridge].fdb()

    def advance(self, seconds: float) -> None:
        """Move every bridge's clock (ageing)."""
        for model in self.bridges.values():
            model.advance(seconds)

    def __repr__(self) -> str:
        cables = ", ".join(f"{c.name}:{c.a[0]}-{c.b[0]}" for c in self.cables)
        return f"<NetworkModel bridges={list(self.bridges)} cables=[{cables}]>"
