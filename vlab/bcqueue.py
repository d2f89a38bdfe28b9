"""The one queue of a macvtap lab that no kernel counter shows: macvlan's broadcast queue.

A broadcast or multicast frame that a macvlan lower device receives (from the wire, or a VEPA
sibling's frame reflected by the switch) is not handed to the macvtaps at once: it is put on the
port's ``bc_queue`` and delivered by a work item (drivers/net/macvlan.c
``macvlan_broadcast_enqueue``/``macvlan_process_broadcast``). Until a kernel worker runs, the
frame is in no qdisc, no backlog and no socket, so :func:`vlab.quiesce.settle` could call a
lab quiet while a broadcast is still on its way to a VM (measured: 120 of 900 broadcasts were
not yet at their macvtap when a settle without this barrier returned).

The barrier: whenever a lower device has received anything since the last barrier (its
``rx_packets``, which a veth counts when its peer transmits), a marker broadcast is sent into
it from the other end of its cable. The queue is first in, first out, so once the marker has
reached one of the lower device's macvtaps, everything queued before it has been delivered. The
marker is lab noise: no endpoint ever reports it.
"""

from __future__ import annotations

import ctypes
import select
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vlab.capture import SO_ATTACH_FILTER, packet_socket
from vlab.errors import LabError
from vlab.rtnl import link_stats64

if TYPE_CHECKING:
    from vlab.switch import Namespace

MARKER_SRC = bytes.fromhex("02766c616200")  # "vlab" in a locally administered MAC
MARKER_TYPE = 0x88B5
MARKER = b"\xff" * 6 + MARKER_SRC + struct.pack("!H", MARKER_TYPE) + b"vlab-bcqueue-barrier"
WAIT = 2.0  # the worker runs within microseconds on an idle machine


def is_marker(frame: bytes) -> bool:
    """Whether ``frame`` is a barrier marker (lab noise, never shown to a test)."""
    return frame[6:12] == MARKER_SRC and frame[14:] == MARKER[14:]


def _marker_filter(sock: socket.socket) -> None:
    """Keep only markers on the watching socket (cBPF: source MAC's first 4 bytes, type)."""
    prog = struct.pack(
        "=" + "HBBI" * 6,
        *(0x28, 0, 0, 12),  # ldh [12]
        *(0x15, 0, 3, MARKER_TYPE),  # jeq type, else drop
        *(0x20, 0, 0, 6),  # ld [6]
        *(0x15, 0, 1, int.from_bytes(MARKER_SRC[:4], "big")),
        *(0x06, 0, 0, 0xFFFF),
        *(0x06, 0, 0, 0),
    )
    code = ctypes.create_string_buffer(prog)
    fprog = struct.pack("=HxxxxxxQ", 6, ctypes.addressof(code))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


@dataclass
class _Lower:
    """One lower device with macvtaps: where to inject markers and where to see them."""

    space: Namespace  # the lower device's namespace
    index: int  # its ifindex
    inject: socket.socket  # send-only, on the other end of its cable
    # one per macvtap on it, with whether that macvtap is up (a down one never sees a marker)
    watches: list[tuple[socket.socket, Callable[[], bool]]] = field(default_factory=list)
    seen_rx: int = -1  # rx_packets of the lower when the last barrier was passed


class BroadcastBarrier:
    """Every lower device of a lab's macvtaps, flushed on demand (see the module docstring)."""

    def __init__(self) -> None:
        self.lowers: dict[tuple[int, int], _Lower] = {}

    def add(
        self,
        key: tuple[int, int],
        space: Namespace,
        index: int,
        inject_space: Namespace,
        inject_ifname: str,
        macvtap: str,
        is_up: Callable[[], bool],
    ) -> list[socket.socket]:
        """Register a macvtap on lower ``key``; returns the sockets opened (for the lab to
        close)."""
        opened: list[socket.socket] = []
        lower = self.lowers.get(key)
        if lower is None:
            with inject_space.ns.entered():
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
                try:
                    sock.bind((inject_ifname, 0))  # protocol 0: it receives nothing
                except OSError:
                    sock.close()
                    raise
            opened.append(sock)
            lower = _Lower(space, index, sock)
            self.lowers[key] = lower
        with space.ns.entered():
            watch = packet_socket(macvtap, outgoing=False)
        opened.append(watch)
        try:
            _marker_filter(watch)
        except OSError:
            watch.close()
            raise
        lower.watches.append((watch, is_up))
        return opened

    def discard(self, key: tuple[int, int], opened: list[socket.socket]) -> None:
        """Forget what :meth:`add` registered (its build failed; the lab closes the sockets)."""
        lower = self.lowers.get(key)
        if lower is None:
            return
        lower.watches = [(w, up) for w, up in lower.watches if w not in opened]
        if lower.inject in opened or not lower.watches:
            del self.lowers[key]

    def drain(self, deadline: float) -> int:
        """Flush each lower device that received something since its last barrier; returns
        how many markers went through (a settle round with one is not a clean round)."""
        passed = 0
        for lower in self.lowers.values():
            row = lower.space.watch.last.get(lower.index)
            rx = struct.unpack_from("=Q", row)[0] if row and len(row) >= 8 else -2
            if rx == lower.seen_rx:
                continue
            fresh = link_stats64(lower.space.rtnl, lower.index)
            before = struct.unpack_from("=Q", fresh)[0] if fresh else 0
            watches = [watch for watch, is_up in lower.watches if is_up()]
            for watch in watches:
                _empty(watch)
            if not watches:  # no macvtap up: nothing can be on its way to one
                lower.seen_rx = before
                continue
            try:
                lower.inject.send(MARKER)
            except OSError:
                lower.seen_rx = before  # the cable is down: nothing reaches the lower device
                continue
            _await_marker(watches, deadline)
            lower.seen_rx = before + 1  # everything up to and including the marker is flushed
            passed += 1
        return passed

    def close(self) -> list[socket.socket]:
        """The sockets to close (the lab's reaper closes them off the critical path)."""
        out = []
        for lower in self.lowers.values():
            out.append(lower.inject)
            out.extend(watch for watch, _is_up in lower.watches)
        self.lowers.clear()
        return out


def _empty(sock: socket.socket) -> None:
    while True:
        try:
            sock.recv(2048, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return


def _await_marker(watches: list[socket.socket], deadline: float) -> None:
    """Until a marker shows at one of the watches (a macvtap that is down never shows it)."""
    poller = select.poll()
    for watch in watches:
        poller.register(watch.fileno(), select.POLLIN)
    limit = min(deadline, time.monotonic() + WAIT)
    while True:
        for fd, _events in poller.poll(max(0.0, limit - time.monotonic()) * 1000):
            sock = next(w for w in watches if w.fileno() == fd)
            try:
                if is_marker(sock.recv(2048, socket.MSG_DONTWAIT)):
                    return
            except BlockingIOError:
                pass
        if time.monotonic() >= limit:
            raise LabError(
                "a macvlan broadcast queue did not deliver its frames within "
                f"{WAIT:g} s (the kernel worker that empties it has not run)"
            )


__all__ = ["BroadcastBarrier", "is_marker"]
