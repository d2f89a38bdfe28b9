"""Real QEMU guests on a VM's tap: the lab side of :mod:`vlab.qemu`.

The tap is created and attached exactly as for an emulated VM; its fd then goes to QEMU
(``-netdev tap,fd=N``, libvirt's way). Guests boot in the background: building several VMs and
then sending boots them in parallel, and the first use of a guest (a send, an expect, ``run``)
waits for it to be ready.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlab.capture import GuestTapPort
from vlab.errors import Unsupported

if TYPE_CHECKING:
    from vlab.endpoints import VM
    from vlab.switch import Switch

BOOT_TIMEOUT = 90.0  # TCG on a loaded 2-core CI machine; a guest boots in ~1.5 s when idle


def check_available(name: str) -> None:
    """Before anything is built: a host without QEMU makes a guest VM a skip."""
    from vlab.qemu import qemu_unavailable

    reason = qemu_unavailable()
    if reason is not None:
        raise Unsupported(f"vm {name}: cannot boot a QEMU guest: {reason}")


def guest_port(switch: Switch, tap_fd: int, port: str, mtu: int) -> GuestTapPort:
    """The capture of a guest's tap: a packet socket on it, never a read of the guest's fd."""
    with switch.ns.entered():
        io = GuestTapPort(tap_fd, port, mtu)
    switch.own_socket(io)
    return io


def attach_qemu(switch: Switch, vm: VM) -> None:
    """Boot a QEMU guest on ``vm``'s tap (in the background); it closes with the lab."""
    from vlab.qemu import QemuGuest

    workdir = switch.fabric.guest_dir()
    vm.guest = QemuGuest.start(name=vm.name, tap_fd=vm.tap_fd, mac=vm.mac, workdir=workdir)
    switch.own_guest(vm.guest)


__all__ = ["BOOT_TIMEOUT", "attach_qemu", "check_available", "guest_port"]
