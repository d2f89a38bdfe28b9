"""802.1Q sub-interfaces of hosts: ``host.vlan(10, ip="192.0.2.1/24")`` is ``eth0.10``.

A host on a trunk port talks to several VLANs through sub-interfaces, as a router or a
hypervisor with a tagged uplink does. The sub-interface is a kernel VLAN device on the host's
``eth0``: what it sends leaves ``eth0`` tagged with its VLAN, and what arrives on ``eth0`` tagged
with that VLAN is delivered to it with the tag removed. The endpoint vlab returns reads and
sends on that device (a packet socket on it), so a test sends untagged frames and the kernel's
8021q code, not vlab, does the tagging. ``eth0`` itself (the host endpoint) still sees every
frame as it is on the wire, tags included.

Kernels without 8021q (``CONFIG_VLAN_8021Q``) raise :class:`~vlab.errors.Unsupported`.
"""

from __future__ import annotations

import struct
from typing import Any

from vlab import ip as iplib
from vlab import rtnl as nl
from vlab import vlan as vlanlib
from vlab.capture import PacketPort
from vlab.endpoints import Host, NamespacedEndpoint
from vlab.errors import LabError, Unsupported
from vlab.options import VLAN_PROTOCOLS

IFLA_LINK = 5
IFLA_VLAN_ID, IFLA_VLAN_PROTOCOL = 1, 5


class VlanInterface(NamespacedEndpoint):
    """A host's sub-interface ``eth0.VID``: an endpoint in one VLAN of the host's cable.

    ``port`` and ``bridge`` are those of the host (the same cable); its carrier belongs to the
    host, not to one of its VLANs.
    """

    kind = "vlan"
    host: Host
    vid: int

    def apply_carrier(self, up: bool) -> None:
        """A VLAN has no cable of its own: a LabError saying what to do instead."""
        raise LabError(
            f"{self.name} is a VLAN of host {self.host.name}'s cable: unplug the host instead "
            f"({self.host.name}.set_carrier(False))"
        )

    def ping(self, dst: str, count: int = 1, timeout: float = 1.0) -> bool:
        """ICMP echo from the host's namespace; the route to ``dst`` picks this VLAN when its
        address is on this sub-interface's subnet."""
        return self.host.ping(dst, count=count, timeout=timeout)

    def describe(self) -> str:
        """One line: the sub-interface, its VLAN and the host cable it rides on."""
        return (
            f"vlan {self.name}: {self.ifname} (VLAN {self.vid}) of host {self.host.name}, "
            f"{self.mac} == veth ==> {self.port}"
            + (f" on {self.bridge.name}" if self.bridge is not None else "")
        )


def _link_body(name: str, index: int, parent: int, vid: int, tpid: int) -> bytes:
    data = nl.nla(IFLA_VLAN_ID, struct.pack("=H", vid))
    data += nl.nla(IFLA_VLAN_PROTOCOL, struct.pack(">H", tpid))
    info = nl.nla(nl.IFLA_INFO_KIND, b"vlan\0") + nl.nla(nl.IFLA_INFO_DATA | nl.NLA_F_NESTED, data)
    return (
        nl.ifinfo(index, up=True)
        + nl.link_attrs(name)
        + nl.nla(IFLA_LINK, struct.pack("=I", parent))
        + nl.nla(nl.IFLA_LINKINFO | nl.NLA_F_NESTED, info)
    )


def add_vlan(host: Host, vid: Any, ip: Any = None, protocol: Any = "802.1Q") -> VlanInterface:
    """Create ``eth0.VID`` in ``host``'s namespace and return it as an endpoint (see module)."""
    what = f"host {host.name}: vlan({vid!r})"
    if isinstance(vid, bool) or not isinstance(vid, int):
        raise LabError(f"{what}: give one VLAN ID (an integer 1-4094)")
    vlanlib.vid_ranges(vid, what)
    if protocol not in VLAN_PROTOCOLS:
        raise LabError(f"{what}: protocol={protocol!r}: choose '802.1Q' or '802.1ad'")
    ips = iplib.interfaces(ip, f"{what} ip")
    switch, space = host.switch, host.space
    name = f"{host.name}.{vid}"
    ifname = f"{host.ifname}.{vid}"
    if name in switch.fabric.endpoints:
        raise LabError(f"{what}: host {host.name} already has VLAN {vid} ({name})")
    index = space.index()
    body = _link_body(ifname, index, host.ifindex, vid, VLAN_PROTOCOLS[protocol])
    try:
        space.links.new(body, create=True)
    except OSError as exc:
        if exc.errno == 95:  # EOPNOTSUPP: "Unknown device type"
            raise Unsupported(
                f"{what}: this kernel has no 802.1Q VLAN devices (CONFIG_VLAN_8021Q)"
            ) from None
        raise LabError(f"{what}: cannot create {ifname}: {exc.strerror}") from None
    for iface in ips:
        iplib.add(space.rtnl, index, iface, what)
    with space.ns.entered():
        io = PacketPort(ifname)
    switch.own_socket(io)
    ep = VlanInterface(switch, name, host.mac, host.port, host.bridge, io, space, ifname, index)
    ep.host, ep.vid = host, vid
    switch.register_endpoint(ep)
    return ep
