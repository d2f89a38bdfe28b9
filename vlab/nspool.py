"""Switch namespaces reused from lab to lab, so that a suite never waits for a bridge to die.

Destroying a bridge runs ``rcu_barrier()`` while holding the rtnl lock (``br_multicast_dev_del``
from ``br_dev_uninit``), and the kernel does it for every dropped namespace in a kworker: in a
suite, the next lab's build waits behind that lock (p99 over 100 ms on a machine where a lab
builds in 5 ms). No order of teardown avoids the barrier; not destroying the bridge does.

So a closed lab's switch namespace is not dropped but handed here. Off the critical path, a
resetter thread deletes every link but ``lo`` and the bridge in one batched request (ports are
cheap to destroy: no barrier under rtnl), puts the bridge back to a fresh default bridge (name,
MAC, every option, down, flushed), and then *verifies* the namespace against the snapshot of a
freshly made one: links and their attributes, bridge options, addresses, routes, rules,
neighbours, fdb, mdb, nexthops, qdiscs, nftables and xtables tables, every net sysctl, the
sockets open in it and the processes inside it. Any difference, any error, any doubt (a bridge
MTU change seen during the lab, which sets a flag the kernel does not report) and the namespace is
dropped as before. A namespace nothing outside vlab's bookkeeping touched (no sysctl written,
never handed to the test or a program: ``NetNS.touched`` stays False) gets the same check
without the sections only a sysctl write or a program can change (sysctls, nftables, xtables,
processes, TCP's machine-wide socket tables): ~1 ms instead of ~15, so that resets keep up with
a suite on a small machine. The next lab takes a verified namespace and *adopts* its dormant
bridge for its first ``lab.bridge()`` with one request carrying the same attributes a creation
would; a lab that looks into its switch namespace before it has a bridge gets the dormant
bridge deleted first.

What a reused namespace cannot hide, and why reuse is opt-in (``VLAB_REUSE_NAMESPACES=1``, or
``nspool.pool().enabled = True``): the bridge's packet and carrier-change counters (the kernel
cannot zero them; vlab itself only compares counters as deltas), the ifindex numbers the kernel
hands to new links (a per-namespace cursor that only moves forward: a reused namespace's taps are
numbered after the previous lab's; vlab gives veths explicit ifindexes and reads taps' back, so
it never depends on the numbers), the bridge's TSO size limit until its first port joins, and
the namespace's inode number. Those are documented, not verified; everything else is.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import os
import queue
import socket
import struct
import threading
from collections.abc import Iterable
from typing import Any, Protocol

from vlab import reaper
from vlab.netns import NetNS
from vlab.rtnl import (
    IFINFO,
    IFLA_INFO_DATA,
    IFLA_INFO_KIND,
    IFLA_LINKINFO,
    IFLA_MTU,
    NLA_F_NESTED,
    LinkRequests,
    Rtnl,
    attrs,
    ifinfo,
    link_attrs,
    nla,
)

SPARE_NAME = "vlab-spare"
SPARE_MAC = "02:00:00:5e:00:53"
BRIDGE_INDEX = 2
PORT_GROUP = 0x7653  # links in this group are deleted in one request when a lab is reset
READY_MAX = 16
RESETTERS = 8
BACKLOG_MAX = 16  # namespaces waiting for a reset; beyond that, resets would only lag further

RTM_DELLINK = 17
RTM_GETADDR = 22
RTM_GETROUTE = 26
RTM_GETNEIGH = 30
RTM_GETRULE = 34
RTM_GETQDISC = 38
RTM_GETMDB = 86
RTM_GETNEXTHOP = 106
IFLA_GROUP = 27
RTNLGRP_LINK = 1

# top-level link attributes that change by themselves or are read elsewhere (AF_SPEC: sysctls):
# stats, stats64, af_spec, carrier counts, and IFLA_TSO_MAX_SIZE (read-only; a bridge that once
# had ports keeps the no-port value 524280 where a new one says 65536, until a port joins and the
# kernel recomputes it from the ports)
_VOLATILE_LINK = {7, 23, 26, 35, 47, 48, 59, IFLA_LINKINFO}
# bridge attributes that tick or are padding: hello/tcn/topology-change/gc timers, pad
_VOLATILE_BRIDGE = {16, 17, 18, 19, 40}
# read-only bridge attributes (ids, root, flags, timers, querier state, learnt count)
_READ_ONLY_BRIDGE = {10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 40, 47, 48}
_SOCKET_TABLES = (
    "packet",
    "raw",
    "raw6",
    "udp",
    "udp6",
    "tcp",
    "tcp6",
    "udplite",
    "udplite6",
    "icmp",
    "icmp6",
    "unix",
    "netlink",
)
_XTABLES = ("ip_tables_names", "ip6_tables_names", "arp_tables_names")


class Space(Protocol):
    """What the pool needs of a lab namespace (vlab.lab._Namespace)."""

    ns: NetNS
    rtnl: Rtnl
    links: LinkRequests
    next_index: int

    def close(self) -> None: ...


# --- snapshots ------------------------------------------------------------------------------


def _strip(body: bytes, head: int, volatile: Iterable[int]) -> bytes:
    """A message body without the attributes in ``volatile`` (top level only)."""
    skip = set(volatile)
    out = body[:head]
    offset = head
    while offset + 4 <= len(body):
        length, kind = struct.unpack_from("=HH", body, offset)
        if length < 4:
            break
        if kind & 0x3FFF not in skip:
            out += body[offset : offset + ((length + 3) & ~3)]
        offset += (length + 3) & ~3
    return out


def _links(rtnl: Rtnl) -> list[object]:
    out: list[object] = []
    for body in rtnl.dump(18, IFINFO.pack(0, 0, 0, 0, 0)):
        top = attrs(body, IFINFO.size)
        info = attrs(top.get(IFLA_LINKINFO, b""))
        data = attrs(info.get(IFLA_INFO_DATA, b""))
        spec = attrs(top.get(26, b""))
        inet6 = attrs(spec.get(10, b""))  # AF_INET6: only the address generation mode, token
        out.append(
            (
                _strip(body, IFINFO.size, _VOLATILE_LINK),
                info.get(IFLA_INFO_KIND, b""),
                sorted((k, v) for k, v in data.items() if k not in _VOLATILE_BRIDGE),
                inet6.get(8, b""),
                inet6.get(7, b""),
            )
        )
    return sorted(out, key=repr)


def _vlans(rtnl: Rtnl) -> list[tuple[int, bytes]]:
    """Every link's VLAN list (``bridge vlan show``: AF_BRIDGE with RTEXT_FILTER_BRVLAN).

    A plain link dump leaves them out: a VLAN added to the bridge device itself would otherwise
    go unseen by the check.
    """
    body = IFINFO.pack(7, 0, 0, 0, 0) + nla(29, struct.pack("=I", 1 << 1))  # IFLA_EXT_MASK
    out = []
    for msg in rtnl.dump(18, body):
        index = struct.unpack_from("=i", msg, 4)[0]
        out.append((index, attrs(msg, IFINFO.size).get(26, b"")))  # IFLA_AF_SPEC
    return sorted(out)


def _dump(rtnl: Rtnl, msg_type: int, head: bytes, volatile: Iterable[int]) -> list[bytes]:
    try:
        bodies = rtnl.dump(msg_type, head)
    except OSError as exc:
        return [f"unavailable: {exc.strerror}".encode()]
    return sorted(_strip(b, len(head), volatile) for b in bodies)


def _read(path: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        return f"unreadable: {exc.errno}".encode()
    try:
        return os.read(fd, 4096)
    except OSError as exc:
        return f"unreadable: {exc.errno}".encode()
    finally:
        os.close(fd)


def _sysctls() -> dict[str, bytes]:
    """Every net sysctl of the calling thread's namespace, by path."""
    out: dict[str, bytes] = {}
    for root, _dirs, files in os.walk("/proc/sys/net"):
        for name in files:
            path = f"{root}/{name}"
            out[path] = _read(path)
    return out


