"""One switch namespace and the services everything built in it depends on.

A :class:`Switch` owns what belongs to one switch namespace: its netlink socket and link
requests, the ifindex allocator and port-name counters, the readiness of its ports, the noise
filters (frames its bridges emit by themselves), the programs, sockets, taps and guests to close,
and the undo stack of the building call in progress. Bridges, ports, endpoints and links talk to
their switch, never to the :class:`~vlab.lab.Lab`; what is shared by every switch namespace of a
lab (its lock, its registries, lab-wide readiness, settling and failure reports) the switch
reaches through its :class:`Fabric`.

A lab has one switch (``lab.switch``); a second one is another ``Switch`` over another
namespace, with the same building calls (:class:`vlab.build.Builder`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from vlab import programs, quiesce, spawn, tools, validate
from vlab import tap as taplib
from vlab.errors import LabError
from vlab.netns import NetNS
from vlab.nsspares import Pair
from vlab.reaper import Batch, reap
from vlab.rtnl import LinkRequests, Rtnl, qdisc_events

if TYPE_CHECKING:
    from pathlib import Path

    from vlab.bridge import Bridge, Port
    from vlab.capture import Record
    from vlab.endpoints import Endpoint
    from vlab.frames import Mask
    from vlab.guard import LabGuard
    from vlab.lab import Lab
    from vlab.loss import Loss

QUIET_SYSCTLS = (
    # no link-local addresses, router solicitations, DAD or MLD reports on lab links
    ("net/ipv6/conf/all/disable_ipv6", "1"),
    ("net/ipv6/conf/default/disable_ipv6", "1"),
    # the bridge device's own IGMP reports for 224.0.0.x (e.g. 224.0.0.106 MRD)
    ("net/ipv4/igmp_link_local_mcast_reports", "0"),
)
PURE_L2_SYSCTLS = (
    # br_netfilter, where built in, would drop malformed IP frames a pure L2 bridge forwards
    ("net/bridge/bridge-nf-call-iptables", "0"),
    ("net/bridge/bridge-nf-call-ip6tables", "0"),
    ("net/bridge/bridge-nf-call-arptables", "0"),
)
OPER_UP, OPER_UNKNOWN = 6, 0
FORWARDING = 3  # BR_STATE_FORWARDING


def random_mac(prefix: str) -> str:
    """A random MAC under ``prefix`` (whose first octet must be locally administered unicast)."""
    n = 6 - len(prefix.split(":"))
    return prefix + "".join(f":{b:02x}" for b in os.urandom(n))


def suppress_os() -> contextlib.suppress:
    """Undoing a failed build is best effort: the lab's close removes what is left anyway."""
    return contextlib.suppress(OSError)


def link_ready(links: LinkRequests, index: int, carrier_from_birth: bool) -> bool:
    """A link is ready when it has carrier, a real qdisc and operstate up; a link that had
    carrier from birth (a tap, a dummy) keeps operstate UNKNOWN, which counts as up."""
    oper, qdisc, carrier = links.link_state(index)
    if not carrier or qdisc in ("", "noop"):
        return False
    return oper == OPER_UP or (carrier_from_birth and oper == OPER_UNKNOWN)


class Namespace:
    """A lab namespace with its raw netlink socket, qdisc watch and ifindex allocator."""

    def __init__(self, name: str, quiet: bool = True, ns: NetNS | None = None) -> None:
        """Create the namespace (quiet: no IPv6/IGMP chatter) and open its sockets inside.

        ``ns``: an existing namespace (already set up) to open fresh sockets in, for a reused one
        (see vlab.nspool): the previous lab's objects keep its closed sockets and reach nothing.
        """
        fresh = ns is None
        self.ns = NetNS.create(name) if ns is None else ns
        opened: list[Any] = []  # sockets hold the namespace too: close them on a failure
        try:
            with self.ns.entered():
                sysctls = (QUIET_SYSCTLS if quiet else ()) + PURE_L2_SYSCTLS if fresh else ()
                for key, value in sysctls:
                    try:
                        with open("/proc/sys/" + key, "w") as fh:
                            fh.write(value)
                    except FileNotFoundError:
                        pass  # kernel without IPv6: already quiet
                self.rtnl = Rtnl()
                opened.append(self.rtnl)
                events = qdisc_events()
                opened.append(events)
                self.watch = quiesce.QdiscWatch(name, self.rtnl, events)
        except BaseException:
            for sock in opened:
                sock.close()
            self.ns.close()
            raise
        self.links = LinkRequests(self.rtnl)
        self.next_index = 2  # 1 is lo
        self.reserved: set[int] = set()  # ifindexes of links kept for reuse (vlab.nspool)
        # counters a reused link brought along, subtracted from what vlab reports (vlab.stats)
        self.counter_base: dict[int, bytes] = {}

    def index(self) -> int:
        """The next free ifindex: links are created with their index, in one request each."""
        while self.next_index in self.reserved:
            self.next_index += 1
        self.next_index += 1
        return self.next_index - 1

    def claim(self, index: int) -> None:
        """An index the kernel picked itself (a tap, a veth made with index 0) is taken."""
        self.next_index = max(self.next_index, index + 1)

    def close(self) -> None:
        """Close the fds that hold the namespace: the kernel destroys it with its links."""
        self.watch.close()
        self.rtnl.close()
        self.ns.close()


