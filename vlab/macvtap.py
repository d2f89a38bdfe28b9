"""macvtap VMs: libvirt's ``direct`` attachment, a VM NIC stacked on a host NIC.

``lab.vm("vm1", macvtap=nic, mode="bridge")`` makes a macvtap on ``nic`` (the *lower* device:
a host's ``eth0``, the uplink's far end, or the spare end of a bare ``lab.port``) with the VM's
MAC, and holds its character device open exactly as QEMU holds the fd libvirt gives it (see
:mod:`vlab.chardev`). There is no bridge port for the VM: its frames leave through the lower
device, whose cable is a port of a lab bridge — the switch the hypervisor's NIC is plugged into.

The four modes are the kernel's (drivers/net/macvlan.c):

- ``bridge``: macvtaps on one lower device reach each other directly, never via the wire;
- ``vepa``: everything goes out of the lower device; a frame for a sibling comes back only if
  the switch sends it back out of the port it came in on (``hairpin`` on that bridge port);
- ``private``: like vepa, but a frame coming back for a sibling is dropped: siblings never talk;
- ``passthru``: one macvtap owns the lower device (which turns promiscuous): only one VM.

What a macvtap VM receives is read from its fd, stamped by a packet socket on the macvtap
device (frames it *receives* there: the opposite direction of a tap, which transmits to its VM).
"""

from __future__ import annotations

import errno
import os
import socket
import time
import weakref
from functools import partial
from typing import TYPE_CHECKING

from vlab import limits
from vlab.bcqueue import BroadcastBarrier, is_marker
from vlab.capture import GuestTapPort, TapPort, packet_socket
from vlab.chardev import open_macvtap
from vlab.endpoints import VM, Endpoint, Host, Uplink
from vlab.errors import LabError, Unsupported
from vlab.guard import guarded
from vlab.rtnl import set_noqueue
from vlab.stacked import MACVLAN_MODES, add_macvtap

if TYPE_CHECKING:
    from vlab.bridge import Bridge
    from vlab.capture import Record
    from vlab.endpoints import FrameIO
    from vlab.lab import Lab
    from vlab.stats import LinkStats
    from vlab.switch import Namespace, Switch

MODES = tuple(MACVLAN_MODES)
MACVTAP_TXQLEN = 4096  # the char device's queue: frames kept for the VM before a drop


class MacvtapPort(TapPort):
    """The VM's side of a macvtap: its fd, and a packet socket seeing what the VM receives.

    On a macvtap, the frames for the VM are *received* by the macvtap device (the macvlan
    receive handler hands them to it, and its own handler queues them for the fd), so the
    stamping socket keeps incoming frames only; what the VM writes leaves as outgoing.
    """

    def __init__(self, fd: int, ifname: str, mtu: int, txqlen: int) -> None:
        self.fd = fd
        self.ifname = ifname
        self.mtu = mtu
        self.txqlen = txqlen
        self.maybe_dropped = False
        self.owed = 0
        self.sock = self._counted(packet_socket(ifname, outgoing=False))


class MacvtapGuestPort(GuestTapPort):
    """A macvtap whose fd belongs to a QEMU guest: watched, never read (see GuestTapPort).

    Directions are a tap's reversed: incoming on the macvtap is what the guest receives.
    """

    def drain(self) -> list[Record]:
        """What the guest received since the last drain (incoming on the macvtap); what it
        sent goes to ``guest_sent``, for the pcap."""
        records = super().drain()  # outgoing there: what the guest sent, here
        guest_sent, self.guest_sent = self.guest_sent, records
        return guest_sent


class _CharDev:
    """The macvtap fd as the switch closes it: the close waits for an RCU grace period
    (~20 ms), so it is done off the critical path like a packet socket's."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.sock = self

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


class _Owned:
    """A socket the switch closes with its packet sockets (its reaper takes ``.sock``)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def close(self) -> None:
        self.sock.close()


_barriers: weakref.WeakKeyDictionary[Lab, BroadcastBarrier] = weakref.WeakKeyDictionary()


def _barrier(switch: Switch) -> BroadcastBarrier:
    """The lab's broadcast-queue barrier, made and hooked into its settle on first use."""
    lab = switch.lab
    barrier = _barriers.get(lab)
    if barrier is None:
        barrier = _barriers[lab] = BroadcastBarrier()
        lab.add_settle_probe(partial(_flush, barrier))
    if is_marker not in switch.noise:
        switch.noise.append(is_marker)
    return barrier