def _nft_tables() -> object:
    """How many nftables tables exist in the calling thread's namespace (any family)."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 12)
    except OSError as exc:
        return f"unavailable: {exc.strerror}"
    with sock:
        body = struct.pack("=BBH", 0, 0, 0)  # nfgenmsg: AF_UNSPEC, version 0, res_id
        msg_type = (10 << 8) | 1  # NFNL_SUBSYS_NFTABLES, NFT_MSG_GETTABLE
        sock.send(struct.pack("=IHHII", 16 + len(body), msg_type, 0x301, 1, 0) + body)
        tables = 0
        while True:
            data = sock.recv(1 << 16)
            offset = 0
            while offset + 16 <= len(data):
                length, kind, _f, _s, _p = struct.unpack_from("=IHHII", data, offset)
                if kind == 3:  # NLMSG_DONE
                    return tables
                if kind == 2:  # NLMSG_ERROR
                    (err,) = struct.unpack_from("=i", data, offset + 16)
                    return f"error {err}" if err else tables
                tables += 1
                offset += (length + 3) & ~3


def _processes(inode: int) -> list[str]:
    """Processes (and this process's threads other than the caller) inside the namespace."""
    found = []
    me = threading.get_native_id()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.stat(f"/proc/{pid}/ns/net").st_ino == inode and int(pid) != os.getpid():
                found.append(pid)
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):
            if int(tid) != me and os.stat(f"/proc/self/task/{tid}/ns/net").st_ino == inode:
                found.append(f"thread {tid}")
    return sorted(found)


