"""Tap devices: the kernel side of an emulated vNIC.

A tap is created in the namespace where ``/dev/net/tun`` is *opened*, and only has carrier while
an fd is attached; so the emulated VM is simply vlab holding that fd for the lab's life (QEMU does
exactly the same with the fd libvirt hands it). TUNSETPERSIST before the last close turns the
close from a synchronous unregister (~85 ms, RCU) into a no-op: the tap then dies with its
namespace.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct

from vlab.errors import LabError, Unsupported
from vlab.limits import fd_limit_error

TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
TUNSETCARRIER = 0x400454E2
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
TXQLEN = 4096  # frames a tap queues for its VM before it drops (tx_dropped)


def open_tap(name: str) -> int:
    """Create tap ``name`` in the calling thread's namespace; return its non-blocking fd."""
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        problem = fd_limit_error(exc, f"cannot open /dev/net/tun for tap {name}")
        if problem is not None:
            raise problem from None  # out of fds is a failure to fix, never a skip
        raise Unsupported(
            f"cannot open /dev/net/tun ({exc.strerror}): VM endpoints need the tun module and "
            "read-write access to /dev/net/tun (root, or chmod 0666 /dev/net/tun)"
        ) from None
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    except OSError as exc:
        os.close(fd)
        raise LabError(f"cannot create tap {name!r}: {exc.strerror}") from None
    return fd


def set_carrier(fd: int, up: bool) -> None:
    """Carrier of the tap as the vNIC's link state: down disables the bridge port."""
    fcntl.ioctl(fd, TUNSETCARRIER, struct.pack("i", int(up)))


def discard_tap(fd: int) -> None:
    """Close and unregister now (no TUNSETPERSIST): a failed build must not leave the device."""
    os.close(fd)


def release_tap(fd: int) -> None:
    """Close without waiting for an unregister; the namespace's death removes the device."""
    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, TUNSETPERSIST, 1)
    os.close(fd)
