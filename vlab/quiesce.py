"""Deciding "nothing more will arrive" from kernel state, without sleeping.

A frame inside a lab is always in one of three kinds of place: a queue the kernel exposes (a
qdisc such as a tbf shaper, a CPU's input backlog), a queue vlab drains (an AF_PACKET socket, a tap
fd), or the hands of a CPU that is forwarding it right now in softirq context. The first two are
read directly. The third is closed by a barrier: softirq processing never yields the CPU on a
non-RT kernel, so once this thread has *run* on every CPU, whatever was being forwarded when the
barrier began has landed in one of the visible queues. A frame can still slip between two reads
(out of a backlog after the queues were read, into a socket after it was drained), but only by
moving, and a move from link to link counts a packet: so quiet is declared when the queues and
edges were empty, the barrier passed, and they are still empty with the lab's link counters
unchanged.

Cost when nothing is in flight: two statistics dumps per lab namespace, qdisc dumps where a
qdisc could hold a frame, two reads of /proc/net/softnet_stat (kept open: one pread each), one
poll of the qdisc event sockets per round and one trip across the CPUs: about 25 system calls
and 0.1-0.2 ms for a one-bridge lab, not PTF's 100 ms or the selftests' 1 s. What is left is
what the argument above needs: fewer dumps or reads would leave a move unseen.
"""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vlab import cpubarrier
from vlab.errors import LabError
from vlab.rtnl import Rtnl

SOFTNET = "/proc/net/softnet_stat"
#: Work-conserving qdiscs: they hold a frame only while their device refuses it (a tap's ring is
#: full), which needs thousands of frames to have gone through it, counted on the link.
WORK_CONSERVING = frozenset({"noqueue", "pfifo_fast", "pfifo", "bfifo", "fq_codel", "mq"})