# What only a program or a sysctl write can change: checked in full when the namespace was
# touched (NetNS.touched), skipped otherwise. TCP's tables are walked across the whole machine
# (~2 ms each), and vlab opens no TCP socket in a switch namespace.
FULL_ONLY = ("xtables", "sysctls", "nftables", "processes")
_FULL_ONLY_SOCKETS = ("tcp", "tcp6")


def snapshot(space: Space, full: bool = True) -> dict[str, object]:
    """Everything of a switch namespace a test could tell apart, as comparable values.

    ``full=False`` leaves out :data:`FULL_ONLY` (and TCP's socket tables): what changes only
    through a sysctl write, a program or a socket of the test's own, each of which marks the
    namespace touched. It costs about a millisecond where the full snapshot costs ~15.
    """
    rtnl = space.rtnl
    snap: dict[str, object] = {}
    with space.ns.entered():
        tables = (
            _SOCKET_TABLES
            if full
            else tuple(t for t in _SOCKET_TABLES if t not in _FULL_ONLY_SOCKETS)
        )
        snap["sockets"] = {
            name: len(_read(f"/proc/thread-self/net/{name}").splitlines()) for name in tables
        }
        if full:
            snap["xtables"] = {name: _read(f"/proc/thread-self/net/{name}") for name in _XTABLES}
            snap["sysctls"] = _sysctls()
            snap["nftables"] = _nft_tables()
    snap["links"] = _links(rtnl)
    snap["vlans"] = _vlans(rtnl)
    snap["addresses"] = _dump(rtnl, RTM_GETADDR, struct.pack("=BBBBI", 0, 0, 0, 0, 0), {6})
    snap["routes"] = _dump(
        rtnl, RTM_GETROUTE, struct.pack("=BBBBBBBBI", 0, 0, 0, 0, 0, 0, 0, 0, 0), {12}
    )
    snap["rules"] = _dump(
        rtnl, RTM_GETRULE, struct.pack("=BBBBBBBBI", 0, 0, 0, 0, 0, 0, 0, 0, 0), ()
    )
    neigh = struct.pack("=BxxxiHBB", 0, 0, 0, 0, 0)
    snap["neighbours"] = _dump(rtnl, RTM_GETNEIGH, neigh, {3, 4})
    snap["fdb"] = _dump(rtnl, RTM_GETNEIGH, struct.pack("=BxxxiHBB", 7, 0, 0, 0, 0), {3, 4})
    snap["mdb"] = _dump(rtnl, RTM_GETMDB, struct.pack("=BxxxI", 7, 0), ())
    snap["nexthops"] = _dump(rtnl, RTM_GETNEXTHOP, struct.pack("=BBBBI", 0, 0, 0, 0, 0), ())
    qdisc = struct.pack("=BxxxiIII", 0, 0, 0, 0, 0)
    snap["qdiscs"] = _dump(rtnl, RTM_GETQDISC, qdisc, {3, 4, 7})  # stats, xstats, stats2
    if full:
        snap["processes"] = _processes(space.ns.inode)
    return snap


def partial(reference: dict[str, object]) -> dict[str, object]:
    """The part of a full snapshot that a ``full=False`` snapshot has."""
    out = {k: v for k, v in reference.items() if k not in FULL_ONLY}
    sockets = reference.get("sockets")
    if isinstance(sockets, dict):
        out["sockets"] = {k: v for k, v in sockets.items() if k not in _FULL_ONLY_SOCKETS}
    return out


def differences(a: dict[str, object], b: dict[str, object]) -> list[str]:
    """Names of the sections (and sysctls) in which two snapshots differ."""
    out: list[str] = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if x == y:
            continue
        if key == "sysctls" and isinstance(x, dict) and isinstance(y, dict):
            out.extend(f"sysctl {p}" for p in sorted(set(x) | set(y)) if x.get(p) != y.get(p))
        else:
            out.append(key)
    return out


