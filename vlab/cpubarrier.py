"""A barrier behind every CPU's network softirq that never waits for the scheduler.

The question a negative check asks is: has every CPU finished what it was doing with packets when
the check began? Migrating the checking thread onto each CPU answers it (a CPU running softirq
work cannot switch to another thread), but each migration waits for the scheduler to give the
thread that CPU: ~60 µs per CPU on an idle machine, milliseconds per CPU when other processes
keep the CPUs busy.

Here the CPUs are asked through their own packet queues instead. A private namespace holds one
veth pair per CPU whose receiving end has Receive Packet Steering set to exactly that CPU. A
marker frame sent into pair *n* is queued on CPU *n*'s input backlog and handled by CPU *n* in its
NET_RX softirq — which runs after whatever softirq or bottom-half-disabled packet work that CPU
is in the middle of (softirqs on one CPU never run concurrently, and a backlog is FIFO). So once
every CPU's marker has been delivered to this namespace's packet socket, every CPU has finished
the packet work it held when the markers were sent; frames it was forwarding have landed in
some queue the caller reads next. The markers are raised with an IPI and run in softirq context,
ahead of any busy process, and they are sent to all CPUs at once: the cost is a few tens of
microseconds and does not grow with the load, and only slowly with the CPU count.

The marker namespace is vlab's own (nothing of the host is touched); Receive Packet Steering is
configured through a sysfs mounted in a private mount namespace of a short-lived ``unshare``
process, because sysfs shows the network devices of the namespace that mounted it. Where any of
this is unavailable, :func:`barrier` says so and the caller falls back to migrating.
"""

from __future__ import annotations

import ctypes
import os
import select
import shutil
import socket
import struct
import threading
import time
from collections.abc import Callable

from vlab.errors import LabError
from vlab.ip import checksum
from vlab.netns import NetNS
from vlab.rtnl import LinkRequests, Rtnl

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23
_MARK_TYPE = 0x0800  # IPv4/UDP to documentation addresses; the namespace has no address to answer


def _marker(cpu: int, seq: int, src: bytes, dst: bytes) -> bytes:
    """A UDP frame 192.0.2.1 -> 192.0.2.2 (documentation addresses) naming its CPU and round."""
    payload = struct.pack("!IQ", cpu, seq)
    udp = struct.pack("!HHHH", 40000 + cpu % 20000, 9, 8 + len(payload), 0) + payload
    head = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp),
        0,
        0,
        64,
        17,
        0,
        b"\xc0\0\x02\x01",
        b"\xc0\0\x02\x02",
    )
    head = head[:10] + struct.pack("!H", checksum(head)) + head[12:]
    return dst + src + struct.pack("!H", _MARK_TYPE) + head + udp


