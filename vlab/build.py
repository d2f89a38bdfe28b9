"""The building calls of a switch namespace: ``.bridge()``, ``.vm()``, ``.host()``, ``.uplink()``,
``.port()``.

:class:`Builder` is what a :class:`~vlab.lab.Lab` (over its switch) and any other switch
namespace of a lab offer to build with: every call validates everything before it builds
anything, makes each link with one netlink request (its far end already in place), hands the
fds it opened to its :class:`~vlab.switch.Switch` to close, and registers the endpoint, which
from then on brings its own readiness, carrier, capture and close (see
:class:`vlab.endpoints.Endpoint`). A call that fails undoes what it made
(:meth:`vlab.switch.Switch.rollback`), so a retry works.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vlab import ip as iplib
from vlab import limits, validate
from vlab import tap as taplib
from vlab.bridge import Bridge, Port
from vlab.capture import PacketPort, TapPort
from vlab.endpoints import VM, FrameIO, Host, NamespacedEndpoint, Uplink
from vlab.errors import LabError, Unsupported
from vlab.guard import LabGuard, building, guarded
from vlab.nsspares import Pair
from vlab.options import BRIDGE_OPTIONS, encode_bridge, encode_mtu, normalize_mac, pack_data
from vlab.rtnl import set_noqueue
from vlab.switch import random_mac, suppress_os
from vlab.vlan import check_bridge_options

if TYPE_CHECKING:
    from vlab.switch import Namespace, Switch

TAP_TXQLEN = taplib.TXQLEN  # frames a tap queues for its VM before it drops (tx_dropped)


def endpoint_mtu(kind: str, name: str, mtu: object) -> int | None:
    """``mtu=`` of an endpoint, validated (None: the kernel's default)."""
    value = encode_mtu(mtu, f"{kind} {name}")
    problem = validate.mtu_problem(kind, value) if value is not None else None
    if problem is not None:
        raise LabError(f"{kind} {name}: {problem}")
    return value


def endpoint_mac(kind: str, name: str, mac: object, prefix: str) -> str:
    """``mac=`` of an endpoint, validated; a random one under ``prefix`` when not given."""
    if mac is None:
        return random_mac(prefix)
    value = normalize_mac(mac, f"{kind} {name} mac")
    problem = validate.endpoint_mac_problem(value)
    if problem is not None:
        raise LabError(f"{kind} {name} mac: {problem}")
    return value


def check_room(br: Bridge, what: str) -> None:
    """A Linux bridge takes at most BRIDGE_MAX_PORTS ports: say so before building."""
    if len(br.ports) >= validate.BRIDGE_MAX_PORTS:
        raise LabError(
            f"{what}: bridge {br.name} already has {len(br.ports)} ports, the most a Linux "
            f"bridge takes ({validate.BRIDGE_MAX_PORTS}); cable more to another bridge"
        )


# a kept veth's (ifindex, far ifindex, the packet socket its far end kept or None)
Spare = tuple[int, int, socket.socket | None] | None


def peer_space(switch: Switch, node: str, port: str, ifname: str) -> tuple[Namespace, Spare]:
    """The namespace ``node`` for a veth ``port`` whose far end there is ``ifname``: the lab's
    own if it has one; else one a reused switch namespace kept with that very veth (then also
    the veth's ``(ifindex, far ifindex, kept socket)``, see vlab.nsspares); else a new one."""
    if node not in switch.fabric.spaces and switch.spares is not None:
        kept = switch.spares.pair(node, port, ifname)
        if kept is not None:
            space, index, far_index, sock = kept
            return space, (index, far_index, sock)
    return switch.fabric.namespace(node), None


def cable_veth(
    switch: Switch,
    cls: type[NamespacedEndpoint],
    name: str,
    br: Bridge,
    port: str,
    space: Namespace,
    ifname: str,
    mac: str,
    mtu: int | None,
    spare: Spare = None,
) -> NamespacedEndpoint:
    """A veth whose one end is ``port`` of ``br`` and whose other end, ``ifname`` with MAC
    ``mac``, is in ``space``: one netlink request (or, for a ``spare`` veth an earlier lab
    left, one per end); the endpoint reads a packet socket there."""
    port_mac = random_mac("fe")
    kept_sock = None if spare is None else spare[2]
    try:
        if spare is None:
            index = switch.index()
            far_index = space.index()
            switch.release_spares()  # before a port joins: the kernel numbers it
            switch.links.add_veth(
                port, index, port_mac, br.index, ifname, mac, space.ns.fd, far_index, mtu
            )
        else:
            index, far_index, _sock = spare
            master = None if switch.seat(index, br.index, mtu) else br.index
            switch.links.set_link(index, mac=port_mac, master=master, mtu=mtu)
        switch.on_undo(lambda: switch.links.delete(index))  # takes its peer along
        if spare is None:
            space.links.set_link(far_index)
        else:  # parked with a placeholder MAC and the default MTU
            space.links.set_link(far_index, mac=mac, mtu=mtu)
    except OSError as exc:
        if exc.errno in limits.FD_ERRNOS:
            raise
        raise LabError(
            f"{cls.kind} {name}: cannot cable {port} to {br.name}: {exc.strerror}"
        ) from None
    if kept_sock is None:
        with space.ns.entered():
            pp = PacketPort(ifname)
    else:
        pp = PacketPort(ifname, kept_sock)
    switch.own_socket(pp)
    ep = cls(switch, name, mac, port, br, pp, space, ifname, far_index)
    switch.register(ep, br, index, port_mac)
    switch.pairs.append(Pair(port, index, space.ns.name, ifname, far_index))
    switch.pair_socks[port] = pp.sock
    return ep


class Builder:
    """The building calls, over one switch namespace (``self.switch``)."""

    switch: Switch
    _guard: LabGuard

    @building
    def bridge(self, name: str, **options: Any) -> Bridge:
        """A Linux bridge in the switch namespace, with options in friendly names and units."""
        switch = self.switch
        switch.fabric.check_name(name, "bridge")
        encoded = encode_bridge(options)  # everything validated before anything is built
        check_bridge_options(encoded, False, f"bridge {name}")
        mac = encoded.pop("mac", None) or random_mac("02")
        mtu = encoded.pop("mtu", None)
        if encoded.get("vlan_filtering") == 0:
            del encoded["vlan_filtering"]  # the default; kernels without the feature refuse it
        # mcast_querier in the same message as the query intervals starts with the old ones.
        # The MLD querier also needs the bridge's link-local address first: Bridge.set does both.
        querier = encoded.pop("multicast_querier", None)
        index = switch.bridge_index()
        data = pack_data(BRIDGE_OPTIONS, encoded)
        try:
            adopt = switch.adopt
            if adopt is None or not adopt(name, index, mac, data, mtu):
                switch.links.add_bridge(name, index, mac, data, mtu)
        except OSError as exc:
            shown = ", ".join(f"{k}={v!r}" for k, v in options.items())
            if exc.errno == 95:  # EOPNOTSUPP: e.g. vlan_filtering without the config option
                raise Unsupported(f"bridge {name}: this kernel does not support {shown}") from None
            raise LabError(f"cannot create bridge {name} with {shown}: {exc.strerror}") from None
        from vlab import readback

        try:
            if encoded:  # options a kernel may silently ignore: ask it what it took
                readback.check(BRIDGE_OPTIONS, encoded, switch.rtnl.bridge_data(index), name)
        except Unsupported:
            with suppress_os():
                switch.links.delete(index)  # a failed call leaves nothing
            raise
        br = Bridge(switch, name, index, mac)
        br.stp = bool(encoded.get("stp"))
        if br.stp:
            from vlab.stp import filter_bpdus

            filter_bpdus(switch)  # its BPDUs are lab noise (kept in the pcaps)
        br.vlan_filtering = bool(encoded.get("vlan_filtering"))
        switch.fabric.bridges[name] = br
        if querier is not None:
            switch.release_spares()  # the querier acts on ports as they come: none seated
            try:
                br.set(multicast_querier=bool(querier))
            except BaseException:
                del switch.fabric.bridges[name]  # a failed call leaves nothing
                with suppress_os():
                    switch.links.delete(index)
                raise
        return br

    def _own_bridge(self, bridge: Bridge | str) -> Bridge:
        br = self.switch.fabric.bridge_of(bridge)
        if br.switch is not self.switch:
            raise LabError(
                f"bridge {br.name} is in switch namespace {br.switch.name}, not "
                f"{self.switch.name}: build on it through its own namespace"
            )
        return br

    @building
    def vm(
        self,
        name: str,
        bridge: Bridge | str | Sequence[Bridge | str] | None = None,
        mac: str | None = None,
        mtu: int | None = None,
        guest: str | None = None,
        macvtap: object = None,
        mode: str | None = None,
    ) -> VM:
        """A VM whose vNIC is a tap on ``bridge``; vlab holds the tap fd as QEMU would.

        ``guest="qemu"`` boots a real Linux guest on that tap instead of emulating one.
        ``macvtap=nic, mode="bridge"`` makes the vNIC a macvtap on ``nic`` (a host, an uplink
        or a bare port) instead: libvirt's ``direct`` attachment (see :mod:`vlab.macvtap`).
        ``bridge=[br1, br2]`` gives it a NIC on each (``vm.nics``; see :mod:`vlab.nics`).
        """
        switch = self.switch
        switch.fabric.check_name(name, "vm")
        if (bridge is None) == (macvtap is None):
            raise LabError(f"vm {name}: give either bridge= (a tap) or macvtap= (a lower NIC)")
        if mode is not None and macvtap is None:
            raise LabError(f"vm {name}: mode= is a macvtap's; give macvtap= with it")
        if macvtap is not None or isinstance(bridge, list | tuple):
            from vlab import nics

            switch.release_spares()
            return nics.special_vm(self, name, bridge, mac, mtu, guest, macvtap, mode)
        br = self._own_bridge(bridge)  # type: ignore[arg-type]
        mtu = endpoint_mtu("vm", name, mtu)
        mac = endpoint_mac("vm", name, mac, "52:54:00")
        tap_mac = "fe" + mac[2:]  # libvirt's rule: never the guest's MAC, never the bridge's
        if guest not in (None, "qemu"):
            raise LabError(f"vm {name}: guest={guest!r} is not known; use guest='qemu' or None")
        check_room(br, f"vm {name}")
        if guest == "qemu":
            from vlab import guests

            guests.check_available(name)
        with switch.rollback():
            # an emulated VM attaches to the tap of that name an earlier lab's VM left, if the
            # switch namespace is a reused one (vlab.nsspares): no device made or destroyed
            port = switch.next_name("vnet", spare=guest is None)
            spare = switch.spares.tap(port) if guest is None and switch.spares else None
            kept_sock = None  # the stamping socket a spare tap kept
            if spare is None:
                with switch.ns.entered():
                    fd = taplib.open_tap(port)
                switch.own_tap(fd)
                index = switch.links.index_of(port)
                switch.space.claim(index)
                set_noqueue(switch.rtnl, index)  # while down: no qdisc swap to wait on
            else:
                index, fd, kept_sock = spare  # parked with noqueue, its fd held all along
                switch.own_tap(fd)
            # the emulated VM reads a stamping socket on its tap (see TapPort); a guest's
            # tap is watched by a packet socket instead (see vlab.guests)
            if guest is None and kept_sock is not None:
                io: FrameIO = TapPort(fd, port, mtu or 1500, TAP_TXQLEN, kept_sock)
                switch.own_socket(io)
            elif guest is None:
                try:
                    with switch.ns.entered():
                        io = TapPort(fd, port, mtu or 1500, txqlen=TAP_TXQLEN)
                except OSError as exc:
                    problem = limits.fd_limit_error(exc, f"vm {name}: cannot watch tap {port}")
                    raise problem or LabError(
                        f"vm {name}: cannot watch tap {port}: {exc.strerror}"
                    ) from None
                switch.own_socket(io)
            else:
                from vlab import guests

                io = guests.guest_port(switch, fd, port, mtu or 1500)
            seated = spare is not None and guest is None and switch.seat(index, br.index, mtu)
            if not seated:
                switch.release_spares()  # before a port joins: the kernel numbers it
            try:
                switch.links.set_link(
                    index,
                    mac=tap_mac,
                    master=None if seated else br.index,
                    mtu=mtu,
                    txqlen=TAP_TXQLEN,
                )
            except OSError as exc:
                raise LabError(
                    f"vm {name}: cannot attach {port} to {br.name}: {exc.strerror}"
                ) from None
            if guest is None:
                switch.plain_taps[index] = fd
                assert isinstance(io, TapPort) and io.sock is not None
                switch.plain_socks[index] = io.sock
            vm = VM(switch, name, mac, port, br, io, fd, tap_mac)
            switch.register(vm, br, index, tap_mac)
            if guest == "qemu":
                from vlab.guests import attach_qemu

                attach_qemu(switch, vm)
        return vm

    @building
    def host(
        self,
        name: str,
        bridge: Bridge | str | Sequence[Bridge | str] | None = None,
        mac: str | None = None,
        mtu: int | None = None,
        ip: str | list[str] | None = None,
        ipv6: bool | str | list[str] | None = None,
        bond: Sequence[Bridge | str] | None = None,
        mode: str | None = None,
    ) -> Host:
        """A namespace cabled to ``bridge`` by a veth; ``host.run(...)`` runs programs in it.

        ``ip="192.0.2.1/24"`` (or a list, IPv4 and IPv6) gives eth0 addresses; ``ipv6=True``
        or IPv6 addresses turn IPv6 on in this host alone (see :mod:`vlab.ip`).
        ``bridge=[br1, br2]`` gives it a NIC on each (``host.nics``); ``bond=[br1, br2],
        mode="active-backup"`` bonds those NICs (see :mod:`vlab.nics`).
        ``bridge=None``: the veth's other end stays an interface of the switch namespace in no
        bridge, an endpoint of its own, ``host.peer`` (see :mod:`vlab.unbridged`).
        """
        from vlab import unbridged

        switch = self.switch
        switch.fabric.check_name(name, "host")
        if bond is not None:
            if bridge is not None:
                raise LabError(
                    f"host {name}: give either bridge= (its NICs) or bond= (bonded NICs)"
                )
        elif mode is not None:
            raise LabError(f"host {name}: mode= is a bond's; give bond= with it")
        if bond is not None or isinstance(bridge, list | tuple):
            from vlab import nics

            switch.release_spares()
            return nics.special_host(self, name, bridge, mac, mtu, ip, ipv6, bond, mode)
        br = self._own_bridge(bridge) if bridge is not None else None  # type: ignore[arg-type]
        if br is None and unbridged.peer_name(name) in switch.fabric.endpoints:
            raise LabError(f"host name {name!r}: {unbridged.peer_name(name)} is already used")
        mtu = endpoint_mtu("host", name, mtu)
        mac = endpoint_mac("host", name, mac, "02")
        ips = iplib.interfaces(ip, f"host {name} ip")
        want6, ips6 = iplib.ipv6_request(ipv6, f"host {name}")
        if br is not None:
            check_room(br, f"host {name}")
        with switch.rollback():
            port = switch.next_name("veth", spare=br is not None)
            if br is None:
                switch.release_spares()
                space = switch.fabric.namespace(name)
                ep: NamespacedEndpoint = unbridged.cable_lone_host(
                    switch, name, port, space, mac, mtu
                )
            else:
                space, spare = peer_space(switch, name, port, "eth0")
                ep = cable_veth(switch, Host, name, br, port, space, "eth0", mac, mtu, spare)
            assert isinstance(ep, Host)
            iplib.configure_host(space.ns, space.rtnl, "eth0", ep.ifindex, ips + ips6, want6)
        return ep

    @building
    def uplink(
        self,
        bridge: Bridge | str,
        mac: str | None = None,
        mtu: int | None = None,
        name: str | None = None,
        kind: str = "veth",
    ) -> Uplink:
        """The bridge's pNIC port; its far end, in the upstream namespace, is the network.

        Only a veth carries frames both ways, so that is the default. ``kind="dummy"`` makes
        the port a dummy link of the switch namespace (see :mod:`vlab.dummy`): it receives what
        the bridge sends and can be watched, but injects nothing (``send()`` is a LabError);
        ``Unsupported`` (a skip) where the kernel lacks the dummy link type.
        """
        switch = self.switch
        br = self._own_bridge(bridge)
        if kind not in ("veth", "dummy"):
            raise LabError(f"uplink kind={kind!r}: choose 'veth' (default) or 'dummy'")
        if name is None:
            taken = switch.fabric.endpoints
            name = "uplink" if "uplink" not in taken else f"uplink-{br.name}"[:15]
        switch.fabric.check_name(name, "uplink")
        mtu = endpoint_mtu("uplink", name, mtu)
        mac = endpoint_mac("uplink", name, mac, "02")
        check_room(br, f"uplink {name}")
        if kind == "dummy":
            from vlab.dummy import add_dummy_uplink

            switch.release_spares()
            with switch.rollback():
                return add_dummy_uplink(switch, br, name, mac, mtu)
        with switch.rollback():
            port = switch.next_name("eth", spare=True)
            space, spare = peer_space(switch, switch.upstream, port, port)
            ep = cable_veth(switch, Uplink, name, br, port, space, port, mac, mtu, spare)
            assert isinstance(ep, Uplink)
        return ep

    @guarded
    def port(self, bridge: Bridge | str, mac: str | None = None) -> Port:
        """A bare port of ``bridge`` (no endpoint behind it) with MAC ``mac``: a local fdb
        entry, a port to detach and attach (see :mod:`vlab.ports`)."""
        from vlab.ports import bare_port

        br = self._own_bridge(bridge)
        mac = endpoint_mac("port", br.name, mac, "02")
        check_room(br, f"port on {br.name}")
        with self.switch.rollback():
            return bare_port(self.switch, br, mac)