# --- the pool ---------------------------------------------------------------------------------


class _Shell:
    """A pooled switch namespace and what the pool knows of it."""

    def __init__(self, space: Space) -> None:
        self.space = space
        self.events = _link_events(space.ns)
        self.dormant = False  # holds the reset bridge, not yet a lab's

    def mtu_changed(self) -> bool:
        """Did the bridge ever have another MTU than 1500 since the last call (or were events lost)?

        Changing a bridge's MTU sets a flag (MTU set by user: it stops following its ports)
        that no dump shows; any MTU other than the default seen in a link event means doubt.
        """
        changed = False
        default = struct.pack("=I", 1500)
        while True:
            try:
                data = self.events.recv(1 << 16)
            except BlockingIOError:
                return changed
            except OSError:
                return True  # ENOBUFS: events were lost
            offset = 0
            while offset + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                body = data[offset + 16 : offset + length]
                offset += (length + 3) & ~3
                if kind != 16 or len(body) < IFINFO.size:  # RTM_NEWLINK
                    continue
                if struct.unpack_from("=i", body, 4)[0] != BRIDGE_INDEX:
                    continue
                mtu = attrs(body, IFINFO.size).get(IFLA_MTU)
                if mtu is not None and mtu != default:
                    changed = True

    def close(self) -> None:
        self.events.close()
        self.space.close()


def _link_events(ns: NetNS) -> socket.socket:
    with ns.entered():
        sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, 0
        )
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind((0, 1 << (RTNLGRP_LINK - 1)))
    except BaseException:
        sock.close()
        raise
    return sock


class Pool:
    """Verified switch namespaces with a dormant bridge, and the threads that reset them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ready: collections.deque[_Shell] = collections.deque()
        self.dirty: queue.SimpleQueue[tuple[_Shell, Any]] = queue.SimpleQueue()
        self.reference: dict[str, object] | None = None
        self.reference_data: dict[int, bytes] = {}
        self.threads: list[threading.Thread] = []
        self.idle = threading.Condition(self.lock)
        self.in_flight = 0  # handed over, not yet reused or dropped
        self.stats = {"reused": 0, "discarded": 0, "taken": 0}
        self.last_discard: list[str] = []
        # Opt-in (VLAB_REUSE_NAMESPACES=1): a closed lab's switch namespace stays held by this
        # process until it is reused, which "a closed lab leaves no namespace" checks would see.
        self.enabled = os.environ.get("VLAB_REUSE_NAMESPACES", "").strip() not in ("", "0")

    def _ensure_threads(self) -> None:
        with self.lock:
            self.threads = [t for t in self.threads if t.is_alive()]
            while len(self.threads) < RESETTERS:
                t = threading.Thread(target=self._serve, name="vlab-nspool", daemon=True)
                t.start()
                self.threads.append(t)

    def take(self) -> _Shell | None:
        with self.lock:
            if not self.ready:
                return None
            self.stats["taken"] += 1
            return self.ready.popleft()

    def give(self, shell: _Shell, factory: Any) -> None:
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
            try:
                # the lab's packet sockets (endpoints, tap watchers) were handed to the reaper
                # before the namespace came here: an open one would fail the verification
                reaper.drain()
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
                self.ready.append(shell)
                keep = True
        if not keep:
            shell.close()

    def _make_reference(self, factory: Any) -> None:
        """Snapshot of a fresh namespace with a fresh dormant bridge (taken once)."""
        space = factory()
        shell = _Shell(space)
        try:
            space.links.add_bridge(SPARE_NAME, BRIDGE_INDEX, SPARE_MAC)
            space.links.set_link(BRIDGE_INDEX, up=False)
            self.reference_data = space.rtnl.bridge_data(BRIDGE_INDEX)
            shell.mtu_changed()
            self.reference = snapshot(space)
        except BaseException:
            shell.close()
            raise
        shell.dormant = True
        with self.lock:
            self.ready.append(shell)

    def _reset(self, shell: _Shell, factory: Any) -> list[str]:
        if self.reference is None:
            self._make_reference(factory)
        assert self.reference is not None
        space = shell.space
        rtnl = space.rtnl
        links = space.links
        ports = [i for i, _o, _q in links.link_states().values() if i not in (1, BRIDGE_INDEX)]
        grouped = 0
        for index in ports:
            try:
                rtnl.request(
                    16,
                    IFINFO.pack(0, 0, index, 0, 0) + nla(IFLA_GROUP, struct.pack("=I", PORT_GROUP)),
                )
                grouped += 1
            except OSError as exc:
                # a veth goes with its peer: the kernel may be deleting it with the far namespace
                if exc.errno != errno.ENODEV:
                    raise
        if grouped:
            try:
                rtnl.request(
                    RTM_DELLINK,
                    IFINFO.pack(0, 0, 0, 0, 0) + nla(IFLA_GROUP, struct.pack("=I", PORT_GROUP)),
                )
            except OSError as exc:
                if exc.errno != errno.ENODEV:  # the group emptied itself meanwhile
                    raise
        if shell.mtu_changed():
            return ["the bridge's MTU changed during the lab"]
        current = rtnl.bridge_data(BRIDGE_INDEX)
        data = b"".join(
            nla(kind, value)
            for kind, value in sorted(self.reference_data.items())
            if kind not in _READ_ONLY_BRIDGE and current.get(kind) != value
        )
        data += nla(21, b"")  # IFLA_BR_FDB_FLUSH
        info = nla(IFLA_INFO_KIND, b"bridge\0") + nla(IFLA_INFO_DATA | NLA_F_NESTED, data)
        body = (
            ifinfo(BRIDGE_INDEX, up=False)
            + link_attrs(SPARE_NAME, SPARE_MAC)
            + nla(IFLA_LINKINFO | NLA_F_NESTED, info)
        )
        rtnl.request(16, body)
        shell.mtu_changed()
        touched = space.ns.touched
        if touched:
            self.stats["full checks"] = self.stats.get("full checks", 0) + 1
            problems = differences(self.reference, snapshot(space))
        else:
            problems = differences(partial(self.reference), snapshot(space, full=False))
        if not problems:
            space.ns.touched = False
        space.next_index = BRIDGE_INDEX
        return problems


_pool = Pool()


def pool() -> Pool:
    return _pool


def enabled() -> bool:
    """Whether closed labs' switch namespaces go to the pool (opt-in, see the module doc)."""
    return _pool.enabled


