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

if TYPE_CHECKING:
    from vlab.frames import FrameLike
    from vlab.lab import Lab, _Namespace


def _refuse_unplugged(ep: Endpoint) -> None:
    """A frame sent into an unplugged cable is dropped by the kernel, counted, and would make
    every later check of the lab fail as a loss: refuse it where the test can see why."""
    if not ep.carrier:
        raise LabError(
            f"{ep.kind} {ep.name}: its cable is unplugged (set_carrier(False)); nothing sent "
            "on it can arrive: plug it back with set_carrier(True) first"
        )


OPER_UP = 6


class Interface(ReceiveFilter, Endpoint):
    """The switch-side end of a host's veth, in no bridge: ``host.peer``."""

    kind = "interface"
    bridge: None

    def __init__(
        self, lab: Lab, name: str, mac: str, port: str, io: PacketPort, index: int, host: Host
    ) -> None:
        super().__init__(lab, name, mac, port, None, io)
        self.ifname = port
        self.ifindex = index
        self.host = host
        self._switch_index = index

    def _rx_target(self) -> tuple[_Namespace, int, str]:
        return self.lab._switch, self.ifindex, self.ifname

    def _rx_enable_ipv6(self) -> None:
        iplib.enable_ipv6(self.lab._switch.ns, self.ifname)
        if self.carrier:
            iplib.wait_usable(self.lab._switch.rtnl, self.ifindex, self.name)

    def _set_carrier(self, up: bool) -> None:
        self.lab._link_updown(self.lab._switch.ns, self.ifindex, up)
        self.host.carrier = up  # one cable: the host's end loses its carrier too

    @guarded
    def send(self, frame: FrameLike) -> None:
        """Put one frame on the cable to the host (refused while the cable is unplugged)."""
        _refuse_unplugged(self)
        super().send(frame)

    def _loss_link(self) -> int:
        return 0  # its own link's drops are frames toward the host: the host's loss, not its

    @guarded
    def add_address(self, address: str) -> None:
        """``ip addr add ADDRESS/LEN dev PEER`` (an IPv6 one turns IPv6 on for it alone)."""
        ifaces = iplib.interfaces(address, f"{self.name} add_address")
        if any(iface.version == 6 for iface in ifaces):
            self._rx_enable_ipv6()
        for iface in ifaces:
            iplib.add(self.lab._switch.rtnl, self.ifindex, iface, self.name)

    @guarded
    def addresses(self) -> list[str]:
        """The interface's addresses as the kernel reports them."""
        return iplib.read_addresses(self.lab._switch.rtnl, self.ifindex)

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

    def _set_carrier(self, up: bool) -> None:
        super()._set_carrier(up)
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
    lab: Lab, name: str, port: str, space: _Namespace, mac: str, mtu: int | None
) -> LoneHost:
    """A host in ``space`` whose veth's other end ``port`` stays in the switch namespace."""
    from vlab.lab import random_mac

    switch = lab._switch
    index, far_index = switch.index(), space.index()
    port_mac = random_mac("fe")
    try:
        switch.links.add_veth(port, index, port_mac, None, "eth0", mac, space.ns.fd, far_index, mtu)
        lab._undo.append(lambda: switch.links.delete(index))  # takes its peer along
        space.links.set_link(far_index)
    except OSError as exc:
        if exc.errno in limits.FD_ERRNOS:
            raise
        raise LabError(f"host {name}: cannot create its veth {port}: {exc.strerror}") from None
    with space.ns.entered():
        host_io = PacketPort("eth0")
    lab._sockets.append(host_io)
    with switch.ns.entered():
        peer_io = PacketPort(port)
    lab._sockets.append(peer_io)
    host = LoneHost(lab, name, mac, port, None, host_io)
    host.ns, host.ifname, host.ifindex = space.ns, "eth0", far_index
    host._switch_index = index
    peer = Interface(lab, peer_name(name), port_mac, port, peer_io, index, host)
    host.lone_peer = peer
    lab.endpoints[name] = host
    lab.endpoints[peer.name] = peer
    lab._topology_changed()
    return host


def not_ready(lab: Lab) -> list[str]:
    """Switch-side ends of hosts in no bridge that are not up yet (for ``lab.ready``)."""
    missing = []
    for ep in lab.endpoints.values():
        if isinstance(ep, Interface) and ep.carrier:
            oper, qdisc, carrier = lab._switch.links.link_state(ep.ifindex)
            if not carrier or qdisc in ("", "noop") or oper != OPER_UP:
                missing.append(f"{ep.port} is not up")
    return missing