def _open_softnet() -> int | None:
    try:
        return os.open(SOFTNET, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


#: softnet_stat, opened once at import (before any test counts its fds): every settle round
#: reads it, and a pread at offset 0 regenerates the file, where open + read + close was three
#: system calls and most of the ~15 µs a read cost.
_softnet_fd = _open_softnet()


def _softnet_text() -> bytes:
    global _softnet_fd
    fd = _softnet_fd
    if fd is None:
        fd = os.open(SOFTNET, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return _read_all(fd)
        finally:
            os.close(fd)
    try:
        return _read_all(fd)
    except OSError:  # closed behind vlab's back: open it again
        _softnet_fd = _open_softnet()
        if _softnet_fd is None:
            raise
        return _read_all(_softnet_fd)


def _read_all(fd: int) -> bytes:
    data = chunk = os.pread(fd, 1 << 16, 0)
    while len(chunk) == 1 << 16:  # thousands of CPUs
        chunk = os.pread(fd, 1 << 16, len(data))
        data += chunk
    return data


def softnet() -> tuple[int, int]:
    """(frames received by any device on any CPU so far, frames waiting in CPU input backlogs).

    Columns 1 and 12 of softnet_stat (the backlog column exists since 5.x). The first counts
    every frame any device of the host received, lab or not, so it only moves forward.
    """
    processed = backlog = 0
    for line in _softnet_text().split(b"\n"):
        cols = line.split()
        if len(cols) > 11:
            processed += int(cols[0], 16)
            backlog += int(cols[11], 16)
    return processed, backlog


def softnet_backlog() -> int:
    """Frames waiting in any CPU's input backlog (column 12 of softnet_stat since 5.x)."""
    return softnet()[1]


@dataclass
class Quiet:
    """What a lab looked like when :func:`settle` found it quiet, for :func:`still_quiet`."""

    counters: bytes  # the lab's link counters
    processed: int  # the host's count of received frames, read just before them


def cpu_barrier() -> None:
    """Return only after every CPU has finished the packet work it was doing when called.

    First choice: a marker frame steered onto each CPU's input backlog (vlab.cpubarrier), which
    costs tens of microseconds whatever the load. Where markers cannot be set up, migrate this
    thread onto every CPU it may use: a CPU running softirq work cannot switch to it, so arriving
    there waits for that work — the user-space equivalent of synchronize_net() for one packet's
    worth of processing, at ~60 µs per CPU idle but milliseconds per busy CPU.
    """
    if cpubarrier.barrier():
        return
    migration_barrier()


def migration_barrier() -> None:
    """The fallback barrier: run on every CPU this thread may use, one after the other."""
    allowed = os.sched_getaffinity(0)
    if len(allowed) == 1:
        os.sched_yield()
        return
    try:
        for cpu in sorted(allowed):
            os.sched_setaffinity(0, {cpu})
    finally:
        os.sched_setaffinity(0, allowed)


class QdiscWatch:
    """The qdiscs of one lab namespace that could be holding frames, read only when they can.

    A noqueue qdisc (veths, bridges, and taps, which vlab gives one: see rtnl.set_noqueue) never
    holds a frame; a real queue can (a tbf a test adds, frames a burst left for a later
    softirq). Dumping every namespace's qdiscs twice per check was most of the cost of
    ``settle``, so a namespace whose qdiscs are all noqueue is not
    dumped again until the kernel announces a qdisc change on the RTNLGRP_TC group (``tc``
    adding a shaper) or the lab adds a link (default qdiscs attach without an announcement).
    """

    def __init__(self, name: str, rtnl: Rtnl, events: socket.socket) -> None:
        self.name = name
        self.rtnl = rtnl
        self.events = events
        self.stale = True
        self.may_queue = True
        self.shapes = True  # a qdisc that may hold frames on its own timer (tbf, htb, netem...)
        self.last: dict[int, bytes] = {}  # ifindex -> counters, from the latest dump

    def invalidate(self) -> None:
        self.stale = True

    def _heard_of_changes(self) -> bool:
        changed = False
        while True:
            try:
                if not self.events.recv(65536):
                    return changed
            except BlockingIOError:
                return changed
            except OSError:  # ENOBUFS: notifications were lost, so assume a change
                pass
            changed = True

    def busy(self, heard: bool | None = None) -> list[str]:
        """Every qdisc of the namespace holding frames, dumped only when one could be.

        ``heard``: whether :func:`announced` found this namespace's event socket readable
        (None: look now)."""
        if self._heard_of_changes() if heard is None else heard and self._heard_of_changes():
            self.stale = True
        if not (self.stale or self.may_queue):
            return []
        rows = self.rtnl.qdiscs()
        self.stale = False
        self.may_queue = any(kind != "noqueue" for _i, _h, kind, _q in rows)
        self.shapes = any(kind not in WORK_CONSERVING for _i, _h, kind, _q in rows)
        return [
            f"{kind} qdisc {handle >> 16:x}: on ifindex {ifindex} in {self.name}: {qlen} queued"
            for ifindex, handle, kind, qlen in rows
            if qlen
        ]

    def shaped_busy(self, heard: bool | None = None) -> list[str]:
        """:meth:`busy` for a namespace whose counters have not moved: only a shaper (or a
        qdisc not seen yet) can hold a frame then, so the dump is skipped when there is none."""
        if self._heard_of_changes() if heard is None else heard and self._heard_of_changes():
            self.stale = True
        if not (self.stale or self.shapes):
            return []
        return self.busy(False)

    def counters(self) -> bytes:
        """Packet and drop counters of every link in the namespace, as one comparable blob.

        Kept in :attr:`last` too: after a settle, the drop counters vlab checks for lost frames
        (:mod:`vlab.loss`) are read from there instead of asking the kernel again.
        """
        rows = self.rtnl.link_counters()
        self.last = dict(rows)
        return b"".join(stats for _index, stats in rows)

    def close(self) -> None:
        self.events.close()


def wait_readable(fds: Sequence[int], timeout: float) -> None:
    """Block until one of ``fds`` is readable or ``timeout`` seconds pass.

    ``poll``, not ``select``: a lab of a thousand VMs has fds above select's limit of 1023.
    """
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    poller.poll(max(0.0, timeout) * 1000)


_event_polls: dict[tuple[int, ...], select.poll] = {}


def announced(watches: Sequence[QdiscWatch]) -> list[bool]:
    """For each watch, whether the kernel has announced a qdisc change there since it last
    looked: one ``poll(2)`` for every namespace, where a read of each event socket that finds
    nothing costs a system call and a Python exception. A lost announcement (ENOBUFS) shows as
    POLLERR, which poll always reports, so it counts as one too."""
    fds = tuple(watch.events.fileno() for watch in watches)
    poller = _event_polls.get(fds)
    if poller is None:
        if len(_event_polls) > 64:
            _event_polls.clear()
        poller = select.poll()  # poll(2) takes the fd numbers at each call: caching is safe
        for fd in fds:
            poller.register(fd, select.POLLIN)
        _event_polls[fds] = poller
    ready = {fd for fd, _events in poller.poll(0)}
    return [fd in ready for fd in fds]


def queued(watches: Sequence[QdiscWatch], backlog: int | None = None) -> list[str]:
    """Human-readable list of kernel queues that still hold frames (empty when none).

    ``backlog``: the CPU input backlog if the caller has just read softnet_stat (one read of
    it costs tens of microseconds; a settle round needs it once, not twice).
    """
    heard = announced(watches)
    busy = [line for watch, news in zip(watches, heard, strict=True) for line in watch.busy(news)]
    if backlog is None:
        backlog = softnet_backlog()
    if backlog:
        busy.append(f"CPU input backlog: {backlog}")
    return busy


def settle(
    watches: Sequence[QdiscWatch],
    drain: Callable[[], int],
    fds: Sequence[int],
    timeout: float = 10.0,
) -> Quiet:
    """Return once every frame in flight in the lab has been delivered (drained) or dropped.

    ``drain`` pulls whatever is readable at the lab's edges and says how many frames it got.
    A round reads, in this order, the lab's link counters, the kernel queues, then the edges.
    A clean round (nothing queued, nothing drained) is confirmed by a second one after a CPU
    barrier, with unchanged counters. A frame that was between two places during the first
    round either finished moving during the barrier (and is drained now) or moved from one
    link to the next — which counts a packet on a lab link and changes the counters.

    Returns what the quiet lab looked like, for :func:`still_quiet`.
    """
    deadline = time.monotonic() + timeout
    previous: bytes | None = None
    # What has already arrived (most often the frame just sent) is taken first: a round that
    # drains something throws its counter dumps away, and this read costs one poll.
    drain()
    while True:
        processed, backlog = softnet()  # before the counters, as Quiet wants
        counters = b"".join(w.counters() for w in watches)
        busy = queued(watches, backlog)
        got = drain()
        if not busy and not got:
            if counters == previous:
                return Quiet(counters, processed)
            previous = counters
            cpu_barrier()
            continue
        previous = None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LabError(
                f"the lab did not settle within {timeout:g} s; still queued: "
                + ("; ".join(busy) or "frames keep arriving")
            )
        if busy:
            # A shaper releases frames on its own timer: wait for an edge to become readable,
            # but re-read the queues often enough to notice frames that end up dropped.
            if fds:
                wait_readable(fds, min(0.002, remaining))
            else:
                time.sleep(min(0.002, remaining))


def still_quiet(watches: Sequence[QdiscWatch], quiet: Quiet) -> bool:
    """Whether a lab :func:`settle` found ``quiet`` has stayed quiet since, without a settle.

    Every frame that moves in a lab is received by some device (a tap written to, the far end
    of a veth) or was sent by a program that holds it in a qdisc; a bridge forwarding into a
    tap received it on another port first. So when the host has received no frame at all since
    the lab was quiet (the softnet count, one small read), and no shaper or CPU backlog holds
    one, nothing has moved. Otherwise the lab's own link counters decide: unchanged, nothing
    moved in this lab (others' traffic moved the host's count), and the check is true again.
    A work-conserving qdisc holds frames only while its device is full, which takes thousands
    of counted frames. Reading many endpoints of a big lab thus costs one small read per call
    on a quiet host and one counter dump per namespace on a busy one, instead of a settle's
    two rounds over every endpoint. A frame a program sends at this very moment may be missed,
    as by any read that does not wait.
    """
    processed, backlog = softnet()
    if backlog or any(w.shaped_busy(h) for w, h in zip(watches, announced(watches), strict=True)):
        return False
    if processed == quiet.processed:
        return True
    if b"".join(w.counters() for w in watches) != quiet.counters:
        return False
    quiet.processed = processed  # read before the counters: later frames still change it
    return True