def _cpu_mask(cpu: int) -> str:
    """``rps_cpus`` syntax: hex, comma-separated 32-bit groups, most significant first."""
    groups = cpu // 32 + 1
    words = [0] * groups
    words[groups - 1 - cpu // 32] = 1 << (cpu % 32)
    return ",".join(f"{w:08x}" for w in words)


class MarkerBarrier:
    """One namespace of per-CPU steered veth pairs and the sockets that send and read markers."""

    def __init__(self, cpus: list[int]) -> None:
        from vlab import spawn  # programs in namespaces; imported late to keep imports one way

        self.cpus = cpus
        self.pid = os.getpid()
        self.seq = 0
        self.orders: dict[int, list[tuple[socket.socket, bytes]]] = {}  # by the sending CPU
        self.ns = NetNS.create("cpu-markers")
        self.rtnl: Rtnl | None = None
        self.rx: socket.socket | None = None
        self.tx: list[socket.socket] = []
        try:
            with self.ns.entered():
                for key in ("net/ipv6/conf/all/disable_ipv6", "net/ipv6/conf/default/disable_ipv6"):
                    try:
                        with open("/proc/sys/" + key, "w") as fh:
                            fh.write("1")
                    except FileNotFoundError:
                        pass
                self.rtnl = Rtnl()
                links = LinkRequests(self.rtnl)
                self.frames: list[bytes] = []  # per CPU, sent through self.tx[n]
                script = []
                for n, cpu in enumerate(cpus):
                    src = bytes([2, 0, 0, 0, n >> 8, n & 0xFF])
                    dst = bytes([2, 1, 0, 0, n >> 8, n & 0xFF])
                    links.add_veth(f"mk{n}", 0, _mac(src), None, f"rx{n}", _mac(dst), self.ns.fd, 0)
                    self.frames.append(_marker(cpu, 0, src, dst))
                    script.append(
                        f"echo {_cpu_mask(cpu)} > /sys/class/net/rx{n}/queues/rx-0/rps_cpus"
                    )
                self.indexes = [index for index, _oper, _q in links.link_states().values()]
                for name, (index, _oper, _q) in links.link_states().items():
                    if name.startswith("rx"):
                        links.set_link(index)
                # unbound: every device of this namespace (and only of it)
                self.rx = socket.socket(
                    socket.AF_PACKET,
                    socket.SOCK_RAW | socket.SOCK_NONBLOCK,
                    socket.htons(ETH_P_ALL),
                )
                self.rx.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
                for n in range(len(cpus)):
                    tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
                    self.tx.append(tx)
                    tx.bind((f"mk{n}", 0))  # sends only; protocol 0 receives nothing
            unshare = shutil.which("unshare")
            if unshare is None:
                raise OSError("no `unshare` program (util-linux) to mount a private sysfs")
            mount = "mount -t sysfs sysfs /sys && " + " && ".join(script)
            spawn.run(self.ns, [unshare, "--mount", "sh", "-c", mount], check=True, timeout=10)
            self._wait_links()
            if not self.run(timeout=2.0):
                raise OSError("marker frames did not come back")
        except BaseException:
            self.close()
            raise

    def _wait_links(self) -> None:
        assert self.rtnl is not None
        links = LinkRequests(self.rtnl)
        deadline = time.monotonic() + 2.0
        for index in self.indexes:
            if index == 1:
                continue  # lo stays down
            while links.link_state(index)[0] != 6:  # IF_OPER_UP
                if time.monotonic() > deadline:
                    raise OSError(f"marker link {index} did not come up")
                time.sleep(0.0005)

    def _sends(self) -> list[tuple[socket.socket, bytes]]:
        """(socket, marker) per CPU, the CPU this thread runs on last: its marker is handled
        inside the send (the softirq runs as the send leaves), which then overlaps the other
        CPUs' wake-up instead of delaying their markers."""
        here = _current_cpu()
        order = self.orders.get(here)
        if order is None:
            pairs = list(zip(self.cpus, self.tx, self.frames, strict=True))
            order = [(tx, frame) for cpu, tx, frame in pairs if cpu != here]
            order += [(tx, frame) for cpu, tx, frame in pairs if cpu == here]
            self.orders[here] = order
        return order

    def run(self, timeout: float = 1.0) -> bool:
        """Send one marker to every CPU and wait until each has been handled; False on timeout."""
        assert self.rx is not None
        self.seq += 1
        seq = struct.pack("!Q", self.seq)
        waiting = set(self.cpus)
        for tx, frame in self._sends():
            tx.send(frame[:-8] + seq)
        deadline = time.monotonic() + timeout
        spin_until = time.monotonic() + 0.0005
        while waiting:
            try:
                data = self.rx.recv(128)
            except BlockingIOError:
                now = time.monotonic()
                if now > deadline:
                    return False
                if now > spin_until:
                    select.select([self.rx], [], [], min(0.001, deadline - now))
                continue
            if len(data) < 54 or data[-8:] != seq:
                continue  # a marker of an earlier, abandoned round
            (cpu,) = struct.unpack_from("!I", data, len(data) - 12)
            waiting.discard(cpu)
        return True

    def close(self) -> None:
        for sock in [self.rx, self.rtnl, *self.tx]:
            if sock is not None:
                sock.close()
        self.ns.close()


_getcpu: Callable[[], int] | None = None


def _current_cpu() -> int:
    """The CPU this thread runs on now (glibc's sched_getcpu, a vDSO call), -1 if unknown.

    Only the order of the markers depends on it: every CPU gets one whatever it says.
    """
    global _getcpu
    if _getcpu is None:
        try:
            _getcpu = ctypes.CDLL(None).sched_getcpu
        except (OSError, AttributeError):
            _getcpu = lambda: -1  # noqa: E731
    return int(_getcpu())


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


_lock = threading.Lock()
_barrier: MarkerBarrier | None = None
_broken: str | None = None


def barrier() -> bool:
    """Wait until every online CPU has handled a marker; False where markers cannot be used.

    The marker namespace is made on first use (~10 ms, once per process) and kept: it is as
    leak-proof as a lab's (an fd of this process). A failure to set it up or a round that times
    out disables markers for the process, so the caller's fallback decides from then on.
    """
    global _barrier, _broken
    if _broken is not None:
        return False
    with _lock:
        if _barrier is not None and _barrier.pid != os.getpid():
            _barrier = None  # a forked child: the parent reads those sockets too; make its own
        if _barrier is None:
            try:
                _barrier = MarkerBarrier(online_cpus())
            except (OSError, LabError) as exc:
                _broken = str(exc)
                return False
        if _barrier.run():
            return True
        _broken = "a marker round timed out"
        return False


def unavailable() -> str | None:
    """Why markers are not used in this process (None while they are, or untried)."""
    return _broken


def online_cpus() -> list[int]:
    """Every CPU that can run softirqs, whatever this thread's affinity (``0-3,6`` syntax)."""
    with open("/sys/devices/system/cpu/online") as fh:
        text = fh.read().strip()
    cpus: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus
