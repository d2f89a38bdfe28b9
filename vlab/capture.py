"""Frame I/O at the edge of a lab: AF_PACKET sockets, tap fds, and pcap files.

scapy's own sendp/sniff keep a process-wide interface cache that goes wrong across namespaces, so
frames move through sockets opened inside the right namespace and scapy only builds and parses.
Receive paths use PACKET_AUXDATA: the kernel strips an 802.1Q tag into skb metadata on receive,
and a capture that ignored it would show a tagged frame as untagged.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import socket
import struct
import time
from collections.abc import Iterable
from pathlib import Path

from vlab.errors import LabError

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_IGNORE_OUTGOING = 23
SO_TIMESTAMPNS = 35
SO_RCVBUFFORCE = 33
SO_ATTACH_FILTER = 26
PACKET_STATISTICS = 6
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6
_AUX = struct.Struct("=IIIHHHH")
_TPACKET_STATS = struct.Struct("=II")
_CMSG_SPACE = socket.CMSG_SPACE(_AUX.size) + socket.CMSG_SPACE(16)
_SNAP = 65536 + 4
# how long a send waits for room in its socket's send buffer: frames the kernel holds longer
# than this are stuck, not late
SEND_WAIT = 10.0
MAX_TRUESIZE = 1 << 20  # an skb's memory charge; a lab frame (<= 64 KiB) stays well below

Record = tuple[int, bytes]  # (timestamp in ns, frame)


def restore_vlan(frame: bytes, tci: int, tpid: int) -> bytes:
    """Put back the 802.1Q tag the kernel moved into metadata, as it was on the wire."""
    return frame[:12] + struct.pack("!HH", tpid, tci) + frame[12:]


def packet_socket(ifname: str, outgoing: bool) -> socket.socket:
    """A non-blocking AF_PACKET socket on ``ifname`` in the calling thread's namespace.

    Protocol 0 first and ETH_P_ALL at bind: creating the socket with ETH_P_ALL registers a
    global hook and then re-registers it on bind, a synchronize_net() (~3 ms) for nothing.
    ``outgoing=False`` leaves out what the interface transmits (what the port sends itself).
    Sends go through the device's qdisc, so a shaper a test puts there applies to them too.
    """
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
    try:
        sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        if not outgoing:
            sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        _big_receive_buffer(sock)
        sock.bind((ifname, ETH_P_ALL))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _big_receive_buffer(sock: socket.socket) -> None:
    """Room for a burst of frames between two drains.

    SO_RCVBUFFORCE goes past net.core.rmem_max but needs CAP_NET_ADMIN in the initial user
    namespace; a rootless lab gets what rmem_max allows.
    """
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)


def _from_ancillary(data: bytes, ancillary: list[tuple[int, int, bytes]]) -> Record:
    """The frame as it was on the wire (tag restored) and its kernel receive time."""
    ts = 0
    for level, kind, payload in ancillary:
        if level == SOL_PACKET and kind == PACKET_AUXDATA:
            status, _len, _snap, _mac, _net, tci, tpid = _AUX.unpack_from(payload)
            if status & TP_STATUS_VLAN_VALID:
                if not status & TP_STATUS_VLAN_TPID_VALID:
                    tpid = 0x8100
                data = restore_vlan(data, tci, tpid)
        elif level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            sec, nsec = struct.unpack_from("=qq", payload)
            ts = sec * 1_000_000_000 + nsec
    return ts or time.time_ns(), data


def socket_drops(sock: socket.socket) -> int:
    """Frames the kernel dropped at this socket since the last call (its receive buffer was full).

    PACKET_STATISTICS (struct tpacket_stats: packets, drops) is reset by every read, so callers
    add the result to a running total.
    """
    _packets, drops = _TPACKET_STATS.unpack(sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
    return int(drops)


class _DropCount:
    """A socket's drops, asked of the kernel only when it can have dropped.

    A socket drops a frame only when its queue is full, and frames leave the queue only by
    being read: so until vlab has read, since the last check, at least as many frames as a
    full queue holds (its receive buffer over the largest truesize a lab frame can have), the
    socket cannot have dropped one. Only then is the kernel asked — which keeps the check
    after a single-frame expect or a settle of a quiet lab free of syscalls.
    """

    sock: socket.socket | None
    dropped = 0
    read_since_check = 0  # frames read since the kernel was last asked
    full_queue = 0  # fewest frames a full receive queue holds (0: always ask)

    def kernel_drops(self) -> int:
        """Total frames dropped at the socket so far (PACKET_STATISTICS, accumulated)."""
        if self.sock is not None and self.read_since_check >= max(self.full_queue, 1):
            self.dropped += socket_drops(self.sock)
            self.read_since_check = 0
        elif self.sock is not None and not self.full_queue:
            self.dropped += socket_drops(self.sock)  # a tiny buffer: no bound to lean on
        return self.dropped

    def _counted(self, sock: socket.socket) -> socket.socket:
        rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.full_queue = rcvbuf // MAX_TRUESIZE
        return sock


def _outgoing_only(sock: socket.socket) -> None:
    """A classic BPF filter keeping only frames the interface transmits (PACKET_OUTGOING).

    On a tap, that is exactly what the VM receives; what the VM sends is refused in the kernel,
    so a VM's own sends cost no copy and no read.
    """
    prog = struct.pack(
        "=" + "HBBI" * 4,
        *(0x20, 0, 0, 0xFFFFF000 + 4),  # ld skb->pkt_type (SKF_AD_PKTTYPE)
        *(0x15, 0, 1, PACKET_OUTGOING),  # jeq #PACKET_OUTGOING
        *(0x06, 0, 0, 0x40000),  # ret whole frame
        *(0x06, 0, 0, 0),  # ret 0: drop
    )
    code = ctypes.create_string_buffer(prog)
    fprog = struct.pack("=HxxxxxxQ", 4, ctypes.addressof(code))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def recycled(sock: socket.socket) -> socket.socket:
    """A packet socket kept on a spare link for the next lab (vlab.nsspares), made as a new one
    is: its queue emptied, its drop count and pending error cleared. The link is parked down by
    then, so nothing more arrives until a lab takes it.

    Keeping it saves what a lab would pay again: making one costs ~0.1 ms (a tap's output-only
    filter, JIT-compiled, another ~0.1 ms), and closing one waits out an RCU grace period.
    """
    while True:
        try:
            sock.recv(_SNAP)
        except BlockingIOError:
            break
        except OSError as exc:
            if exc.errno != errno.ENETDOWN:  # what the link going down left: reported once
                raise
    socket_drops(sock)
    sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    return sock


class PacketPort(_DropCount):
    """A raw socket on one interface: what arrives there and a way to send from there."""

    def __init__(self, ifname: str, sock: socket.socket | None = None) -> None:
        """Open in the calling thread's namespace (the socket stays bound to it afterwards);
        ``sock``: the socket a spare link kept, made by this class before (see
        :func:`recycled`)."""
        if sock is None:
            sock = packet_socket(ifname, outgoing=False)
        self.sock: socket.socket = self._counted(sock)
        self.ifname = ifname

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, frame: bytes) -> None:
        """Send one frame, waiting (up to :data:`SEND_WAIT`) while the socket's send buffer is
        full, as a blocking socket would.

        A sent frame stays charged to the socket until the kernel frees it: on a veth, until the
        far end's softirq has delivered it, and in a shaper, until the shaper lets it go. A
        flood outruns both when softirqs are deferred to ksoftirqd on a busy machine, or behind
        a tbf, and the non-blocking send then says EAGAIN for a frame the kernel would take a
        moment later. A packet socket also keeps ENETDOWN from the moment its link last went
        down and reports it on the next send, even once the link is back up: that stale error
        is cleared (SO_ERROR) and the send tried once more; a link still down fails again."""
        try:
            self._send_when_room(frame)
        except OSError as exc:
            if exc.errno != errno.ENETDOWN:
                raise _send_error(self.ifname, frame, exc) from None
            self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            try:
                self._send_when_room(frame)
            except OSError as again:
                raise _send_error(self.ifname, frame, again) from None

    def _send_when_room(self, frame: bytes) -> None:
        """Send ``frame``; while the socket says EAGAIN, retry each time it says it has room
        (POLLOUT: half of its send buffer free), until :data:`SEND_WAIT` has passed. Other
        errors are the caller's."""
        try:
            self.sock.send(frame)  # the fast path: one system call
            return
        except BlockingIOError:
            pass
        poller = select.poll()
        poller.register(self.sock, select.POLLOUT)
        deadline = time.monotonic() + SEND_WAIT
        while (left := deadline - time.monotonic()) > 0:
            poller.poll(max(1, int(left * 1000)))
            try:
                self.sock.send(frame)
                return
            except BlockingIOError:
                continue
        raise LabError(
            f"cannot send a {len(frame)}-byte frame on {self.ifname}: the kernel still held "
            f"the frames sent before it after {SEND_WAIT:g} s (its send buffer stayed full): "
            "a qdisc on that link holds them (a shaper too slow for the flood?) or the link "
            "stopped transmitting"
        )

    def drain(self) -> list[Record]:
        """Everything queued on the socket now, without blocking."""
        out = _drain_socket(self.sock)
        self.read_since_check += len(out)
        return out

    def close(self) -> None:
        self.sock.close()


def max_frame(mtu: int, frame: bytes) -> int:
    """Largest frame a NIC with this MTU puts on the wire: MTU + 14, + 4 more when tagged."""
    tagged = frame[12:14] in (b"\x81\x00", b"\x88\xa8", b"\x91\x00")
    return mtu + 14 + (4 if tagged else 0)


class TapPort(_DropCount):
    """The VM's side of a tap: frames written here enter the bridge as if the guest sent them.

    A tap would take frames of any size, but no guest NIC can send more than its MTU allows,
    and the bridge would drop such a frame silently at egress: refuse it here, as a veth does.

    What the VM receives is read from a packet socket on the tap (in the switch namespace) that
    keeps only what the tap transmits: a tap fd read carries no timestamp, and the socket's copy
    carries the kernel's transmit time. The tap fd is still drained, so its queue (txqlen
    frames) only fills when vlab does not read for that long — and a read that finds it that
    full marks the tap's own drop counter as worth checking (``maybe_dropped``).
    """

    def __init__(
        self,
        fd: int,
        ifname: str,
        mtu: int = 1500,
        txqlen: int = 0,
        sock: socket.socket | None = None,
    ) -> None:
        """Open in the namespace of the tap (the switch namespace) when ``txqlen`` is given;
        ``TapPort(fd, name, mtu)`` alone is a send-only handle. ``sock``: the stamping socket
        a spare tap kept, made by this class before (see :func:`recycled`)."""
        self.fd = fd
        self.ifname = ifname
        self.mtu = mtu
        self.txqlen = txqlen
        self.maybe_dropped = False
        self.owed = 0  # frames the socket showed that the tap fd has not yielded yet
        self.sock: socket.socket | None = None
        if txqlen and sock is not None:
            self.sock = self._counted(sock)
        elif txqlen:
            self.sock = self._counted(packet_socket(ifname, outgoing=True))
            try:
                _outgoing_only(self.sock)
            except OSError:
                self.sock.close()
                raise

    def fileno(self) -> int:
        return self.fd if self.sock is None else self.sock.fileno()

    def send(self, frame: bytes) -> None:
        if len(frame) > max_frame(self.mtu, frame) or len(frame) < 14:
            raise _send_error(self.ifname, frame, OSError(90, "Message too long"))
        try:
            os.write(self.fd, frame)
        except OSError as exc:
            raise _send_error(self.ifname, frame, exc) from None

    def drain(self) -> list[Record]:
        """What the VM received since the last drain, stamped with the kernel's transmit time.

        The socket is read first; the tap fd only while it owes frames the socket has shown
        (each socket copy is made just before the tap queues the frame), so an idle drain costs
        one read. A fd read of ``txqlen`` frames or more means the queue was full at some
        point, the only time a tap drops.
        """
        if self.sock is None:  # a send-only handle used as a reader: no kernel times
            return [(time.time_ns(), data) for data in self._read_fd()]
        out = _drain_socket(self.sock)
        self.read_since_check += len(out)
        self.owed += len(out)
        if self.owed > 0:
            n = len(self._read_fd(self.owed))
            if n >= self.txqlen:
                self.maybe_dropped = True
            self.owed -= n
        return out

    def _read_fd(self, limit: int = 1 << 62) -> list[bytes]:
        """Up to ``limit`` frames from the tap fd: the frames owed, and no read past them to
        learn that there are no more (a read that finds nothing costs an exception)."""
        out: list[bytes] = []
        read = os.read
        while len(out) < limit:
            try:
                out.append(read(self.fd, _SNAP))
            except BlockingIOError:
                break
        return out

    def resync(self) -> None:
        """Empty the tap fd and owe nothing: after a loss was forgiven, start clean."""
        self._read_fd()
        self.owed = 0
        self.maybe_dropped = False

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


