"""VXLAN between hypervisors: ``lab.vxlan(br_a, br_b, vni=42)``.

The cloud picture, VM -> tap -> bridge -> vxlan -> underlay -> vxlan -> bridge -> tap -> VM:

- **The underlay** is one more namespace with a bridge, the lab's physical network between
  hypervisors. Each hypervisor that takes part (the lab's own switch namespace included) gets a
  NIC on it, ``ul0`` in its switch namespace, with a documentation address: 198.51.100.1 for the
  first, .2 for the next... Neighbours and the underlay bridge's fdb are static, so no ARP or
  flooding ever mixes into what a test watches there.
- **A vxlan device** per bridge and VNI (``vxlanN``, ``dev ul0``, so its MTU is ul0's minus the
  50 bytes of VXLAN over IPv4: 1450), a port of the bridge. Remote VTEPs are head-end
  replication entries of its own fdb (``00:00:00:00:00:00 dst REMOTE``): broadcast, multicast
  and unknown unicast go to every remote of the VNI, one copy each. ``learning`` (default on)
  lets it learn which remote a MAC is behind. GRO is off on it, so decapsulated frames go
  through the CPU backlog that :mod:`vlab.quiesce` watches.
- **Watching the underlay**: ``vx.watch_underlay()`` returns one endpoint per side seeing what
  arrives at that hypervisor's ``ul0`` — the encapsulated packets, which scapy decodes as
  ``Ether / IP / UDP / VXLAN / inner Ether``; a failed ``expect`` there diffs the outer header,
  the VXLAN header and the inner frame (``inner Ether.dst: ...``). ``vx.encapsulated(frame,
  to=br_b)`` is the :class:`vlab.Mask` of ``frame`` as it crosses the underlay towards ``br_b``
  (the fields the kernel chooses — UDP source port, IP id, checksums — ignored).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import ipaddress
import socket
import struct
import weakref
from typing import TYPE_CHECKING, Any

import scapy.layers.vxlan  # noqa: F401 - binds UDP 4789 to the VXLAN layer for decoding
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN

from vlab import limits, validate
from vlab.bridge import Port
from vlab.capture import PacketPort
from vlab.endpoints import NamespacedEndpoint
from vlab.errors import LabError
from vlab.frames import FrameLike, Mask, to_bytes
from vlab.guard import guarded
from vlab.rtnl import fdb_request, neigh_add, set_noqueue
from vlab.stacked import ALL_ZEROS, VtepEntry, add_vxlan, vtep_add, vtep_dump
from vlab.switch import random_mac

if TYPE_CHECKING:
    from vlab.bridge import Bridge
    from vlab.lab import Lab
    from vlab.switch import Namespace, Switch

UNDERLAY = "underlay"  # the node name of the underlay namespace
UNDERLAY_NET = ipaddress.IPv4Network("198.51.100.0/24")  # TEST-NET-2
MAX_VNI = (1 << 24) - 1
SIOCETHTOOL = 0x8946
ETHTOOL_SGRO = 0x2C


class _Nic:
    """One hypervisor's NIC on the underlay: ``ul0`` with its VTEP address."""

    def __init__(self, switch: Switch, index: int, mac: str, address: str, port: str) -> None:
        self.switch = switch
        self.index = index
        self.mac = mac
        self.address = address
        self.port = port  # its cable's port on the underlay bridge


class _Underlay:
    """The underlay namespace, its bridge, and every hypervisor's NIC on it."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.space: Namespace = lab.switch.fabric.namespace(UNDERLAY)
        self.bridge_index = self.space.index()
        self.space.links.add_bridge("ul", self.bridge_index, random_mac("02"), b"")
        self.nics: dict[int, _Nic] = {}  # by id of the switch

    def nic(self, switch: Switch) -> _Nic:
        """``switch``'s NIC on the underlay, cabled (and known to every other VTEP) on first use."""
        nic = self.nics.get(id(switch))
        if nic is not None:
            return nic
        n = len(self.nics)
        if n >= 250:
            raise LabError("the underlay has room for 250 hypervisors")
        address = str(UNDERLAY_NET[n + 1])
        port, mac, index = f"ul{n}", random_mac("02"), switch.index()
        far = self.space.index()
        self.space.links.add_veth(
            port, far, random_mac("fe"), self.bridge_index, "ul0", mac, switch.ns.fd, index
        )
        switch.links.set_link(index)
        from vlab import ip as iplib

        iplib.add(switch.rtnl, index, iplib.interfaces(f"{address}/24", "underlay")[0], "ul0")
        nic = _Nic(switch, index, mac, address, port)
        far_index = self.space.links.index_of(port)
        fdb_request(self.space.rtnl, True, far_index, mac, static=True)
        for other in self.nics.values():  # static neighbours both ways: no ARP on the underlay
            neigh_add(switch.rtnl, index, ipaddress.IPv4Address(other.address).packed, other.mac)
            neigh_add(other.switch.rtnl, other.index, ipaddress.IPv4Address(address).packed, mac)
        self.nics[id(switch)] = nic
        self.lab.switch.topology_changed()
        return nic


