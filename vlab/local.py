"""The bridge device itself as an endpoint: what the bridge delivers up to its own stack (frames
to its MAC, broadcasts, multicast it floods to itself), and frames sent from it as the bridge's
IP stack would send them (forwarded by the bridge like any other).

A raw socket on the bridge device in the switch namespace, like a host's on its eth0; frames
the bridge device sends never count as received there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlab.capture import PacketPort
from vlab.endpoints import Endpoint
from vlab.errors import LabError

if TYPE_CHECKING:
    from vlab.bridge import Bridge


class BridgeLocal(Endpoint):
    """``br.local``: the bridge device as an endpoint (``.send``, ``.expect``, ``.frames``)."""

    kind = "bridge device"

    def _set_carrier(self, up: bool) -> None:
        raise LabError(
            f"{self.name}: the bridge device has no cable; take its ports down instead "
            "(br.port(ep).set_up(False))"
        )

    def describe(self) -> str:
        return f"bridge device {self.bridge.name} (mac {self.mac}) as an endpoint"


def local_endpoint(br: Bridge) -> BridgeLocal:
    """Open (once) the endpoint of ``br``'s own device and register it with the lab."""
    lab = br.lab
    name = f"{br.name}.local"
    existing = lab.endpoints.get(name)
    if isinstance(existing, BridgeLocal):
        return existing
    with lab._switch.ns.entered():
        io = PacketPort(br.name)
    lab._sockets.append(io)
    ep = BridgeLocal(lab, name, br.mac, br.name, br, io)
    lab.endpoints[name] = ep
    lab._topology_changed()
    return ep