class Kept(NamedTuple):
    """What a closing switch leaves to the pool: tap fds and stamping sockets by ifindex, the
    sockets of kept pairs' far ends by port."""

    taps: dict[int, int]
    tap_socks: dict[int, socket.socket]
    pair_socks: dict[str, socket.socket]


class SpareLinks(Protocol):
    """Links an earlier lab left in a reused switch namespace (vlab.nspool.Spares)."""

    def tap(self, name: str) -> tuple[int, int, socket.socket | None] | None:
        """The spare tap ``name``, taken, as ``(ifindex, fd, its kept socket)``; or None."""
        ...

    def pair(
        self, node: str, port: str, ifname: str
    ) -> tuple[Any, int, int, socket.socket | None] | None:
        """The spare veth ``port`` to ``ifname`` in namespace ``node``, taken, as
        ``(that namespace, ifindex, far ifindex, the far end's kept socket)``; or None (a
        mismatching one is deleted)."""
        ...

    def drop(self, name: str) -> None:
        """Delete the spare link ``name`` if there is one."""
        ...

    def seat(self, index: int, bridge: int, mtu: int | None) -> bool:
        """Whether the taken spare ``index`` is a port of ``bridge`` already, as a fresh port
        joining now would be; if not, the seated spares left have left the bridge."""
        ...

    def release(self) -> None:
        """The seated spares nobody took leave the bridge."""
        ...


class Fabric(Protocol):
    """What every switch namespace of a lab shares: implemented by the lab for its switches.

    The registries are the lab's own dicts (names are unique across the lab), so a switch
    registers into them and a rollback restores them.
    """

    guard: LabGuard
    endpoints: dict[str, Endpoint]
    bridges: dict[str, Bridge]
    spaces: dict[str, Namespace]

    def namespace(self, name: str) -> Namespace:
        """The lab namespace called ``name``, created on first use."""
        ...

    def check_name(self, name: str, what: str) -> None:
        """Refuse a malformed name, or one already used anywhere in the lab."""
        ...

    def bridge_of(self, bridge: Bridge | str) -> Bridge:
        """A bridge of this lab, by object or name (a LabError otherwise)."""
        ...

    def topology_changed(self) -> None:
        """Links came or went: readiness must be checked again, qdisc snapshots are stale."""
        ...

    def ready(self) -> None:
        """Lab-wide readiness (every switch, every guest) before a frame is sent."""
        ...

    def settle(self, what: str, timeout: float = 10.0) -> None:
        """Lab-wide settle: every frame in flight delivered or dropped; losses fail it."""
        ...

    def settle_unless_quiet(self, what: str) -> None:
        """Settle, unless nothing moved since the last settle found the lab quiet."""
        ...

    def fail_missing(self, ep: Endpoint, mask: Mask, timeout: float) -> None:
        """Raise the AssertionError of an ``expect`` that timed out."""
        ...

    def fail_lost(self, lost: list[Loss], what: str) -> None:
        """Raise :class:`vlab.loss.FramesLost` for frames lost before vlab read them."""
        ...

    def fail_unexpected(self, ep: Endpoint, mask: Mask | None, unexpected: list[Record]) -> None:
        """Raise the AssertionError of an ``expect_none`` that saw frames."""
        ...

    def guest_dir(self) -> Path:
        """Where QEMU guests keep their boot logs."""
        ...