def _drain_socket(sock: socket.socket) -> list[Record]:
    out: list[Record] = []
    recvmsg = sock.recvmsg
    while True:
        try:
            data, anc, _flags, _addr = recvmsg(_SNAP, _CMSG_SPACE)
        except BlockingIOError:
            return out
        except OSError as exc:
            if exc.errno != errno.ENETDOWN:
                raise
            continue  # reported once after the link went down (set_carrier): not an error
        out.append(_from_ancillary(data, anc))


def _send_error(ifname: str, frame: bytes, exc: OSError) -> LabError:
    if len(frame) < 14:
        return LabError(f"frame of {len(frame)} bytes is shorter than an Ethernet header (14)")
    if exc.errno == 90:  # EMSGSIZE
        return LabError(
            f"frame of {len(frame)} bytes is larger than {ifname}'s MTU allows "
            f"(MTU + 14, or + 18 when tagged): give that endpoint a larger mtu="
        )
    if exc.errno == errno.ENOBUFS:
        return LabError(
            f"cannot send a {len(frame)}-byte frame on {ifname}: the link's qdisc dropped it "
            "(ENOBUFS: its queue is full; a shaper's limit?)"
        )
    return LabError(f"cannot send a {len(frame)}-byte frame on {ifname}: {exc.strerror}")


