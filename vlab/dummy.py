"""``lab.uplink(br, kind="dummy")``: a dummy link in the switch namespace as the bridge's pNIC.

Where a host's uplink is a real NIC, a test may want the bridge port to be a plain device of the
switch namespace rather than a veth to somewhere: a dummy link is that device. It is honest about
what it is:

- it **receives** every frame the bridge sends to it and can be watched: ``expect``,
  ``expect_none`` and ``frames()`` read a packet socket on the dummy that sees what the bridge
  transmits there (a dummy discards what it is given, after the socket saw it);
- it **injects nothing**: a dummy never receives, so ``send()`` raises :class:`vlab.LabError`
  saying so (use the default veth uplink, ``lab.uplink(br)``, to send from the network side).

Kernels without the dummy link type (``CONFIG_DUMMY``, such as the 6.18 vlab is developed on)
make it :class:`vlab.Unsupported`, which the pytest plugin reports as a skip; run such tests with
``--vlab-kernel`` on a kernel that has it.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from vlab.capture import PacketPort, packet_socket
from vlab.endpoints import Uplink
from vlab.errors import LabError, Unsupported
from vlab.frames import FrameLike
from vlab.options import encode_mtu, normalize_mac
from vlab.rtnl import IFLA_INFO_KIND, IFLA_LINKINFO, NLA_F_NESTED, ifinfo, link_attrs, nla

if TYPE_CHECKING:
    from vlab.bridge import Bridge
    from vlab.switch import Switch


class DummyPort(PacketPort):
    """What the bridge transmits on the dummy (its outgoing frames are all there is to see)."""

    def __init__(self, ifname: str) -> None:
        self.sock = packet_socket(ifname, outgoing=True)
        self.ifname = ifname

    def send(self, frame: bytes) -> None:
        raise LabError(
            f"{self.ifname} is a dummy link: it receives what the bridge sends to it, but "
            "injects nothing; use a veth uplink, lab.uplink(br), to send from the network side"
        )


class DummyUplink(Uplink):
    """The bridge's uplink as a dummy link: watch what the bridge sends; cannot send."""

    link_kind = "dummy"
    carrier_from_birth = True  # a dummy's operstate stays UNKNOWN

    def not_ready(self) -> list[str]:
        """Nothing beyond the port: the dummy is the port, checked by the switch."""
        return []

    def send(self, frame: FrameLike) -> None:
        """Always :class:`vlab.LabError`: nothing can come in through a dummy link."""
        raise LabError(
            f"uplink {self.name} is a dummy link ({self.port} on {self.bridge.name}): it "
            "receives what the bridge sends to it, but injects nothing; use "
            "lab.uplink(br) (a veth) to send frames from the network side"
        )

    def describe(self) -> str:
        """One line: the dummy port, receive-only, in the switch namespace."""
        return (
            f"uplink {self.name}: {self.bridge.name} port {self.port} == dummy ({self.mac}), "
            "receive-only, in the switch namespace"
        )


def add_dummy_uplink(
    switch: Switch, br: Bridge, name: str, mac: str | None, mtu: int | None
) -> DummyUplink:
    """Create the dummy as a port of ``br`` in one netlink request and return its endpoint."""
    from vlab.switch import random_mac

    mtu = encode_mtu(mtu, f"uplink {name}")
    mac = normalize_mac(mac, f"uplink {name} mac") if mac is not None else random_mac("02")
    port = switch.next_name("dummy")
    index = switch.index()
    info = nla(IFLA_INFO_KIND, b"dummy\0")
    body = ifinfo(index) + link_attrs(port, mac, mtu, br.index)
    try:
        switch.links.new(body + nla(IFLA_LINKINFO | NLA_F_NESTED, info), True)
    except OSError as exc:
        if exc.errno == errno.EOPNOTSUPP:
            raise Unsupported(
                "this kernel has no dummy link type (CONFIG_DUMMY): uplink kind='dummy' needs "
                "one that has it (pytest --vlab-kernel=PATH), or use kind='veth'"
            ) from None
        raise LabError(f"uplink {name}: cannot add dummy {port} to {br.name}: {exc}") from None
    switch.on_undo(lambda: switch.links.delete(index))  # a later step failed: leave nothing
    with switch.ns.entered():
        io = DummyPort(port)
    switch.own_socket(io)
    ep = DummyUplink(switch, name, mac, port, br, io, switch.space, port, index)
    switch.register(ep, br, index, mac)
    return ep