def _flush(barrier: BroadcastBarrier) -> int:
    return barrier.drain(time.monotonic() + 10.0)


class MacvtapVM(VM):
    """A VM whose vNIC is a macvtap on a lower device (``lab.vm(..., macvtap=nic)``).

    ``port`` is the macvtap's name, ``bridge`` the bridge the lower device is cabled to,
    ``lower`` a text naming the lower device, ``mode`` the macvtap mode, ``space``/``ifindex``
    the macvtap's namespace and index (its counters: :meth:`stats`).
    """

    carrier_from_birth = False
    space: Namespace
    ifindex: int
    lower: str
    lower_key: tuple[int, int]  # (namespace inode, ifindex) of the lower device
    mode: str

    @guarded
    def set_carrier(self, up: bool) -> None:
        """Link down/up of the macvtap (a guest NIC taken down): it then receives nothing,
        and its MAC leaves the macvlan port (frames for it go out to the switch)."""
        from vlab import validate

        up = validate.flag(up, f"vm {self.name}: set_carrier(up)")
        self.check_alive()
        self.space.links.set_link(self.ifindex, up=up)
        self.space.links.link_state(self.ifindex)
        self.carrier = up
        self.switch.topology_changed()

    def apply_carrier(self, up: bool) -> None:
        """The macvtap's administrative state (see :meth:`set_carrier`)."""
        self.space.links.set_link(self.ifindex, up=up)

    def stats(self) -> LinkStats:
        """The macvtap's counters: rx is what the VM received, tx what it sent."""
        from vlab.stats import read

        self.switch.guard.check()
        return read(self.space, self.ifindex, f"vm {self.name}'s macvtap {self.port}")

    def not_ready(self) -> list[str]:
        """The macvtap must be up with a qdisc (the lower's cable is the switch's to check)."""
        from vlab.switch import link_ready

        if link_ready(self.space.links, self.ifindex, False):
            return []
        return [f"macvtap {self.port} of vm {self.name} is not up"]

    @property
    def show_kind(self) -> str:
        """What ``vlab show`` lists it as: ``vm/macvtap MODE``."""
        return f"vm/macvtap {self.mode}"

    def loss_link(self) -> int:
        """No bridge port of its own: no port counter counts its losses (see vlab.loss)."""
        return 0

    def describe(self) -> str:
        """One line: the guest's MAC, the macvtap and its mode, the lower device."""
        kind = "qemu guest" if self.guest is not None else "guest"
        return (
            f"vm {self.name}: {kind} mac {self.mac} -> macvtap {self.port} mode {self.mode} on "
            f"{self.lower} (cabled to {self.bridge.name})"
        )


def _lower(switch: Switch, target: object) -> tuple[Namespace, str, int, Bridge, str, str]:
    """(namespace, ifname, ifindex, bridge it is cabled to, description, the bridge port at
    the other end of its cable) of a lower device."""
    from vlab.bridge import Port

    lab = switch.lab
    if isinstance(target, Port):
        if target.bridge.lab is not lab:
            raise LabError(f"port {target.name} belongs to another lab")
        if target.endpoint is None:
            if target.bridge.ports.get(target.name) is not target:
                raise LabError(f"port {target.name} is no longer a port of {target.bridge.name}")
            space = target.bridge.switch.space
            peer = f"{target.name}p"
            try:
                index = space.links.index_of(peer)
            except OSError:
                raise LabError(
                    f"macvtap={target.name}: only bare ports (lab.port) have a spare end to "
                    "stack a macvtap on; give the endpoint cabled to a port instead"
                ) from None
            what = f"{peer} (spare end of {target.name})"
            return space, peer, index, target.bridge, what, target.name
        target = target.endpoint
    if isinstance(target, Endpoint) and target.lab is not lab:
        raise LabError(f"{target.kind} {target.name} belongs to another lab")
    if isinstance(target, Host | Uplink) and not target.carrier_from_birth:
        if target.bridge is None:
            raise LabError(
                f"macvtap={target.name}: {target.kind} {target.name} is in no bridge; stack "
                "macvtaps on a NIC cabled to a bridge"
            )
        what = f"{target.kind} {target.name}'s {target.ifname}"
        return target.space, target.ifname, target.ifindex, target.bridge, what, target.port
    if isinstance(target, VM):
        raise LabError(
            f"macvtap={target.name}: a VM's NIC cannot be the lower device of a macvtap; "
            "give a host, an uplink or a bare port (lab.port(br))"
        )
    raise LabError(
        f"macvtap={target!r}: give the lower device as a host, an uplink (veth) or a bare "
        "port (lab.port(br)) of this lab"
    )