PCAP_NS_MAGIC = 0xA1B23C4D
LINKTYPE_ETHERNET = 1


def write_pcap(path: Path, records: Iterable[Record]) -> Path:
    """A nanosecond-resolution pcap that tcpdump, Wireshark and scapy's rdpcap all read."""
    with open(path, "wb") as fh:
        fh.write(struct.pack("=IHHiIII", PCAP_NS_MAGIC, 2, 4, 0, 0, _SNAP, LINKTYPE_ETHERNET))
        for ts, data in records:
            sec, nsec = divmod(ts, 1_000_000_000)
            fh.write(struct.pack("=IIII", sec, nsec, len(data), len(data)))
            fh.write(data)
    return path


class GuestTapPort(_DropCount):
    """A tap whose fd belongs to a real guest: watched from the bridge side, never read.

    Reading the tap fd would steal frames from QEMU, so a packet socket on the tap (in the
    switch namespace) watches both directions instead: frames the tap *transmits* are what the
    guest receives; frames it receives are what the guest sent (kept for the pcap only).
    Writing to vlab's copy of the fd still injects frames "as the guest".
    """

    sees_own_sends = True  # what vlab injects as the guest shows up in guest_sent

    def __init__(self, fd: int, ifname: str, mtu: int = 1500) -> None:
        self.fd = fd
        self.ifname = ifname
        self.mtu = mtu
        self.guest_sent: list[Record] = []
        self.sock: socket.socket = self._counted(packet_socket(ifname, outgoing=True))

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, frame: bytes) -> None:
        TapPort(self.fd, self.ifname, self.mtu).send(frame)

    def drain(self) -> list[Record]:
        out: list[Record] = []
        while True:
            try:
                data, anc, _flags, addr = self.sock.recvmsg(_SNAP, _CMSG_SPACE)
            except BlockingIOError:
                return out
            except OSError as exc:
                if exc.errno != errno.ENETDOWN:
                    raise
                continue
            record = _from_ancillary(data, anc)
            self.read_since_check += 1
            if addr[2] == PACKET_OUTGOING:
                out.append(record)
            else:
                self.guest_sent.append(record)