def empty(timeout: float = 30.0) -> bool:
    """Drop every pooled namespace, once every reset in progress has ended.

    Run at the end of a pytest session (the plugin does), and before checking that closed labs
    left no namespace, fd or thread behind: the pool holds namespaces on purpose. False if a
    reset did not end within ``timeout``.
    """
    done = _pool.drain(timeout)
    while (shell := _pool.take()) is not None:
        shell.close()
    return done


def configure(setting: str | None) -> None:
    """Reuse on or off from a pytest ini value or the environment, the environment winning.

    ``VLAB_REUSE_NAMESPACES=0`` (or ``vlab_reuse_namespaces = false``) turns it off; the
    plugin turns it on for ``pytest --vlab`` sessions, where the pool is emptied at the end.
    """
    value = os.environ.get("VLAB_REUSE_NAMESPACES", setting or "1").strip().lower()
    _pool.enabled = value not in ("", "0", "false", "no", "off")


def take(quiet: bool) -> _Shell | None:
    """A verified switch namespace with a dormant bridge, or None (then make a fresh one)."""
    if not quiet or not _pool.enabled:
        return None
    return _pool.take()


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
    info = nla(IFLA_INFO_KIND, b"bridge\0")
    if data:
        info += nla(IFLA_INFO_DATA | NLA_F_NESTED, data)
    body = ifinfo(BRIDGE_INDEX) + link_attrs(name, mac) + nla(IFLA_LINKINFO | NLA_F_NESTED, info)
    try:
        links.rtnl.request(16, body)
    except OSError:
        discard_dormant(shell)  # half-applied options: start again from a fresh bridge
        return False
    shell.dormant = False
    return True


def discard_dormant(shell: _Shell) -> None:
    """Delete the dormant bridge (synchronously: it waits for the barrier this module avoids)."""
    shell.dormant = False
    shell.space.rtnl.request(RTM_DELLINK, IFINFO.pack(0, 0, BRIDGE_INDEX, 0, 0))


def give(shell: _Shell, factory: Any) -> None:
    """Hand a closed lab's switch namespace over to be reset, verified and reused (or dropped)."""
    if not _pool.enabled:
        shell.close()
        return
    _pool.give(shell, factory)


def wrap(space: Space) -> _Shell:
    """Start watching a fresh switch namespace so that it may join the pool when its lab ends."""
    return _Shell(space)
