"""Switch namespaces reused from lab to lab, so that a suite never waits for a bridge to die.

Destroying a bridge runs ``rcu_barrier()`` while holding the rtnl lock (``br_multicast_dev_del``
from ``br_dev_uninit``), and the kernel does it for every dropped namespace in a kworker: in a
suite, the next lab's build waits behind that lock (p99 over 100 ms on a machine where a lab
builds in 5 ms). No order of teardown avoids the barrier; not destroying the bridge does.

So a closed lab's switch namespace is not dropped but handed here. Off the critical path, the
reset worker (a process of its own: vlab.nsresetd; the reset itself: vlab.nsreset) parks the
links that may stay for the next lab (vlab.nsspares: emulated VMs' taps, veths to a peer
namespace with that namespace; each with the packet socket vlab reads it through, which the pool
keeps open, emptied: vlab.capture.recycled; each still a port of the bridge, down, numbered in
the order it joined), deletes every other link but ``lo`` and the bridge
in one batched request, puts the bridge back to a fresh default bridge (MAC, every option, down,
flushed; it keeps the name the lab gave it, which the next lab most likely gives it too), and
then *verifies* the namespace against the snapshot of a freshly made one
(vlab.nssnapshot): links and their attributes, bridge options, addresses, routes, rules,
neighbours, fdb, mdb, nexthops, qdiscs, nftables and xtables tables, every net sysctl, the
sockets open in it and the processes inside it. Any difference, any error, any doubt (a bridge
MTU change seen during the lab, which sets a flag the kernel does not report) and the namespace is
dropped as before. A namespace nothing outside vlab's bookkeeping touched (no sysctl written,
never handed to the test or a program: ``NetNS.touched`` stays False) gets the same check
without the sections only a sysctl write or a program can change (sysctls, rules, nexthops,
nftables, xtables, processes, TCP's machine-wide socket tables): ~1 ms instead of ~15, so that
resets keep up with a suite on a small machine. The first lab that may join the pool has the
reference snapshots made and the workers started in the background (:meth:`Pool.warm`). The
next lab takes a verified namespace and
*adopts* its dormant bridge for its first ``lab.bridge()`` with one request carrying the same
attributes a creation would, and the kept links it asks for by name, where they sit in the
bridge when they hold the numbers fresh ports would get (:class:`Spares`; the first call that is
not building has the seated spares nobody took leave the bridge first: vlab.guard); a lab
that looks into its switch namespace before it has a bridge gets the dormant bridge deleted
first, and one that looks into it at all gets the kept links nobody took deleted first.

Where it is on: in ``pytest --vlab`` sessions (the plugin calls :func:`configure`; off with
``VLAB_REUSE_NAMESPACES=0`` or the ini option ``vlab_reuse_namespaces = false``), and emptied at
the session's end (:func:`empty`). Elsewhere (scripts, ``vlab up``) a closed lab leaves nothing
held, as before, unless ``VLAB_REUSE_NAMESPACES=1``. What a reused namespace cannot hide: the
packet and carrier-change counters of the bridge and of kept links (the kernel cannot zero them;
vlab compares counters as deltas and reports a kept link's from the moment the lab took it), the
ifindex numbers the kernel hands to new links (a per-namespace cursor that only moves forward: a
reused namespace's taps are numbered after the previous lab's; vlab gives veths explicit
ifindexes and reads taps' back, so it never depends on the numbers), the bridge's TSO size limit
until its first port joins, and the namespace's inode number. Those are documented, not
verified; everything else is.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import os
import queue
import resource
import socket
import struct
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from vlab import capture, nsreset, nsresetd, nssnapshot, nsspares, reaper
from vlab import tap as taplib
from vlab.netns import NetNS
from vlab.nssnapshot import Space, differences, partial, snapshot
from vlab.rtnl import (
    IFINFO,
    IFLA_INFO_DATA,
    IFLA_INFO_KIND,
    IFLA_LINKINFO,
    NLA_F_NESTED,
    attrs,
    ifinfo,
    link_attrs,
    nla,
)

__all__ = ["Space", "Spares", "differences", "partial", "snapshot"]

SPARE_NAME = nsreset.SPARE_NAME
SPARE_MAC = nsreset.SPARE_MAC
BRIDGE_INDEX = nssnapshot.BRIDGE_INDEX
READY_MAX = 16
WORKERS = 2
CIRCULATION = 6  # namespaces in use or being reset before a new lab waits rather than make one
TAKE_WAIT = 0.05  # seconds a new lab waits for a reset under way rather than make a namespace
RESETTERS = 8
BACKLOG_MAX = 16  # namespaces waiting for a reset; beyond that, resets would only lag further

RTM_DELLINK = 17
RTNLGRP_LINK = 1

# --- what the pool holds ---------------------------------------------------------------------


class _Held:
    """A namespace the pool holds between two labs."""

    def __init__(self, space: Space) -> None:
        self.space = space
        self.idle: NetNS | None = None  # the namespace between its lab's close and a reset

    def detach(self) -> None:
        """At the lab's close: its sockets and namespace fd are closed now, a duplicate fd keeps
        the namespace for the pool. Whatever object of the closed lab still points at it (a
        port, a bridge, a host's ``ns``) then fails on a closed socket or fd, and never reaches
        the namespace again, whoever reuses it."""
        old = self.space
        self.idle = NetNS(old.ns.name, os.dup(old.ns.fd))
        self.idle.touched = old.ns.touched
        old.close()

    def renew(self, factory: Any) -> None:
        """Fresh sockets in the detached namespace, for the next lab (in the resetter)."""
        ns, self.idle = self.idle, None
        if ns is None:
            return
        try:
            self.space = factory(ns.name, ns)
        except BaseException:
            ns.close()
            raise

    def close(self) -> None:
        if self.idle is not None:
            self.idle.close()
            self.idle = None
        else:
            self.space.close()


class _Peer(_Held):
    """A peer namespace (the upstream, a host's) kept with the one veth pair cabled to it, and
    the packet socket on the pair's far end (see vlab.capture.recycled)."""

    def __init__(self, space: Space, pair: nsspares.Pair, sock: socket.socket | None) -> None:
        super().__init__(space)
        self.pair = pair
        self.sock = sock
        self.counters: bytes | None = None  # what the far end had counted so far

    def close(self) -> None:
        sock, self.sock = self.sock, None
        try:
            if sock is not None:
                reaper.reap([sock])  # its close waits for RCU: not here
        finally:
            super().close()


class _Shell(_Held):
    """A pooled switch namespace and what the pool knows of it."""

    def __init__(self, space: Space) -> None:
        super().__init__(space)
        self.events = _link_events(space.ns)
        self.closed = False
        with _pool.lock:
            _pool.live.add(self)
        self.dormant = False  # holds the reset bridge, not yet a lab's
        self.bridge_name = SPARE_NAME  # ... under this name (the last lab's, most often)
        # spare taps by name, as (ifindex, fd): down, in no bridge, their fd held all along (so
        # that the carrier never drops and the tap stays as a fresh one is, operstate UNKNOWN)
        self.taps: dict[str, tuple[int, int]] = {}
        self.socks: dict[int, socket.socket] = {}  # their stamping sockets (and keep's), kept open
        self.reaping: list[reaper.Batch] = []  # sockets the pool let go, closing: the next check
        # must not count them
        self.pairs: dict[str, _Peer] = {}  # spare veth pairs by port name, with their peer
        self.counters: dict[int, bytes] = {}  # what each spare link had counted so far
        # spares seated in the dormant bridge, by ifindex, with their port numbers (1, 2, ...);
        # how many the lab took where they sit; whether a port of the lab left the bridge
        self.seats: dict[int, int] = {}
        self.seated_taken = 0
        self.anew = False
        self.keep: dict[int, int] = {}  # the closed lab's taps fit for reuse, {ifindex: fd}
        self.keep_counters: dict[int, bytes] = {}  # ... their counters when the lab got them
        self.parked: list[_Peer] = []  # the closed lab's peers fit for reuse, to be checked
        # the closed lab's packet sockets being closed (None: not known, wait for every socket)
        self.closing: list[reaper.Batch] | None = None

    def spare_indexes(self) -> list[int]:
        """The switch-side ifindexes of every spare link."""
        taps = [index for index, _fd in self.taps.values()]
        return [*taps, *(peer.pair.index for peer in self.pairs.values())]

    def drop_peers(self) -> None:
        for peer in [*self.pairs.values(), *self.parked]:
            peer.close()
        self.pairs.clear()
        self.parked.clear()

    def drop_taps(self) -> None:
        """Let go of every tap fd held (made persistent first: no unregister to wait for;
        the taps go with their namespace, or with a delete)."""
        fds = [fd for _index, fd in self.taps.values()] + list(self.keep.values())
        socks = list(self.socks.values())
        self.taps, self.keep, self.socks = {}, {}, {}
        try:
            for fd in fds:
                taplib.release_tap(fd)
        finally:
            self.reap(socks)

    def reap(self, socks: list[socket.socket]) -> None:
        """Close sockets the pool held, in the background (each close waits for RCU)."""
        if socks:
            self.reaping.append(reaper.reap(socks))

    def close(self) -> None:
        self.closed = True
        self.events.close()
        try:
            self.drop_taps()
            self.drop_peers()
        finally:
            super().close()


# Classic BPF for the link-event socket: keep RTM_NEWLINK messages about the bridge (ifindex
# BRIDGE_INDEX) and drop the rest in the kernel, so a reset reads a handful of events rather
# than one per link change of the whole lab. Loads are big-endian: 16 is 0x1000, 2 is 0x02000000.
_BRIDGE_EVENTS = (
    (0x28, 0, 0, 4),  # ldh [4]: nlmsg_type
    (0x15, 0, 3, 0x1000),  # jeq RTM_NEWLINK, next, drop
    (0x20, 0, 0, 20),  # ld [20]: ifi_index
    (0x15, 0, 1, BRIDGE_INDEX << 24),  # jeq BRIDGE_INDEX, keep, drop
    (0x06, 0, 0, 0xFFFFFFFF),  # keep
    (0x06, 0, 0, 0),  # drop
)
SO_ATTACH_FILTER = 26


def _bridge_events_only(sock: socket.socket) -> None:
    code = b"".join(struct.pack("=HBBI", *insn) for insn in _BRIDGE_EVENTS)
    buf = ctypes.create_string_buffer(code)
    prog = struct.pack("@HP", len(_BRIDGE_EVENTS), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, prog)


def _link_events(ns: NetNS) -> socket.socket:
    with ns.entered():
        sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, 0
        )
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        with contextlib.suppress(OSError):  # without the filter, every event is read instead
            _bridge_events_only(sock)
        sock.bind((0, 1 << (RTNLGRP_LINK - 1)))
    except BaseException:
        sock.close()
        raise
    return sock


def tap_fd_budget() -> int:
    """How many tap fds the pool may hold in all: a quarter of the fd limit, at most 256."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return min(256, soft // 4)


class Pool:
    """Verified switch namespaces with a dormant bridge, and the threads that reset them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ready: collections.deque[_Shell] = collections.deque()
        # closed labs' namespaces to reset (None: make ready for the first reset, see warm)
        self.dirty: queue.SimpleQueue[tuple[_Shell | None, Any]] = queue.SimpleQueue()
        self.refs: nsreset.References | None = None  # what a fresh namespace looks like
        self.refs_lock = threading.Lock()
        self.warming = False
        self.prestarted = False
        self.emptied = 0  # how many times empty() ran
        self.starting = False  # the first worker is being started (resets run in-process)
        self.live: weakref.WeakSet[_Shell] = weakref.WeakSet()  # namespaces the pool may get
        # reset workers (vlab.nsresetd): a reset mostly waits for the kernel (an RCU grace
        # period per port taken out of the bridge), so two overlap where one would queue
        self.workers = [nsresetd.Worker() for _ in range(WORKERS)]
        self.free: queue.SimpleQueue[nsresetd.Worker] = queue.SimpleQueue()
        self.free.put(self.workers[0])  # the others once the first is up (see _warm)
        self.threads: list[threading.Thread] = []
        self.idle = threading.Condition(self.lock)
        self.in_flight = 0  # handed over, not yet reused or dropped
        self.stats = {"reused": 0, "discarded": 0, "taken": 0}
        self.last_discard: list[str] = []
        # Off outside pytest --vlab unless VLAB_REUSE_NAMESPACES=1: a closed lab's switch
        # namespace stays held by this process until it is reused or the pool is emptied.
        self.enabled = os.environ.get("VLAB_REUSE_NAMESPACES", "").strip() not in ("", "0")

    def _ensure_threads(self) -> None:
        with self.lock:
            self.threads = [t for t in self.threads if t.is_alive()]
            while len(self.threads) < RESETTERS:
                t = threading.Thread(target=self._serve, name="vlab-nspool", daemon=True)
                t.start()
                self.threads.append(t)

    def take(self, wait: float = 0.0) -> _Shell | None:
        """A ready namespace, or None (make one). With ``wait``, once :data:`CIRCULATION`
        namespaces are in use or being reset, one whose reset is under way is waited for up to
        that long instead: enough of them cover the time from a lab's close to the end of its
        reset (an RCU grace period for its packet sockets, then the reset), and more would only
        be destroyed later, at the suite's expense."""
        with self.idle:
            busy = sum(1 for shell in self.live if not shell.closed) >= CIRCULATION
            if not self.ready and wait > 0 and self.in_flight and busy:
                self.idle.wait_for(lambda: self.ready or not self.in_flight, wait)
            if not self.ready:
                return None
            self.stats["taken"] += 1
            # the namespace with spares reset last: they are those of the lab closed last, the
            # most likely to be of the next lab's shape (the same test file, the same fixture)
            return self.ready.pop()

    def give(self, shell: _Shell, factory: Any) -> None:
        self.warm(factory)  # (once: the lab that made this namespace has most often done it)
        self._ensure_threads()
        with self.lock:
            busy = self.in_flight >= BACKLOG_MAX
            if busy:
                self.stats["skipped"] = self.stats.get("skipped", 0) + 1
            else:
                self.in_flight += 1
        if busy:  # labs end faster than they can be reset: drop it, as without a pool
            shell.close()
            return
        self.dirty.put((shell, factory))

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every namespace handed over has been reused or dropped.

        Call it before checking that no thread sits in a lab namespace (a resetter verifying
        a namespace is inside it) and before counting namespaces.
        """
        with self.idle:
            return self.idle.wait_for(lambda: self.in_flight == 0, timeout)

    def _done(self) -> None:
        with self.idle:
            self.in_flight -= 1
            self.idle.notify_all()

    def _serve(self) -> None:
        while True:
            shell, factory = self.dirty.get()
            if shell is None and factory is None:
                self._prestart()
                continue
            if shell is None:
                try:
                    self._warm(factory)
                finally:
                    self._done()
                continue
            try:
                # the lab's packet sockets (endpoints, tap watchers) were handed to the reaper
                # before the namespace came here: an open one would fail the verification
                if shell.closing is None:
                    reaper.drain()
                else:
                    for batch in [*shell.closing, *shell.reaping]:
                        batch.wait()
                shell.reaping = []
                self._recycle(shell, factory)
            finally:
                self._done()

    def _recycle(self, shell: _Shell, factory: Any) -> None:
        try:
            problems = self._reset(shell, factory)
        except Exception as exc:  # any surprise: the namespace is dropped, never reused
            problems = [f"reset failed: {exc}"]
        keep = False
        with self.lock:
            if problems:
                self.stats["discarded"] += 1
                self.last_discard = problems
            elif len(self.ready) < READY_MAX:
                self.stats["reused"] += 1
                shell.dormant = True
                if shell.spare_indexes():  # taken first (see take)
                    self.ready.append(shell)
                else:
                    self.ready.appendleft(shell)
                keep = True
        if not keep:
            shell.close()

    def references(self, factory: Any, full: bool = False) -> nsreset.References:
        """What a fresh namespace looks like, made once (by whichever thread needs it first):
        what the cheap check compares (~6 ms to make), and the full snapshot only once a
        touched namespace is to be checked (~60 ms of CPU, mostly reading every sysctl, which
        would otherwise hold up the first resets of every session)."""
        with self.refs_lock:
            if self.refs is None or (full and not self.refs.full):
                self.refs = self._make_reference(factory, full)
            return self.refs

    def prestart(self) -> None:
        """Start the reset workers in the background now (a Python start each, ~80 ms of CPU
        at a low priority), so that the first labs of a session find them up: the plugin calls
        it when a ``pytest --vlab`` session starts, collection overlapping it. Nothing waits
        for it: :func:`empty` closes a worker whose start it overtook as soon as it is up (a
        session that ends first ends the workers with its process)."""
        with self.lock:
            if self.prestarted or not self.enabled:
                return
            self.prestarted = True
        self._ensure_threads()
        self.dirty.put((None, None))

    def _prestart(self) -> None:
        for worker in self.workers:
            emptied = self.emptied
            worker.prestart()
            if self.emptied != emptied:  # empty() ran meanwhile: it could not close this one
                with worker.lock:
                    worker.close()
                return

    def warm(self, factory: Any) -> None:
        """Make ready, in the background, what the first reset needs and would otherwise wait
        for: the reference snapshots (~20 ms) and the reset workers (a Python start each,
        ~50 ms). Called when the first lab that may join the pool is built: by the time it
        closes, its reset can start at once. Counted as a reset in flight (drain waits), and
        done by a resetter thread: a worker dies with the thread that started it
        (PR_SET_PDEATHSIG follows the thread), and those threads live as long as the process."""
        with self.lock:
            if self.warming or not self.enabled:
                return
            self.warming = True
            self.in_flight += 1
        self._ensure_threads()
        self.dirty.put((None, factory))

    def _warm(self, factory: Any) -> None:
        """The references, then the workers one after the other: two interpreters starting at
        once, beside the lab being built, take the CPUs of a small machine from it (the first
        labs of a session built 2-3x slower). Until the others are up, resets go to the first."""
        later = self.workers[1:]
        try:
            refs = self.references(factory)
            self.starting = True
            try:
                self.workers[0].warm(refs)
            finally:
                self.starting = False
            while later:
                later[0].warm(refs)
                self.free.put(later.pop(0))
        except Exception:  # the first reset tries again, and says why it cannot
            pass
        finally:
            for worker in later:
                self.free.put(worker)

    def _make_reference(self, factory: Any, full: bool) -> nsreset.References:
        """Snapshots of a fresh switch namespace with a fresh dormant bridge and one spare link
        of each kind (``full`` or as the cheap check takes them), and of a fresh peer namespace
        with its end of the spare pair (as its cheap check takes it), taken the way a reset
        takes them: the lab's sockets closed, the resetter's open.

        The switch namespace then joins the pool, as a closed lab's would, without the spare
        links (deleted: their names are no lab's), instead of being destroyed: its bridge's
        destruction would hold rtnl for an RCU barrier, and the first labs of the session,
        being built meanwhile, wait for it (~30 ms)."""
        space = factory("switch")
        shell = _Shell(space)
        far: _Held | None = None
        targets: list[nsreset.Target] = []
        pooled = False
        try:
            space.links.add_bridge(SPARE_NAME, BRIDGE_INDEX, SPARE_MAC)
            space.links.set_link(BRIDGE_INDEX, up=False)
            space.next_index = BRIDGE_INDEX + 1
            tap, fd = nsspares.reference_tap(space, "vlab-tref", BRIDGE_INDEX)
            shell.taps["vlab-tref"] = (tap, fd)
            space.reserved = {tap}  # the kernel chose its ifindex
            far = _Held(factory("upstream"))
            pair = nsspares.reference_pair(space, far.space, "vlab-vref", "vlab-vref", BRIDGE_INDEX)
            data = space.rtnl.bridge_data(BRIDGE_INDEX)
            shell.detach()
            far.detach()
            assert shell.idle is not None and far.idle is not None
            targets = [nsreset.Target(shell.idle), nsreset.Target(far.idle)]
            refs = nsreset.References(
                switch=snapshot(targets[0], full, spares=[tap, pair.index]),
                peer=snapshot(targets[1], False, spares=[pair.far_index]),
                bridge_data=data,
                full=full,
            )
            nsspares.delete_links(targets[0].rtnl, [tap, pair.index])  # the far end goes too
            shell.taps = {}
            os.close(fd)  # its tap is gone
            pooled = self.enabled
            return refs
        finally:
            for target in targets:
                target.close()
            if pooled:
                shell.closing = []  # none of its sockets is being closed
                self.give(shell, factory)
            else:
                shell.close()
            if far is not None:
                far.close()

    def _reset(self, shell: _Shell, factory: Any) -> list[str]:
        """Reset ``shell`` (in the worker if there is one), then keep what the reset kept."""
        ns = shell.idle
        assert ns is not None
        refs = self.references(factory, full=ns.touched)
        parked, shell.parked = shell.parked, []
        with self.lock:  # the tap fds the other pooled namespaces hold
            held = sum(len(other.taps) for other in self.ready)
        req = nsreset.Request(
            touched=ns.touched,
            taps_max=min(nsspares.TAPS_MAX, max(0, tap_fd_budget() - held)),
            taps={name: index for name, (index, _fd) in shell.taps.items()},
            keep=dict(shell.keep),
            parked_counters=dict(shell.keep_counters),
            pairs=[peer.pair for peer in shell.pairs.values()],
            parked=[(peer.pair, peer.idle.fd) for peer in parked if peer.idle is not None],
            held=len(shell.socks),
            peers_held=[peer.pair.port for peer in parked if peer.sock is not None],
            anew=shell.anew,
        )
        shell.seats, shell.seated_taken, shell.anew = {}, 0, False
        try:
            worker = self.free.get()
            try:
                # while the first worker starts (~80 ms), the first resets run here rather
                # than wait for it: the labs after them would wait, or be made afresh
                starting = self.starting and worker.sock is None
                result = None if starting else worker.run(refs, req, ns.fd, shell.events.fileno())
            finally:
                self.free.put(worker)
            if result is None:  # no worker (yet): the same reset, here
                result = nsreset.run(refs, req, ns.fd, shell.events, os.getpid())
        except BaseException:
            for peer in parked:
                peer.close()
            raise
        # what stays: taps with their fds, pairs with their peers; the rest is let go
        fds = {index: fd for index, fd in shell.keep.items()}
        fds.update({index: fd for index, fd in shell.taps.values()})
        shell.keep = {}
        shell.taps = {name: (index, fds.pop(index)) for name, index in result.taps.items()}
        for fd in fds.values():  # their taps were deleted by the reset
            taplib.release_tap(fd)
        socks, shell.socks = shell.socks, {}
        for index, _fd in shell.taps.values():
            sock = socks.pop(index, None)
            if sock is not None:
                shell.socks[index] = capture.recycled(sock)
        shell.reap(list(socks.values()))
        peers = {peer.pair.port: peer for peer in [*shell.pairs.values(), *parked]}
        shell.pairs = {port: peers.pop(port) for port in result.pairs}
        for peer in peers.values():
            peer.close()
        if result.peer_problems:
            self.stats["peers discarded"] = self.stats.get("peers discarded", 0) + 1
            self.last_discard = result.peer_problems
        if result.problems:
            return result.problems
        shell.counters = dict(result.counters)
        shell.seats = dict(result.seats)
        shell.bridge_name = result.bridge_name
        for port in result.peers:
            peer = shell.pairs[port]
            if peer.sock is not None:
                capture.recycled(peer.sock)
            peer.renew(factory)
            peer.counters = result.far_counters.get(port)
            peer.space.reserved = {peer.pair.far_index}
        if ns.touched:
            self.stats["full checks"] = self.stats.get("full checks", 0) + 1
        ns.touched = False
        shell.renew(factory)
        shell.space.next_index = BRIDGE_INDEX
        shell.space.reserved = set(shell.spare_indexes())
        return []


_pool = Pool()


def pool() -> Pool:
    return _pool


def enabled() -> bool:
    """Whether closed labs' switch namespaces go to the pool (see the module doc for where)."""
    return _pool.enabled


def empty(timeout: float = 30.0) -> bool:
    """Drop every pooled namespace, once every reset in progress has ended, and stop the reset
    workers (the next reset starts them again).

    Run at the end of a pytest session (the plugin does), and before checking that closed labs
    left no namespace, fd or thread behind: the pool holds namespaces, and its workers a socket
    each, on purpose. False if a reset did not end within ``timeout``.
    """
    done = _pool.drain(timeout)
    while (shell := _pool.take()) is not None:
        shell.close()
    if done:
        _pool.emptied += 1
        for worker in _pool.workers:
            # not waiting for a start under way (Pool.prestart): it closes the worker itself
            if worker.lock.acquire(blocking=False):
                try:
                    worker.close()
                finally:
                    worker.lock.release()
    return done


def configure(setting: str | None) -> None:
    """Reuse on or off from a pytest ini value or the environment, the environment winning.

    ``VLAB_REUSE_NAMESPACES=0`` (or ``vlab_reuse_namespaces = false``) turns it off; the
    plugin turns it on for ``pytest --vlab`` sessions, where the pool is emptied at the end.
    """
    value = os.environ.get("VLAB_REUSE_NAMESPACES", setting or "1").strip().lower()
    _pool.enabled = value not in ("", "0", "false", "no", "off")
    _pool.prestart()


def take(quiet: bool) -> _Shell | None:
    """A verified switch namespace with a dormant bridge, or None (then make a fresh one)."""
    if not quiet or not _pool.enabled:
        return None
    return _pool.take(TAKE_WAIT)


def adopt(shell: _Shell, name: str, mac: str, data: bytes, mtu: int | None) -> bool:
    """Turn the dormant bridge into the lab's first bridge, as a creation would have made it.

    False when it cannot be (an explicit MTU sets a flag a creation does not): the dormant bridge
    is then deleted so the caller creates the bridge afresh at the same ifindex.
    """
    links = shell.space.links
    if not shell.dormant:
        return False
    if mtu is not None:
        discard_dormant(shell)
        return False
    if set(attrs(data)) - SEATED_OPTIONS:
        Spares(shell, lambda node, space: None).release()
    info = nla(IFLA_INFO_KIND, b"bridge\0")
    if data:
        info += nla(IFLA_INFO_DATA | NLA_F_NESTED, data)
    ifname = None if name == shell.bridge_name else name  # a rename costs ~0.2 ms under rtnl
    body = ifinfo(BRIDGE_INDEX) + link_attrs(ifname, mac) + nla(IFLA_LINKINFO | NLA_F_NESTED, info)
    try:
        links.rtnl.request(16, body)
    except OSError:
        discard_dormant(shell)  # half-applied options: start again from a fresh bridge
        return False
    shell.dormant = False
    return True


# Bridge options the dormant bridge may take with spares seated in it (down ports, disabled):
# timers, STP and priority (a port's STP state starts over when it comes up), forwarding masks
# and limits. Any other (VLAN filtering, default PVID, multicast snooping ...) may act on the
# bridge's ports as they join or as it is set: the seated spares leave the bridge first.
SEATED_OPTIONS = frozenset({1, 2, 3, 4, 5, 6, 9, 20, 49})


def discard_dormant(shell: _Shell) -> None:
    """Delete the dormant bridge (synchronously: it waits for the barrier this module avoids);
    the spares seated in it are left in no bridge."""
    shell.dormant = False
    shell.seats = {}
    shell.space.rtnl.request(RTM_DELLINK, IFINFO.pack(0, 0, BRIDGE_INDEX, 0, 0))


class Spares:
    """A lab's way to the spare links of its reused switch namespace (see vlab.nsspares).

    ``adopt_space(node, space)`` makes a peer namespace the pool kept the lab's namespace
    ``node``, when the lab takes the veth pair that goes with it.
    """

    def __init__(self, shell: _Shell, adopt_space: Callable[[str, Space], None]) -> None:
        self.shell = shell
        self.adopt_space = adopt_space

    def tap(self, name: str) -> tuple[int, int, socket.socket | None] | None:
        """The spare tap called ``name`` as ``(ifindex, fd, its stamping socket)``, or None."""
        shell = self.shell
        spare = shell.taps.pop(name, None)
        if spare is None:
            return None
        index, fd = spare
        _count_from(shell.space, index, shell.counters.pop(index, None))
        return index, fd, shell.socks.pop(index, None)

    def pair(
        self, node: str, port: str, ifname: str
    ) -> tuple[Space, int, int, socket.socket | None] | None:
        """The spare veth ``port`` whose far end is ``ifname`` in the kept namespace ``node``,
        as ``(that namespace, ifindex, far ifindex, the far end's socket)``; or None (a spare
        called ``port`` that goes elsewhere is deleted, so that the lab can make its own)."""
        shell = self.shell
        peer = shell.pairs.get(port)
        if peer is None:
            return None
        pair = peer.pair
        if (pair.node, pair.ifname) != (node, ifname):
            self.drop(port)
            return None
        del shell.pairs[port]
        _count_from(shell.space, pair.index, shell.counters.pop(pair.index, None))
        _count_from(peer.space, pair.far_index, peer.counters)
        self.adopt_space(node, peer.space)
        sock, peer.sock = peer.sock, None
        return peer.space, pair.index, pair.far_index, sock

    def seat(self, index: int, bridge: int, mtu: int | None) -> bool:
        """Whether the spare ``index`` the lab takes for bridge ``bridge`` stays where it sits:
        seated in the dormant bridge with the number a port joining now would get, no MTU asked
        (a port's MTU moves the bridge's, which the seated spares nobody took hold down). If
        not, the seated spares leave the bridge first (:meth:`release`), and the caller makes
        the link join it: the kernel numbers it as in a fresh bridge."""
        shell = self.shell
        number = shell.seats.get(index)
        fits = bridge == BRIDGE_INDEX and mtu in (None, 1500) and not shell.dormant
        if fits and number == shell.seated_taken + 1:
            del shell.seats[index]
            shell.seated_taken += 1
            return True
        self.release()
        return False

    def release(self) -> None:
        """Take the seated spares nobody took out of the dormant bridge (one request each),
        before the lab can see the bridge: a fresh one holds only the lab's ports."""
        shell = self.shell
        seats, shell.seats = shell.seats, {}
        for index in sorted(seats, key=seats.__getitem__, reverse=True):
            nsspares.set_master(shell.space.rtnl, index, 0)

    def drop(self, name: str) -> None:
        """A link called ``name`` is about to be made afresh: a spare of that name goes first."""
        self.release()
        shell = self.shell
        tap = shell.taps.pop(name, None)
        peer = shell.pairs.pop(name, None)
        doomed = [t[0] for t in (tap,) if t is not None]
        doomed += [peer.pair.index] if peer is not None else []
        try:
            if tap is not None:
                shell.reap([s for s in (shell.socks.pop(tap[0], None),) if s is not None])
                taplib.release_tap(tap[1])
            if doomed:
                nsspares.delete_links(shell.space.rtnl, doomed)
        finally:
            if peer is not None:
                peer.close()

    def discard(self) -> None:
        """Delete every spare nobody took: before a test looks into the switch namespace,
        where a fresh one would have none."""
        shell = self.shell
        doomed, peers = shell.spare_indexes(), list(shell.pairs.values())
        shell.seats = {}  # deleted with them
        shell.drop_taps()
        shell.pairs = {}
        shell.counters.clear()
        try:
            if doomed:
                nsspares.delete_links(shell.space.rtnl, doomed)
        finally:
            for peer in peers:
                peer.close()
            for batch in shell.reaping:  # the spares' sockets: ``ss`` there must not see them
                batch.wait()


def _count_from(space: Space, index: int, counters: bytes | None) -> None:
    if counters is not None:
        space.counter_base[index] = counters


def give(
    shell: _Shell,
    factory: Any,
    peers: Iterable[tuple[Space, nsspares.Pair, socket.socket | None]] = (),
    taps: dict[int, int] | None = None,
    closing: Iterable[reaper.Batch] | None = None,
    tap_socks: dict[int, socket.socket] | None = None,
) -> None:
    """Hand a closed lab's switch namespace over to be reset, verified and reused (or dropped),
    with the peer namespaces whose one veth pair may stay as a spare (each with the packet socket
    on the pair's far end), and the fds of the taps that may stay (``{ifindex: fd}``) with their
    stamping sockets (``tap_socks``); the pool owns all of them from here on.

    ``factory(name, ns=None)`` makes a lab namespace object: a fresh one, or one with fresh
    sockets in ``ns``.
    """
    held = [_Peer(space, pair, sock) for space, pair, sock in peers]
    shell.keep = dict(taps or {})
    base = shell.space.counter_base  # a tap taken from the spares: its counters when parked
    shell.keep_counters = {index: base[index] for index in shell.keep if index in base}
    shell.socks.update(tap_socks or {})
    shell.closing = list(closing) if closing is not None else None
    if not _pool.enabled:
        for peer in held:
            peer.close()
        shell.close()
        return
    for peer in held:
        peer.detach()
    shell.parked = held
    shell.detach()
    _pool.give(shell, factory)


Shell = _Shell  # what a lab holds of its pooled switch namespace (public for annotations)


def wrap(space: Space) -> _Shell:
    """Start watching a fresh switch namespace so that it may join the pool when its lab ends."""
    return _Shell(space)
