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
    from vlab.lab import Lab

BOOT_TIMEOUT = 90.0  # TCG on a loaded 2-core CI machine; a guest boots in ~1.5 s when idle


def attach_qemu(lab: Lab, vm: VM) -> None:
    from vlab.qemu import QemuGuest, qemu_unavailable

    reason = qemu_unavailable()
    if reason is not None:
        raise Unsupported(f"vm {vm.name}: cannot boot a QEMU guest: {reason}")
    workdir = lab.guest_dir()
    with lab._switch.ns.entered():
        io = GuestTapPort(vm.tap_fd, vm.port, vm._io.mtu)  # type: ignore[attr-defined]
    lab._sockets.append(io)  # type: ignore[arg-type]
    vm._io = io
    vm._log_sends = False  # the tap socket sees the guest's frames, ours included
    vm.guest = QemuGuest.start(name=vm.name, tap_fd=vm.tap_fd, mac=vm.mac, workdir=workdir)
    lab._guests.append(vm.guest)


__all__ = ["BOOT_TIMEOUT", "attach_qemu"]
