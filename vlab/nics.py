"""Machines with several NICs, and hosts whose two NICs are a bond.

A real hypervisor's VM often has a NIC on each of several networks, and a host's two NICs are
often bonded for failover. Each extra NIC is an endpoint of its own (``send``/``expect`` there):

- ``host.add_nic(br2)`` cables ``eth1`` of the *same* namespace to ``br2``; the endpoint is
  called ``h1.eth1``. ``lab.host("h1", bridge=[br1, br2])`` is the short form.
- ``vm.add_nic(br2)`` gives the VM a second tap on ``br2``, the endpoint ``vm1.nic1``.
  ``lab.vm("vm1", bridge=[br1, br2])`` is the short form.
- ``lab.host("h1", bond=[br1, br2], mode="active-backup")`` cables ``eth0`` and ``eth1`` to the
  two bridges and enslaves them to ``bond0``: the host endpoint sends and receives on the bond,
  ``host.nics`` are the two slaves (fail one with ``host.nics[0].set_carrier(False)``) and
  ``host.active_nic()`` says which one carries the traffic. Needs the bonding driver
  (``Unsupported`` without it, as on the 6.18 vlab is developed on; Debian's cloud kernel has it:
  ``--vlab-kernel``).
"""

from __future__ import annotations

import errno
import struct
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vlab import ip as iplib
from vlab.capture import PacketPort
from vlab.endpoints import VM, Endpoint, Host
from vlab.errors import LabError, Unsupported
from vlab.guard import guarded
from vlab.stacked import BOND_MODES, add_bond

if TYPE_CHECKING:
    from vlab.bridge import Bridge
    from vlab.build import Builder

BOND_MIIMON_MS = 10  # how often the bond checks its slaves' carrier: failover within ~10 ms
IFLA_BOND_ACTIVE_SLAVE = 2


def nic_name(owner: str, suffix: str) -> str:
    """The endpoint name of a machine's extra NIC (``h1.eth1``), refused if it would be too
    long for a name (checked before anything is built)."""
    name = f"{owner}.{suffix}"
    if len(name) > 15:
        raise LabError(
            f"{owner}: its NIC endpoint would be called {name!r}, longer than 15 characters; "
            "give the machine a shorter name"
        )
    return name


def nics_of(ep: Endpoint) -> list[Endpoint]:
    """Every NIC endpoint of the machine ``ep`` belongs to, first NIC first."""
    endpoints = ep.switch.fabric.endpoints.values()
    if isinstance(ep, Host):
        return [e for e in endpoints if isinstance(e, Host) and e.space.ns is ep.space.ns]
    root = getattr(ep, "machine", ep.name)
    return [e for e in endpoints if getattr(e, "machine", e.name) == root]


def _builder_of(ep: Endpoint, br: Bridge) -> Builder:
    """The building calls over ``br``'s switch namespace (the lab's, or a hypervisor's)."""
    from vlab.hypervisor import builder_for

    return builder_for(ep.lab, br)


def special_vm(
    builder: Builder,
    name: str,
    bridge: object,
    mac: str | None,
    mtu: int | None,
    guest: str | None,
    macvtap: object,
    mode: str | None,
) -> VM:
    """``lab.vm`` with ``macvtap=`` or a list of bridges (everything validated first)."""
    from vlab.build import endpoint_mac, endpoint_mtu

    checked_mtu = endpoint_mtu("vm", name, mtu)
    checked_mac = endpoint_mac("vm", name, mac, "52:54:00")
    if guest not in (None, "qemu"):
        raise LabError(f"vm {name}: guest={guest!r} is not known; use guest='qemu' or None")
    if macvtap is not None:
        from vlab.macvtap import add_vm

        return add_vm(builder.switch, name, macvtap, mode, checked_mac, checked_mtu, guest)
    assert isinstance(bridge, list | tuple)
    if not bridge or guest is not None:
        raise LabError(f"vm {name}: bridge= as a list takes one bridge per NIC, and no guest=")
    brs = [builder.switch.fabric.bridge_of(b) for b in bridge]
    for i in range(1, len(brs)):
        builder.switch.fabric.check_name(nic_name(name, f"nic{i}"), "vm")
    first = builder.vm(name, brs[0], checked_mac, checked_mtu)
    for br in brs[1:]:
        add_vm_nic(first, br, None, checked_mtu)
    return first