class Switch:
    """The services of one switch namespace, for the bridges, ports, endpoints and links in it.

    ``lab`` is the public facade (what ``br.lab`` and ``ep.lab`` answer); everything the
    library needs goes through the switch's own methods and its :class:`Fabric`.
    """

    def __init__(
        self, lab: Lab, fabric: Fabric, name: str, space: Namespace, upstream: str = "upstream"
    ) -> None:
        """``name`` is the namespace's node name (``lab.run(name, ...)``); ``upstream`` the
        node the far ends of this switch's uplinks live in."""
        self.lab = lab
        self.fabric = fabric
        self.name = name
        self.space = space
        self.upstream = upstream
        self.guard = fabric.guard
        self.noise: list[Callable[[bytes], bool]] = []  # frames the bridges emit by themselves
        self.programs: list[programs.Program] = []  # background programs: die with the lab
        self.sockets: list[Any] = []  # packet-socket ports, reaped at close
        self.closing: list[Batch] = []  # ... and the reaper's word on when they are closed
        self.taps: list[int] = []
        self.guests: list[Any] = []
        self.undo: list[Callable[[], None]] = []  # steps undoing the build call in progress
        self.counters: dict[str, int] = {"vnet": 0, "veth": 0, "eth": 0, "port": 0}
        # the first bridge of a pooled namespace adopts its dormant bridge (see vlab.nspool)
        self.adopt: Callable[[str, int, str, bytes, int | None], bool] | None = None
        # ... and its dormant bridge holds the first ifindex: a link made before any bridge
        # has it deleted first (set by the lab, run once)
        self.before_link: Callable[[], None] | None = None
        # links an earlier lab left in a reused switch namespace (see vlab.nsspares)
        self.spares: SpareLinks | None = None
        # taps only vlab's fd ever held, {ifindex: fd}: fit for reuse (see vlab.nsspares)
        self.plain_taps: dict[int, int] = {}
        self.plain_socks: dict[int, socket.socket] = {}  # ... and their stamping sockets
        self.pairs: list[Pair] = []  # veths cabled to peer namespaces: fit for reuse too
        self.pair_socks: dict[str, socket.socket] = {}  # ... their far ends' sockets, by port
        # a port left a bridge and came back, or a building call was undone: the pool seats
        # every spare anew (the order ports joined in may differ from their numbers' order)
        self.anew = False

    # --- the namespace ---------------------------------------------------------------------

    @property
    def ns(self) -> NetNS:
        """The switch namespace (its fd is owned by the lab)."""
        return self.space.ns

    @property
    def rtnl(self) -> Rtnl:
        """The namespace's raw netlink socket, for bridge, port and fdb requests."""
        return self.space.rtnl

    @property
    def links(self) -> LinkRequests:
        """Link requests in the namespace: one RTM_NEWLINK per link."""
        return self.space.links

    @property
    def watch(self) -> quiesce.QdiscWatch:
        """The namespace's qdisc/counter watch used by settling."""
        return self.space.watch

    def index(self) -> int:
        """A fresh ifindex in the switch namespace, for any link but a bridge."""
        if self.before_link is not None:
            hook, self.before_link = self.before_link, None
            hook()
        return self.space.index()

    def bridge_index(self) -> int:
        """A fresh ifindex for a bridge: the first one may adopt a pooled dormant bridge at
        that index (see :attr:`adopt`), so nothing has to make way for it."""
        self.before_link = None
        return self.space.index()

    def seat(self, index: int, br: int, mtu: int | None) -> bool:
        """Whether the spare link ``index`` being taken for bridge ``br`` is a port of it
        already, numbered as a fresh port would be (see vlab.nsspares): the caller then leaves
        its master alone; otherwise it makes the link join ``br``."""
        return self.spares is not None and self.spares.seat(index, br, mtu)

    def release_spares(self) -> None:
        """Before anything but taking a seated spare: the seated spares nobody took leave the
        bridge, so that it holds the lab's ports only (see vlab.nsspares)."""
        if self.spares is not None:
            self.spares.release()

    def next_name(self, prefix: str, spare: bool = False) -> str:
        """The next port name with ``prefix`` (``vnet0``, ``veth3``...), unique in this switch.

        A spare link of that name (see :attr:`spares`) is deleted first, unless ``spare``: the
        caller then takes it (``spares.tap``/``spares.pair``), or they delete it.
        """
        n = self.counters.setdefault(prefix, 0)
        self.counters[prefix] = n + 1
        name = f"{prefix}{n}"
        if self.spares is not None and not spare:
            self.spares.drop(name)
        return name

    # --- what the switch closes ------------------------------------------------------------

    def own_socket(self, sock: Any) -> None:
        """A packet-socket port (or tap socket) closed, off the critical path, at the end."""
        self.sockets.append(sock)

    def own_tap(self, fd: int) -> None:
        """A tap fd: made persistent and closed at the end; forgotten if the build fails."""
        self.taps.append(fd)
        self.undo.append(lambda: self.forget_tap(fd))

    def forget_tap(self, fd: int) -> None:
        """Close a tap fd now (a failed build), rather than at the lab's close."""
        self.taps.remove(fd)
        taplib.discard_tap(fd)

    def own_guest(self, guest: Any) -> None:
        """A QEMU guest (anything with ``close()``), closed with the lab."""
        self.guests.append(guest)

    def on_undo(self, step: Callable[[], None]) -> None:
        """Undo ``step`` if the building call in progress fails (a link in a namespace that
        stays, say); steps run newest first."""
        self.undo.append(step)

    @contextmanager
    def rollback(self) -> Iterator[list[Callable[[], None]]]:
        """Undo everything a building call made if it fails, so that a retry works.

        The registries, port-name counters, new namespaces and sockets are restored from a
        snapshot; callers push undo steps (:meth:`on_undo`) for what a snapshot cannot see.
        Undo steps run newest first and never mask the real error.
        """
        fabric = self.fabric
        undo: list[Callable[[], None]] = []
        self.undo = undo
        counters = dict(self.counters)
        spaces, endpoints = set(fabric.spaces), set(fabric.endpoints)
        ports = {name: set(br.ports) for name, br in fabric.bridges.items()}
        sockets, guests, pairs = len(self.sockets), len(self.guests), len(self.pairs)
        try:
            yield undo
        except BaseException:
            self.anew = True  # whatever it undoes, ports may have left a bridge
            steps = [*reversed(undo)]
            steps += [g.close for g in self.guests[guests:]]
            steps += [s.close for s in self.sockets[sockets:]]
            for pair in self.pairs[pairs:]:
                self.pair_socks.pop(pair.port, None)
            del self.guests[guests:], self.sockets[sockets:], self.pairs[pairs:]
            for step in steps:
                with suppress_os():
                    step()
            for name in set(fabric.spaces) - spaces:
                fabric.spaces.pop(name).close()
            for name in set(fabric.endpoints) - endpoints:
                del fabric.endpoints[name]
            for name, br in fabric.bridges.items():
                for port in set(br.ports) - ports.get(name, set()):
                    del br.ports[port]
            self.counters.clear()
            self.counters.update(counters)
            raise

    def register(self, ep: Endpoint, br: Bridge, index: int, port_mac: str) -> Port:
        """``ep`` is cabled to ``br`` through the port link ``index``: into the registry."""
        from vlab.bridge import Port

        port = Port(br, ep.port, index, ep, port_mac)
        br.ports[ep.port] = port
        self.fabric.endpoints[ep.name] = ep
        self.topology_changed()
        return port

    def register_endpoint(self, ep: Endpoint) -> None:
        """An endpoint without a port of its own (the bridge device, ``br.local``)."""
        self.fabric.endpoints[ep.name] = ep
        self.topology_changed()

    # --- state changes ---------------------------------------------------------------------

    def topology_changed(self) -> None:
        """Links came, went or changed state: the lab's readiness is checked again."""
        self.fabric.topology_changed()

    def sync_link(self, index: int, port: str | None = None, up: bool = True) -> None:
        """Run the kernel's deferred link-watch work for ``index`` now (a single-link GETLINK),
        so the bridge has acted on a carrier change when this returns."""
        self.links.link_state(index)
        if port is not None and not up:  # kernels whose GETLINK runs no linkwatch work (6.1)
            deadline = time.monotonic() + 2.0  # act on carrier loss up to a second later
            while self.links.port_states().get(port, 0) and time.monotonic() < deadline:
                time.sleep(0.002)

    # --- lab-wide services, for the objects of this switch ---------------------------------

    def ready(self) -> None:
        """Wait until the lab can carry frames (every switch of it): before a send."""
        self.fabric.ready()

    def settle(self, what: str, timeout: float = 10.0) -> None:
        """Settle the lab; ``what`` names the check in a loss report."""
        self.fabric.settle(what, timeout)

    def settle_unless_quiet(self, what: str) -> None:
        """Settle the lab unless nothing moved since it was last found quiet."""
        self.fabric.settle_unless_quiet(what)

    # --- readiness -------------------------------------------------------------------------

    def bridges(self) -> list[Bridge]:
        """The bridges in this switch namespace."""
        return [br for br in self.fabric.bridges.values() if br.switch is self]

    def endpoints(self) -> list[Endpoint]:
        """The endpoints cabled to this switch's bridges."""
        return [ep for ep in self.fabric.endpoints.values() if ep.switch is self]

    def not_ready(self) -> list[str]:
        """What of this switch is not ready yet: ports not up or not forwarding, and whatever
        each endpoint kind says of its own links (:meth:`vlab.endpoints.Endpoint.not_ready`)."""
        missing = []
        states = self.links.port_states()
        for br in self.bridges():
            for port in br.ports.values():
                ep = port.endpoint
                if (ep is not None and not ep.carrier) or port.admin_down or port.foreign:
                    continue
                # a link kind without an endpoint (a vxlan port) says so on its port
                birth = ep.carrier_from_birth if ep is not None else port.carrier_from_birth
                if not link_ready(self.links, port.index, birth):
                    missing.append(f"{port.name} is not up")
                elif not (port.state_managed or br.stp) and states.get(port.name) != FORWARDING:
                    missing.append(f"{port.name} is not forwarding yet")
        for ep in self.endpoints():
            if ep.carrier:
                missing.extend(ep.not_ready())
        return missing

    # --- programs --------------------------------------------------------------------------

    def run(
        self, ns: NetNS, argv: list[str], check: bool = True, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a program in a namespace of this switch, dying with this process."""
        argv = validate.argv(argv, ns.name)
        check = validate.flag(check, "run(check)")
        timeout = validate.timeout(timeout, "run")
        argv = tools.resolve(argv)  # ip, bridge, tc: in /usr/sbin, off a normal user's PATH
        ns.touched = True  # a program can change anything there: a pool checks all of it
        # every program dies with this process, SIGKILL included (see vlab.programs.dying)
        return spawn.run(ns, argv, check=check, timeout=timeout, wrap=programs.dying)

    def spawn(self, node: str, ns: NetNS, argv: list[str]) -> programs.Program:
        """Start a background program in ``ns``; it is killed when the lab closes."""
        argv = validate.argv(programs.as_list(argv, node), node)
        ns.touched = True  # a program can change anything there: a pool checks all of it
        return programs.start(self, node, ns, argv, launcher=spawn.background)

    # --- closing ---------------------------------------------------------------------------

    def stop_programs(self) -> None:
        """First at close: no program survives the namespaces it runs in."""
        programs.stop_all(self)

    def close(self, keep_taps: bool = False, keep_pairs: Collection[str] = ()) -> Kept:
        """Close guests and taps now; then packet sockets, off the critical path.

        ``keep_taps``: the fds of :attr:`plain_taps` and their sockets are not closed but
        returned, for the pool to keep the taps as they are (see vlab.nsspares); so are the
        sockets on the far ends of the pairs ``keep_pairs`` (by port). Resumable: whatever an
        interrupt cut short, a second call finishes.
        """
        kept = {i: fd for i, fd in self.plain_taps.items() if fd in self.taps} if keep_taps else {}
        socks = {i: s for i, s in self.plain_socks.items() if i in kept and s.fileno() >= 0}
        far = {p: s for p, s in self.pair_socks.items() if p in keep_pairs and s.fileno() >= 0}
        self.plain_taps, self.plain_socks, self.pair_socks = {}, {}, {}
        try:
            while self.guests:
                self.guests.pop().close()
            while self.taps:
                fd = self.taps.pop()
                if fd not in kept.values():
                    taplib.release_tap(fd)
        finally:
            staying = {id(s) for s in [*socks.values(), *far.values()]}
            self.closing.append(reap([s.sock for s in self.sockets if id(s.sock) not in staying]))
            self.sockets.clear()
        return Kept(kept, socks, far)

    def __repr__(self) -> str:
        return f"<Switch {self.name} of lab {self.lab.name}>"


def unknown_node(node: object, fabric: Fabric) -> LabError:
    """The error for ``lab.run``/``spawn`` on a node that is not a namespace of the lab."""
    return LabError(f"unknown node {node!r}; nodes of this lab: {', '.join(fabric.spaces)}")