def _check_mode(switch: Switch, name: str, mode: object, key: tuple[int, int], lower: str) -> str:
    if mode not in MACVLAN_MODES:
        raise LabError(f"vm {name}: macvtap mode={mode!r}: choose one of {', '.join(MODES)}")
    siblings = [
        ep
        for ep in switch.fabric.endpoints.values()
        if isinstance(ep, MacvtapVM) and ep.lower_key == key
    ]
    if siblings and (mode == "passthru" or any(s.mode == "passthru" for s in siblings)):
        holders = ", ".join(f"{s.name} ({s.mode})" for s in siblings)
        raise LabError(
            f"vm {name}: a passthru macvtap owns its lower device alone, and {lower} already "
            f"has {holders}; give each passthru VM a NIC of its own"
        )
    return str(mode)


def add_vm(
    builder_switch: Switch,
    name: str,
    target: object,
    mode: object,
    mac: str,
    mtu: int | None,
    guest: str | None,
) -> MacvtapVM:
    """Build a macvtap VM on ``target`` (see :class:`MacvtapVM`); called by ``lab.vm``.

    The VM belongs to the switch of the bridge its lower device is cabled to.
    """
    space, _ifname, lower_index, br, what, cable_port = _lower(builder_switch, target)
    switch = br.switch
    key = (space.ns.inode, lower_index)
    checked = _check_mode(switch, name, mode if mode is not None else "bridge", key, what)
    if guest == "qemu":
        from vlab import guests

        guests.check_available(name)
    with switch.rollback():
        ifname = switch.next_name("macvtap")
        index = space.index()
        try:
            add_macvtap(space.links, ifname, index, lower_index, checked, mac, mtu, MACVTAP_TXQLEN)
        except OSError as exc:
            if exc.errno in limits.FD_ERRNOS:
                raise
            if exc.errno == errno.EOPNOTSUPP:
                raise Unsupported("this kernel has no macvtap link type (CONFIG_MACVTAP)") from None
            hint = " (a macvtap's MTU cannot exceed its lower device's)" if mtu else ""
            raise LabError(
                f"vm {name}: cannot add macvtap {ifname} on {what}: {exc.strerror}{hint}"
            ) from None
        switch.on_undo(lambda: space.links.delete(index))
        fd = open_macvtap(space.ns, ifname, index)
        switch.own_socket(_CharDev(fd))
        try:
            set_noqueue(space.rtnl, index)  # while down: no qdisc for a frame to wait in
            space.links.set_link(index)
            with space.ns.entered():
                io: FrameIO = (
                    MacvtapPort(fd, ifname, mtu or 1500, MACVTAP_TXQLEN)
                    if guest is None
                    else MacvtapGuestPort(fd, ifname, mtu or 1500)
                )
        except OSError as exc:
            problem = limits.fd_limit_error(exc, f"vm {name}: cannot watch macvtap {ifname}")
            raise problem or LabError(f"vm {name}: cannot watch {ifname}: {exc.strerror}") from None
        switch.own_socket(io)
        vm = MacvtapVM(switch, name, mac, ifname, br, io, fd, mac)
        vm.space, vm.ifindex, vm.lower, vm.lower_key, vm.mode = space, index, what, key, checked
        barrier = _barrier(switch)
        try:
            opened = barrier.add(
                key, space, lower_index, switch.space, cable_port, ifname, lambda: vm.carrier
            )
        except OSError as exc:
            problem = limits.fd_limit_error(exc, f"vm {name}: cannot watch macvtap {ifname}")
            raise problem or LabError(f"vm {name}: cannot watch {ifname}: {exc.strerror}") from None
        for sock in opened:
            switch.own_socket(_Owned(sock))
        switch.on_undo(lambda: barrier.discard(key, opened))
        switch.register_endpoint(vm)
        if guest == "qemu":
            from vlab.guests import attach_qemu

            attach_qemu(switch, vm)
    return vm


__all__ = ["MODES", "MacvtapGuestPort", "MacvtapPort", "MacvtapVM", "add_vm"]