def add_vm_nic(vm: VM, bridge: Bridge | str, mac: str | None, mtu: int | None) -> VM:
    """Another tap of ``vm`` on ``bridge``: the endpoint ``vm1.nicN`` (emulated VMs only)."""
    if vm.guest is not None:
        raise LabError(f"vm {vm.name}: a QEMU guest has one NIC here; emulate it for more")
    br = vm.switch.fabric.bridge_of(bridge)
    root = getattr(vm, "machine", vm.name)
    n = len(
        [e for e in vm.switch.fabric.endpoints.values() if getattr(e, "machine", e.name) == root]
    )
    nic = _builder_of(vm, br).vm(nic_name(root, f"nic{n}"), br, mac, mtu)
    nic.machine = root  # type: ignore[attr-defined]
    return nic


def special_host(
    builder: Builder,
    name: str,
    bridge: object,
    mac: str | None,
    mtu: int | None,
    ip: str | list[str] | None,
    ipv6: bool | str | list[str] | None,
    bond: Sequence[Bridge | str] | None,
    mode: str | None,
) -> Host:
    """``lab.host`` with ``bond=`` or a list of bridges (everything validated first)."""
    from vlab.build import check_room, endpoint_mac, endpoint_mtu

    switch = builder.switch
    checked_mtu = endpoint_mtu("host", name, mtu)
    checked_mac = endpoint_mac("host", name, mac, "02")
    ips = iplib.interfaces(ip, f"host {name} ip")
    want6, ips6 = iplib.ipv6_request(ipv6, f"host {name}")
    targets = bond if bond is not None else bridge
    if isinstance(targets, str | bytes) or not isinstance(targets, list | tuple) or not targets:
        raise LabError(f"host {name}: give a list of bridges, one per NIC")
    brs = [switch.fabric.bridge_of(b) for b in targets]
    for i, br in enumerate(brs):
        check_room(br, f"host {name}")
        if i or bond is not None:
            switch.fabric.check_name(nic_name(name, f"eth{i}"), "host")
    if bond is not None:
        checked_mode = "active-backup" if mode is None else mode
        return add_bonded_host(
            builder, name, brs, checked_mode, checked_mac, checked_mtu, ips + ips6, want6
        )
    host = builder.host(name, brs[0], checked_mac, checked_mtu, ip, ipv6)
    for br in brs[1:]:
        add_host_nic(host, br, None, checked_mtu, None)
    return host


def add_host_nic(
    host: Host, bridge: Bridge | str, mac: str | None, mtu: int | None, ip: object
) -> Host:
    """``ethN`` of ``host``'s namespace, cabled to ``bridge`` (see the module docstring)."""
    from vlab.build import cable_veth, check_room, endpoint_mac, endpoint_mtu

    br = host.switch.fabric.bridge_of(bridge)
    switch = br.switch
    n = len(nics_of(host))
    ifname = f"eth{n}"
    name = nic_name(host.name, ifname)
    switch.fabric.check_name(name, "host")
    mtu = endpoint_mtu("host", name, mtu)
    mac = endpoint_mac("host", name, mac, "02")
    ips = iplib.interfaces(ip, f"host {name} ip")  # type: ignore[arg-type]
    check_room(br, f"host {name}")
    with switch.rollback():
        port = switch.next_name("veth")
        ep = cable_veth(switch, Host, name, br, port, host.space, ifname, mac, mtu)
        assert isinstance(ep, Host)
        for iface in ips:
            iplib.add(host.space.rtnl, ep.ifindex, iface, f"host {name}")
    return ep


