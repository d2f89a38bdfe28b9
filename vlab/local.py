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
from vlab.rxfilter import ReceiveFilter

if TYPE_CHECKING:
    from vlab.bridge import Bridge
    from vlab.switch import Namespace


class BridgeLocal(ReceiveFilter, Endpoint):
    """``br.local``: the bridge device as an endpoint (``.send``, ``.expect``, ``.frames``), with
    its receive filter (``join``, ``set_promisc``, ``add_mac``...: see :mod:`vlab.rxfilter`)."""

    kind = "bridge device"
    bridge: Bridge  # the bridge it is the device of

    @property
    def location(self) -> str:
        """The bridge device itself, for messages."""
        return f"the bridge device {self.bridge.name}"

    def rx_target(self) -> tuple[Namespace, int, str]:
        """The bridge device, in the switch namespace."""
        return self.switch.space, self.bridge.index, self.bridge.name

    def rx_enable_ipv6(self) -> None:
        """IPv6 on for the bridge device alone (see ``Bridge.enable_ipv6``)."""
        self.bridge.enable_ipv6()

    def add_address(self, address: str) -> None:
        """``ip addr add ADDRESS/LEN dev BR``: the same as ``br.add_address``."""
        self.bridge.add_address(address)

    def addresses(self) -> list[str]:
        """The bridge device's addresses, as ``br.addresses()``."""
        return self.bridge.addresses()

    def apply_carrier(self, up: bool) -> None:
        """The bridge device has no cable: a LabError saying what to do instead."""
        raise LabError(
            f"{self.name}: the bridge device has no cable; take its ports down instead "
            "(br.port(ep).set_up(False))"
        )

    def describe(self) -> str:
        """One line: the bridge device as an endpoint."""
        return f"bridge device {self.bridge.name} (mac {self.mac}) as an endpoint"


def local_endpoint(br: Bridge) -> BridgeLocal:
    """Open (once) the endpoint of ``br``'s own device and register it with the lab."""
    switch = br.switch
    name = f"{br.name}.local"
    existing = switch.fabric.endpoints.get(name)
    if isinstance(existing, BridgeLocal):
        return existing
    with switch.ns.entered():
        io = PacketPort(br.name)
    switch.own_socket(io)
    ep = BridgeLocal(switch, name, br.mac, br.name, br, io)
    switch.register_endpoint(ep)
    return ep
