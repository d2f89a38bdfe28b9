"""A tap in a throwaway network namespace: the far end of a guest's cable, without the lab core.

The namespace is made by ``unshare(CLONE_NEWNET)`` on a short-lived thread, so the process (and
the host's root namespace) is never touched; the tap fd and the packet socket opened there keep it
alive, and closing them makes it vanish.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4

GUEST_MAC = "52:54:00:7e:57:01"

_libc = ctypes.CDLL(None, use_errno=True)


class WireUnavailable(Exception):
    """This process cannot make a namespace or a tap (not root, no /dev/net/tun)."""


@dataclass
class Wire:
    """Host end of a guest's tap: the fd QEMU gets, and a packet socket to watch and inject."""

    name: str
    tap_fd: int
    packets: socket.socket

    def send(self, frame: bytes) -> None:
        """Transmit on the tap: the frame comes out of the tap fd, i.e. into the guest."""
        self.packets.send(frame)

    def receive(self, match: Callable[[bytes], bool], timeout: float = 5.0) -> bytes | None:
        """The first frame from the guest for which ``match`` is true, or None at the deadline."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            if not select.select([self.packets], [], [], remaining)[0]:
                break
            frame, address = self.packets.recvfrom(65536)
            if address[2] != PACKET_OUTGOING and match(frame):
                return frame
        return None

    def close(self) -> None:
        self.packets.close()
        os.close(self.tap_fd)


def _make(name: str) -> Wire:
    if _libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise WireUnavailable(f"unshare(CLONE_NEWNET): {os.strerror(err)}")
    # Nothing but test frames on this wire: no IPv6 chatter from the tap side. (/proc/sys/net
    # shows the namespace of the task that opens it: this thread's.)
    try:
        with open("/proc/sys/net/ipv6/conf/default/disable_ipv6", "w") as f:
            f.write("1")
    except FileNotFoundError:
        pass
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR)
    except OSError as e:
        raise WireUnavailable(f"/dev/net/tun: {e.strerror}") from None
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ctl:
        ifreq = fcntl.ioctl(ctl, SIOCGIFFLAGS, struct.pack("16sH", name.encode(), 0))
        flags = struct.unpack_from("16sH", ifreq)[1]
        fcntl.ioctl(ctl, SIOCSIFFLAGS, struct.pack("16sH", name.encode(), flags | IFF_UP))
    packets = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    packets.bind((name, 0))
    return Wire(name, fd, packets)


def open_wire(name: str = "vlabtap0") -> Wire:
    """A fresh namespace holding one up tap named ``name``; raises WireUnavailable if impossible."""
    outcome: list[Wire | BaseException] = []

    def build() -> None:
        try:
            outcome.append(_make(name))
        except BaseException as e:
            outcome.append(e)

    thread = threading.Thread(target=build, name="vlab-test-netns")
    thread.start()
    thread.join()
    result = outcome[0]
    if isinstance(result, PermissionError):
        raise WireUnavailable(str(result))
    if isinstance(result, BaseException):
        raise result
    return result


def wire_or_skip(name: str = "vlabtap0") -> Wire:
    """:func:`open_wire`, or skip the test saying why this machine cannot."""
    try:
        return open_wire(name)
    except WireUnavailable as e:
        pytest.skip(f"cannot make a namespace with a tap here: {e}")