_underlays: weakref.WeakKeyDictionary[Lab, _Underlay] = weakref.WeakKeyDictionary()


def underlay_of(lab: Lab) -> _Underlay:
    """The lab's underlay, made on first use."""
    underlay = _underlays.get(lab)
    if underlay is None:
        underlay = _underlays[lab] = _Underlay(lab)
    return underlay


class UnderlayWatch(NamespacedEndpoint):
    """What arrives at one hypervisor's underlay NIC (``ul0``): the VXLAN packets for it.

    ``send`` puts a packet on the underlay from that hypervisor (a crafted VXLAN packet, say);
    ``set_carrier(False)`` unplugs the hypervisor from the underlay.
    """

    kind = "underlay"

    @guarded
    def set_carrier(self, up: bool) -> None:
        """Plug or unplug this hypervisor's underlay NIC."""
        up = validate.flag(up, f"underlay {self.name}: set_carrier(up)")
        self.space.links.set_link(self.ifindex, up=up)
        self.space.links.link_state(self.ifindex)
        self.carrier = up
        self.switch.topology_changed()

    def loss_link(self) -> int:
        """No bridge port of its own: no port counter counts its losses (see vlab.loss)."""
        return 0

    def describe(self) -> str:
        """One line: the hypervisor, its underlay NIC and VTEP address."""
        vtep = getattr(self, "vtep", "?")
        return f"underlay {self.name}: ul0 ({self.mac}, VTEP {vtep}) of {self.switch.name}"


class Vxlan:
    """Two bridges on two hypervisors joined through VXLAN ``vni`` (see the module docstring).

    ``ports`` are the vxlan devices as ports of the two bridges, ``vteps`` the two VTEP
    addresses on the underlay.
    """

    def __init__(
        self,
        lab: Lab,
        vni: int,
        bridges: tuple[Bridge, Bridge],
        ports: tuple[Port, Port],
        vteps: tuple[str, str],
        dstport: int,
    ) -> None:
        """Made by :meth:`vlab.lab.Lab.vxlan`."""
        self.lab = lab
        self._guard = lab.switch.guard
        self.vni = vni
        self.bridges = bridges
        self.ports = ports
        self.vteps = vteps
        self.dstport = dstport
        self._watches: tuple[UnderlayWatch, UnderlayWatch] | None = None

    def _side(self, bridge: Bridge | str) -> int:
        name = bridge if isinstance(bridge, str) else bridge.name
        for i, br in enumerate(self.bridges):
            if br.name == name:
                return i
        raise LabError(f"vxlan {self.vni} joins {self.bridges[0].name} and {self.bridges[1].name}")

    @guarded
    def fdb(self, bridge: Bridge | str) -> list[VtepEntry]:
        """The vxlan device's own fdb on ``bridge``'s side: which remote VTEP (``dst``) each MAC
        is sent to, ``00:00:00:00:00:00`` being the head-end replication list."""
        port = self.ports[self._side(bridge)]
        return vtep_dump(port.bridge.switch.rtnl, port.index)

    @guarded
    def watch_underlay(
        self, name_a: str | None = None, name_b: str | None = None
    ) -> tuple[UnderlayWatch, UnderlayWatch]:
        """Endpoints seeing what arrives at each side's underlay NIC (once; later calls return
        the same two). Names default to ``ul-<hypervisor>``."""
        if self._watches is not None:
            return self._watches
        made = []
        for br, vtep, name in zip(self.bridges, self.vteps, (name_a, name_b), strict=True):
            made.append(_watch(self.lab, br, vtep, name or f"ul-{br.switch.name}"[:15]))
        self._watches = (made[0], made[1])
        return self._watches

    @guarded
    def encapsulated(self, frame: FrameLike, to: Bridge | str) -> Mask:
        """``frame`` as it crosses the underlay towards ``to``'s hypervisor, as a Mask with the
        fields the kernel picks (UDP source port, IP id/flags, checksums) ignored."""
        side = self._side(to)
        src, dst = self.vteps[1 - side], self.vteps[side]
        underlay = underlay_of(self.lab)
        smac = underlay.nic(self.bridges[1 - side].switch).mac
        dmac = underlay.nic(self.bridges[side].switch).mac
        outer = (
            Ether(src=smac, dst=dmac)
            / IP(src=src, dst=dst, ttl=64)
            / UDP(sport=0, dport=self.dstport)
            / VXLAN(vni=self.vni, flags=0x08)
            / Ether(to_bytes(frame))
        )
        return Mask(outer).ignore(
            "IP.id", "IP.flags", "IP.chksum", "IP.tos", "UDP.sport", "UDP.chksum"
        )

    def __repr__(self) -> str:
        return f"<Vxlan {self.vni} {self.bridges[0].name}<->{self.bridges[1].name}>"


def _watch(lab: Lab, br: Bridge, vtep: str, name: str) -> UnderlayWatch:
    switch = br.switch
    switch.fabric.check_name(name, "underlay watch")
    nic = underlay_of(lab).nic(switch)
    with switch.ns.entered():
        io = PacketPort("ul0")
    switch.own_socket(io)
    ep = UnderlayWatch(switch, name, nic.mac, "ul0", br, io, switch.space, "ul0", nic.index)
    ep.vtep = vtep  # type: ignore[attr-defined]
    switch.register_endpoint(ep)
    return ep


