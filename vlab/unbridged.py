"""Endpoints in no bridge: the kernel selftests' "standalone" interfaces.

``lab.host(name, bridge=None)`` cables a host by a veth whose switch-side end stays a plain
interface of the switch namespace, up and in no bridge. That end is an endpoint of its own,
``host.peer`` (kind ``interface``, named ``NAME.peer``): frames the host sends arrive there and
nowhere else, frames sent from it arrive at the host, and nothing forwards between it and any
other interface. Two such hosts are the selftests' two standalone switch ports; ``host.peer``
has addresses, group joins, promiscuous/all-multicast modes and secondary MACs (see
:mod:`vlab.rxfilter`) for ``local_termination.sh``'s standalone case.

Both ends share one cable: unplugging either (``set_carrier(False)``) takes the carrier from
both, and readiness waits for the switch-side end as it does for a bridge port.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlab import ip as iplib
from vlab import limits
from vlab.capture import PacketPort
from vlab.endpoints import Endpoint, Host
from vlab.errors import LabError
from vlab.guard import guarded
from vlab.rxfilter import ReceiveFilter
from vlab.switch import link_ready, random_mac

if TYPE_CHECKING:
    from vlab.frames import FrameLike
    from vlab.switch import Namespace, Switch


def _refuse_unplugged(ep: Endpoint) -> None:
    """A frame sent into an unplugged cable is dropped by the kernel, counted, and would make
    every later check of the lab fail as a loss: refuse it where the test can see why."""
    if not ep.carrier:
        raise LabError(
            f"{ep.kind} {ep.name}: its cable is unplugged (set_carrier(False)); nothing sent "
            "on it can arrive: plug it back with set_carrier(True) first"
        )


class Interface(ReceiveFilter, Endpoint):
    """The switch-side end of a host's veth, in no bridge: ``host.peer``."""

    kind = "interface"
    bridge: None

    def __init__(
        self, switch: Switch, name: str, mac: str, port: str, io: PacketPort, index: int, host: Host
    ) -> None:
        """Built by ``lab.host(name, bridge=None)`` with the host's veth."""
        super().__init__(switch, name, mac, port, None, io)
        self.ifname = port
        self.ifindex = index
        self.host = host
        self.switch_index = index

    def rx_target(self) -> tuple[Namespace, int, str]:
        """The interface, in the switch namespace."""
        return self.switch.space, self.ifindex, self.ifname

    def rx_enable_ipv6(self) -> None:
        """IPv6 on for this interface alone (no DAD or router solicitations)."""
        iplib.enable_ipv6(self.switch.ns, self.ifname)
        if self.carrier:
            iplib.wait_usable(self.switch.rtnl, self.ifindex, self.name)

    def apply_carrier(self, up: bool) -> None:
        """Its own end goes down or up: the host's end loses its carrier too (one cable)."""
        self.switch.links.set_link(self.ifindex, up=up)
        self.host.carrier = up

    def not_ready(self) -> list[str]:
        """The interface must be up with a qdisc, as a bridge port must."""
        return (
            [] if link_ready(self.switch.links, self.ifindex, False) else [f"{self.port} is not up"]
        )

    def loss_link(self) -> int:
        """None: its own link's drops are frames toward the host, counted as the host's loss."""
        return 0

    @guarded
    def send(self, frame: FrameLike) -> None:
        """Put one frame on the cable to the host (refused while the cable is unplugged)."""
        _refuse_unplugged(self)
        super().send(frame)

    @guarded
    def add_address(self, address: str) -> None:
        """``ip addr add ADDRESS/LEN dev PEER`` (an IPv6 one turns IPv6 on for it alone)."""
        ifaces = iplib.interfaces(address, f"{self.name} add_address")
        if any(iface.version == 6 for iface in ifaces):
            self.rx_enable_ipv6()
        for iface in ifaces:
            iplib.add(self.switch.rtnl, self.ifindex, iface, self.name)

    @guarded
    def addresses(self) -> list[str]:
        """The interface's addresses as the kernel reports them."""
        return iplib.read_addresses(self.switch.rtnl, self.ifindex)

    def describe(self) -> str:
        """One line: the interface, its MAC and the host at the other end of its veth."""
        return (
            f"interface {self.name}: {self.ifname} {self.mac} in the switch namespace, in no "
            f"bridge == veth ==> host {self.host.name}'s {self.host.ifname}"
        )


class LoneHost(Host):
    """A host in no bridge: its veth ends in :class:`Interface` ``host.peer``."""

    bridge: None
    lone_peer: Interface

    def apply_carrier(self, up: bool) -> None:
        """Its eth0 goes down or up: the peer loses its carrier too (one cable)."""
        super().apply_carrier(up)
        self.lone_peer.carrier = up

    @guarded
    def send(self, frame: FrameLike) -> None:
        """Put one frame on the cable to ``host.peer`` (refused while it is unplugged)."""
        _refuse_unplugged(self)
        super().send(frame)


def peer_name(name: str) -> str:
    """The endpoint name of host ``name``'s standalone peer."""
    return f"{name}.peer"


def cable_lone_host(
    switch: Switch, name: str, port: str, space: Namespace, mac: str, mtu: int | None
) -> LoneHost:
    """A host in ``space`` whose veth's other end ``port`` stays in the switch namespace."""
    far_index = space.index()
    port_mac = random_mac("fe")
    try:
        # the kernel picks the switch-side ifindex: a reused switch namespace may still hold
        # its dormant bridge at the index vlab would give next (see vlab.nspool)
        switch.links.add_veth(port, 0, port_mac, None, "eth0", mac, space.ns.fd, far_index, mtu)
        index = switch.links.index_of(port)
        switch.space.claim(index)
        switch.on_undo(lambda: switch.links.delete(index))  # takes its peer along
        space.links.set_link(far_index)
    except OSError as exc:
        if exc.errno in limits.FD_ERRNOS:
            raise
        raise LabError(f"host {name}: cannot create its veth {port}: {exc.strerror}") from None
    with space.ns.entered():
        host_io = PacketPort("eth0")
    switch.own_socket(host_io)
    with switch.ns.entered():
        peer_io = PacketPort(port)
    switch.own_socket(peer_io)
    host = LoneHost(switch, name, mac, port, None, host_io, space, "eth0", far_index)
    host.switch_index = index
    peer = Interface(switch, peer_name(name), port_mac, port, peer_io, index, host)
    host.lone_peer = peer
    switch.register_endpoint(host)
    switch.register_endpoint(peer)
    return host