class BondedHost(Host):
    """A host whose NICs are slaves of ``bond0``: it sends and receives on the bond."""

    bond_mode: str = "active-backup"

    @guarded
    def active_nic(self) -> Host | None:
        """The slave the bond sends on now (active-backup), read from the kernel."""
        raw = self._rtnl.bridge_data(self.ifindex).get(IFLA_BOND_ACTIVE_SLAVE)  # IFLA_INFO_DATA
        if not raw:
            return None
        index = struct.unpack("=I", raw[:4])[0]
        return next((n for n in self.nics if isinstance(n, Host) and n.ifindex == index), None)

    @property
    def nics(self) -> list[Endpoint]:
        """The bond's slaves, as endpoints watching what arrives at each."""
        return [e for e in nics_of(self) if e is not self]

    @guarded
    def wait_active(self, nic: Endpoint, timeout: float = 2.0) -> None:
        """Until the bond has failed over to ``nic`` (its link monitor runs every 10 ms)."""
        deadline = time.monotonic() + timeout
        while self.active_nic() is not nic:
            if time.monotonic() > deadline:
                now = self.active_nic()
                raise LabError(
                    f"host {self.name}: bond0 did not make {nic.name} active within "
                    f"{timeout:g} s (active: {now.name if now else 'none'})"
                )
            time.sleep(0.002)
        self.switch.topology_changed()

    @guarded
    def set_carrier(self, up: bool) -> None:
        """A bond has no cable of its own: fail one of its NICs (``host.nics[0]``) instead."""
        raise LabError(
            f"host {self.name}: bond0 has no cable; unplug one of its NICs: "
            f"host.nics[0].set_carrier(False)"
        )

    @property
    def show_kind(self) -> str:
        """What ``vlab show`` lists it as: ``host/bond MODE``."""
        return f"host/bond {self.bond_mode}"

    def loss_link(self) -> int:
        """No bridge port of its own: no port counter counts its losses (see vlab.loss)."""
        return 0

    def describe(self) -> str:
        """One line: the bond, its mode and its slaves' cables."""
        slaves = ", ".join(n.location for n in self.nics)
        return f"host {self.name}: bond0 ({self.bond_mode}) {self.mac} over {slaves}"


def add_bonded_host(
    builder: Builder,
    name: str,
    brs: list[Bridge],
    mode: object,
    mac: str,
    mtu: int | None,
    ips: list[Any],
    want6: bool,
) -> BondedHost:
    """``lab.host(name, bond=[br1, br2], mode=...)`` (see the module docstring)."""
    from vlab.build import cable_veth

    if mode not in BOND_MODES:
        raise LabError(f"host {name}: bond mode={mode!r}: choose one of {', '.join(BOND_MODES)}")
    if len(brs) < 2:
        raise LabError(f"host {name}: bond= takes two or more bridges, one per NIC")
    switch = builder.switch
    with switch.rollback():
        space = switch.fabric.namespace(name)
        index = space.index()
        try:
            add_bond(space.links, "bond0", index, str(mode), mac, BOND_MIIMON_MS)
        except OSError as exc:
            if exc.errno == errno.EOPNOTSUPP:
                raise Unsupported(
                    "this kernel has no bonding driver (CONFIG_BONDING): bonded hosts need "
                    "one that has it (pytest --vlab-kernel=PATH)"
                ) from None
            raise LabError(f"host {name}: cannot create bond0: {exc.strerror}") from None
        slaves: list[Host] = []
        for i, br in enumerate(brs):
            ifname = f"eth{i}"
            port = br.switch.next_name("veth")
            ep = cable_veth(
                br.switch, Host, nic_name(name, ifname), br, port, space, ifname, mac, mtu
            )
            assert isinstance(ep, Host)
            space.links.set_link(ep.ifindex, up=False, master=index)  # a slave joins down
            space.links.set_link(ep.ifindex)
            slaves.append(ep)
        space.links.set_link(index)
        iplib.configure_host(space.ns, space.rtnl, "bond0", index, ips, want6)
        with space.ns.entered():
            io = PacketPort("bond0")
        switch.own_socket(io)
        host = BondedHost(switch, name, mac, slaves[0].port, brs[0], io, space, "bond0", index)
        host.bond_mode = str(mode)
        switch.register_endpoint(host)
    return host


__all__ = [
    "BondedHost",
    "add_bonded_host",
    "add_host_nic",
    "add_vm_nic",
    "nic_name",
    "nics_of",
    "special_host",
    "special_vm",
]