def _gro_off(switch: Switch, ifname: str) -> None:
    """``ethtool -K IFNAME gro off`` (ETHTOOL_SGRO): decapsulated frames then take the CPU
    backlog (visible to a settle) instead of the device's own GRO queue (invisible)."""
    value = ctypes.create_string_buffer(struct.pack("=II", ETHTOOL_SGRO, 0))
    ifreq = struct.pack("=16sQ", ifname.encode(), ctypes.addressof(value)) + b"\0" * 16
    with switch.ns.entered():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        with contextlib.suppress(OSError):  # a kernel without the ioctl keeps GRO: still works
            fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)
    finally:
        sock.close()


def _device(
    lab: Lab, br: Bridge, vni: int, nic: Any, dstport: int, learning: bool, mtu: int | None
) -> Port:
    """The bridge's vxlan device for ``vni``: made on first use, checked to match after."""
    switch = br.switch
    for port in br.ports.values():
        info = getattr(port, "vxlan", None)
        if info is not None and info[0] == vni:
            if info[1:] != (dstport, learning):
                raise LabError(
                    f"bridge {br.name} has vxlan {vni} already with dstport={info[1]} "
                    f"learning={info[2]}; join it with the same settings"
                )
            return port
    for other in switch.bridges():
        if other is not br and any(
            getattr(p, "vxlan", (None,))[0] == vni for p in other.ports.values()
        ):
            raise LabError(
                f"vni {vni} is already a port of {other.name} on {switch.name}: one bridge per "
                "VNI on a hypervisor (the kernel allows one device per VNI and port)"
            )
    name = switch.next_name("vxlan")
    index = switch.index()
    mac = random_mac("02")
    try:
        add_vxlan(
            switch.links,
            name,
            index,
            vni,
            nic.address,
            nic.index,
            dstport,
            learning,
            mtu,
            br.index,
            mac,
        )
    except OSError as exc:
        if exc.errno in limits.FD_ERRNOS:
            raise
        if exc.errno == 95:
            from vlab.errors import Unsupported

            raise Unsupported("this kernel has no vxlan link type (CONFIG_VXLAN)") from None
        raise LabError(f"vxlan {vni} on {br.name}: cannot add {name}: {exc.strerror}") from None
    switch.on_undo(lambda: switch.links.delete(index))
    set_noqueue(switch.rtnl, index)
    _gro_off(switch, name)
    port = Port(br, name, index, None, mac)
    port.carrier_from_birth = True  # a vxlan device keeps operstate UNKNOWN
    port.vxlan = (vni, dstport, learning)  # type: ignore[attr-defined]
    br.ports[name] = port
    switch.topology_changed()
    return port


def join(
    lab: Lab,
    br_a: Bridge,
    br_b: Bridge,
    vni: object,
    dstport: object,
    learning: object,
    mtu: object,
) -> Vxlan:
    """``lab.vxlan(br_a, br_b, vni=...)``: validate, then build both ends (see the module)."""
    if isinstance(vni, bool) or not isinstance(vni, int) or not 1 <= vni <= MAX_VNI:
        raise LabError(f"vxlan vni={vni!r}: give an integer from 1 to {MAX_VNI}")
    if isinstance(dstport, bool) or not isinstance(dstport, int) or not 1 <= dstport <= 65535:
        raise LabError(f"vxlan dstport={dstport!r}: give a UDP port from 1 to 65535")
    learn = validate.flag(learning, "vxlan learning")
    size = None
    if mtu is not None:
        if isinstance(mtu, bool) or not isinstance(mtu, int) or not 68 <= mtu <= 65485:
            raise LabError(f"vxlan mtu={mtu!r}: give an MTU from 68 to 65485")
        size = mtu
    if br_a.switch is br_b.switch:
        raise LabError(
            f"vxlan: {br_a.name} and {br_b.name} are on the same hypervisor ({br_a.switch.name});"
            " VXLAN joins bridges on two: build one with lab.hypervisor(name).bridge(...)"
        )
    underlay = underlay_of(lab)
    nic_a, nic_b = underlay.nic(br_a.switch), underlay.nic(br_b.switch)
    with br_a.switch.rollback():
        port_a = _device(lab, br_a, vni, nic_a, dstport, learn, size)
    with br_b.switch.rollback():
        port_b = _device(lab, br_b, vni, nic_b, dstport, learn, size)
    for port, remote in ((port_a, nic_b.address), (port_b, nic_a.address)):
        rtnl = port.bridge.switch.rtnl
        if not any(e.mac == ALL_ZEROS and e.dst == remote for e in vtep_dump(rtnl, port.index)):
            vtep_add(rtnl, port.index, ALL_ZEROS, remote)
    lab.switch.topology_changed()
    return Vxlan(lab, vni, (br_a, br_b), (port_a, port_b), (nic_a.address, nic_b.address), dstport)


__all__ = ["UnderlayWatch", "Vxlan", "join"]
