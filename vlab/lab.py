"""The lab: namespaces, a switch namespace with bridges, and the endpoints cabled to them.

Layout of a lab (every namespace anonymous, held by an fd of this process):

    switch   bridges; VM taps (vnetN) and the bridge-side ends of veths (vethN, ethN)
    <host>   one per host: eth0, the far end of its veth
    upstream the far ends of uplinks: the physical network beyond the pNIC

Everything is built with one netlink request per link, and torn down by dropping namespaces
rather than deleting links, which is what makes a lab cost milliseconds to build and nothing to
leave behind.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlab import cable as cablelib
from vlab import (
    delivery,
    limits,
    loss,
    nspool,
    quiesce,
    reaper,
    report,
    rootless,
    scratch,
    stp,
    validate,
)
from vlab import programs as proglib
from vlab import tap as taplib
from vlab.bridge import Bridge
from vlab.build import TAP_TXQLEN, Builder
from vlab.capture import Record
from vlab.endpoints import EdgePoll, Endpoint, Host, NamespacedEndpoint
from vlab.errors import LabError
from vlab.frames import Mask
from vlab.guard import LabGuard, guarded
from vlab.mdb import mdb_text
from vlab.netns import NetNS
from vlab.nsspares import Pair
from vlab.options import normalize_mac
from vlab.paths import safe_component
from vlab.snapshot import EndpointSnapshot, LabSnapshot
from vlab.switch import (
    OPER_UNKNOWN,
    OPER_UP,
    PURE_L2_SYSCTLS,
    QUIET_SYSCTLS,
    Kept,
    Namespace,
    Switch,
    random_mac,
    unknown_node,
)
from vlab.uninterrupted import sigint_deferred
from vlab.vlan import vid_ranges

if TYPE_CHECKING:
    from scapy.layers.l2 import Ether

    from vlab.frames import FrameLike
    from vlab.hypervisor import Hypervisor
    from vlab.vxlan import Vxlan

_Namespace = Namespace  # the name it had before vlab.switch
__all__ = [
    "OPER_UNKNOWN",
    "OPER_UP",
    "PURE_L2_SYSCTLS",
    "QUIET_SYSCTLS",
    "TAP_TXQLEN",
    "Lab",
    "Where",
    "random_mac",
]


@dataclass(frozen=True)
class Where:
    """Answer to "which VM NIC is behind which tap on which bridge" for one MAC."""

    mac: str
    bridge: str
    port: str
    endpoint: str | None  # the endpoint cabled to that port
    owner: str | None  # the endpoint whose own MAC this is, if any
    how: str  # learnt, static, static+sticky, local, locked
    cable: str | None = None  # learnt through this cable from another bridge (no closer entry)
    vlan: int | None = None  # the entry's VLAN on a VLAN-aware bridge

    def __str__(self) -> str:
        who = f" ({self.owner}'s NIC)" if self.owner else ""
        behind = f" ({self.endpoint})" if self.endpoint else ""
        if self.cable:
            behind = f" (cable {self.cable})"
        where = f"port {self.port}{behind} on bridge {self.bridge}"
        vlan = f" in VLAN {self.vlan}" if self.vlan is not None else ""
        return f"{self.mac}{who} is behind {where}{vlan}, {self.how}"


class _LabFabric:
    """The lab seen from its switch namespaces (:class:`vlab.switch.Fabric`): its registries,
    and the lab-wide readiness, settling and failure reports."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.guard = lab._guard
        self.endpoints = lab.endpoints
        self.bridges = lab.bridges
        self.spaces = lab._spaces

    def namespace(self, name: str) -> Namespace:
        return self.lab._space(name)

    def check_name(self, name: str, what: str) -> None:
        self.lab._check_name(name, what)

    def bridge_of(self, bridge: Bridge | str) -> Bridge:
        return self.lab._bridge(bridge)

    def topology_changed(self) -> None:
        self.lab._topology_changed()

    def ready(self) -> None:
        self.lab._ready()

    def settle(self, what: str, timeout: float = 10.0) -> None:
        self.lab._settle(timeout, what)

    def settle_unless_quiet(self, what: str) -> None:
        self.lab._settle_unless_quiet(what)

    def fail_missing(self, ep: Endpoint, mask: Mask, timeout: float) -> None:
        self.lab._fail_expect(ep, mask, timeout)

    def fail_lost(self, lost: list[loss.Loss], what: str) -> None:
        self.lab._fail_lost(lost, what)

    def fail_unexpected(self, ep: Endpoint, mask: Mask | None, unexpected: list[Record]) -> None:
        self.lab._fail_none(ep, mask, unexpected)

    def guest_dir(self) -> Path:
        return self.lab.guest_dir()


def _pooled(name: str, ns: NetNS | None = None) -> Namespace:
    """A quiet lab namespace, fresh, or with fresh sockets in ``ns`` (what vlab.nspool makes
    and renews the namespaces it keeps with)."""
    return Namespace(name, True, ns)


class Lab(Builder):
    """A throwaway network lab; use as a context manager or through the ``lab`` fixture.

    The lab is the facade and the registry: it holds the namespaces, bridges and endpoints by
    name, and its building calls (:class:`vlab.build.Builder`: ``bridge``, ``vm``, ``host``,
    ``uplink``, ``port``) build in its switch namespace, ``lab.switch``
    (:class:`vlab.switch.Switch`), whose services the bridges and endpoints use.
    """

    def __init__(
        self, name: str = "lab", artifacts: Path | str | None = None, quiet: bool = True
    ) -> None:
        """``quiet=False`` keeps the kernel's IPv6/IGMP chatter, for tests that study it."""
        self.name = validate.lab_name(name)
        self.quiet = validate.flag(quiet, "Lab(quiet)")
        self.artifacts = validate.artifacts_dir(artifacts)
        self._guard = LabGuard(self.name)
        self.bridges: dict[str, Bridge] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.cables: dict[str, cablelib.Cable] = {}  # links between bridges (lab.cable)
        self.keep_bpdus = False  # True: BPDUs of the lab's bridges reach endpoint queues too
        self._spaces: dict[str, Namespace] = {}
        self._dirty = True
        self._closed = False
        self.artifact_dir: Path | None = None  # where this lab's failure artifacts went
        self._quiet: quiesce.Quiet | None = None  # the lab when a settle last found it quiet
        self._edges = EdgePoll()
        self._drain_hooks: list[Callable[[], int]] = []  # queues only a probe can empty
        self._guest_dir: Path | None = None
        self._guest_dir_is_temp = False
        if os.geteuid() != 0:  # a non-root user builds labs as root of a user namespace
            rootless.ensure()
        self._shell: nspool.Shell | None = None
        try:
            with sigint_deferred():  # a Ctrl-C between the take and the store would lose it
                self._shell = nspool.take(quiet)  # a reused switch namespace, dormant bridge
            self._make_switch()
        except BaseException:  # Ctrl-C included: no object will ever close what it holds
            self._abandon()
            raise

    def _make_switch(self) -> None:
        if self._shell is not None:
            self._spaces["switch"] = self._shell.space  # type: ignore[assignment]
        try:
            space = self._space("switch")
        except OSError as exc:
            problem = limits.fd_limit_error(exc, f"lab {self.name!r}: cannot create its switch")
            if problem is None:
                raise
            raise problem from None
        self._fabric = _LabFabric(self)
        self.switch = Switch(self, self._fabric, "switch", space)  # the lab's switch namespace
        self.switch.adopt = self._adopt_bridge
        self.switch.before_link = self._expose_switch
        if self._shell is not None:  # links the previous lab left there (see vlab.nsspares)
            self.switch.spares = nspool.Spares(self._shell, self._adopt_space)
            if self._shell.seats:  # ... seated in its bridge: gone before the lab can see it
                self._guard.settle = self.switch.release_spares
        self._switches = [self.switch]

    def _abandon(self) -> None:
        """A lab that failed to come into being lets go of its switch namespace (a pooled one
        was taken out of the pool: nothing else would close it)."""
        with sigint_deferred():
            shell, self._shell = self._shell, None
            spaces, self._spaces = self._spaces, {}
            try:
                for space in spaces.values():
                    if shell is None or space is not shell.space:
                        with contextlib.suppress(OSError):
                            space.close()
            finally:
                if shell is not None:
                    shell.close()

    # --- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Tear the lab down: close every fd that keeps its namespaces alive.

        Taps are made persistent first so closing them does not wait on an unregister, and
        packet sockets are closed by a background thread (each close waits for an RCU grace
        period); the kernel then destroys the namespaces and everything in them.
        """
        with self._guard.lock:  # waits for a call in progress in another thread
            self._guard.closed = True
            self._closed = True
            self._close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran: nothing of the lab can be used any more."""
        return self._closed

    def programs(self) -> list[proglib.Program]:
        """The background programs started in the lab (``spawn``), for reports."""
        return [p for switch in self._switches for p in switch.programs]

    def _close(self) -> None:
        try:
            for switch in self._switches:
                switch.stop_programs()
            for ep in self.endpoints.values():
                ep.release()  # no fd number of this lab is used again, whoever reuses it
        finally:
            # Resumable: whatever an interrupt (Ctrl-C) cut short above, a second close()
            # finishes; the fds that hold the namespaces are let go with Ctrl-C held back
            # (raised once they are closed), so nothing of the lab outlives it in the process.
            with sigint_deferred():
                poolable = self._poolable()
                peers = self._kept_pairs() if poolable else []
                kept = Kept({}, {}, {})
                try:
                    for switch in self._switches:
                        if switch is self.switch and poolable:
                            kept = switch.close(True, {pair.port for pair in peers})
                        else:
                            switch.close()
                    if self._guest_dir is not None and self._guest_dir_is_temp:
                        shutil.rmtree(self._guest_dir, ignore_errors=True)
                finally:
                    self._release_spaces(kept, peers, poolable)

    def _poolable(self) -> bool:
        """Whether the switch namespace can go to the pool: its only bridge at the pool's
        ifindex, no chatter let in, and the pool on."""
        bridges = list(self.bridges.values())
        single = len(bridges) == 1 and bridges[0].index == nspool.BRIDGE_INDEX
        return self._shell is not None and self.quiet and single and nspool.enabled()

    def _kept_pairs(self) -> list[Pair]:
        """The veth pairs of the switch namespace whose peer namespace holds nothing but the
        pair's far end, untouched: with their namespace, they may stay (see vlab.nsspares)."""
        cabled = collections.Counter(p.node for sw in self._switches for p in sw.pairs)
        switches = {sw.name for sw in self._switches}
        out = []
        for pair in self.switch.pairs:
            space = self._spaces.get(pair.node)
            fit = space is not None and not space.ns.touched and pair.node not in switches
            if fit and cabled[pair.node] == 1:
                out.append(pair)
        return out

    def _release_spaces(self, kept: Kept, pairs: list[Pair], poolable: bool) -> None:
        """Close the lab's namespaces; a poolable switch namespace goes to the pool instead,
        with its emulated VMs' taps (``kept``: fds and sockets) and the peer namespaces of
        ``pairs``, which hold nothing but the far end of one veth from it (see
        vlab.nsspares), with the far end's socket."""
        shell, self._shell = self._shell, None
        peers = []
        for pair in pairs:
            if poolable and pair.node in self._spaces:
                peers.append((self._spaces.pop(pair.node), pair, kept.pair_socks.get(pair.port)))
        try:
            while self._spaces:
                name, space = self._spaces.popitem()
                if name != "switch" or shell is None:
                    space.close()
        finally:
            if shell is not None and poolable:
                shell.anew = shell.anew or self.switch.anew
                closing = [batch for sw in self._switches for batch in sw.closing]
                nspool.give(shell, _pooled, peers, kept.taps, closing, kept.tap_socks)
            else:
                for fd in kept.taps.values():
                    taplib.release_tap(fd)
                reaper.reap([*kept.tap_socks.values(), *kept.pair_socks.values()])
                if shell is not None:
                    shell.close()

    def _adopt_space(self, node: str, space: Any) -> None:
        """A namespace the pool kept with a spare veth becomes the lab's namespace ``node``."""
        self._spaces[node] = space

    def _adopt_bridge(self, name: str, index: int, mac: str, data: bytes, mtu: int | None) -> bool:
        """The first bridge of a reused switch namespace is its dormant bridge, made anew."""
        if index != nspool.BRIDGE_INDEX:
            return False
        if self._shell is None:
            if self.quiet and mtu is None and nspool.enabled():  # may join the pool later
                self._shell = nspool.wrap(self.switch.space)
                nspool.pool().warm(_pooled)  # the first reset need not wait for its tools
            return False
        return nspool.adopt(self._shell, name, mac, data, mtu)

    def host(  # type: ignore[override]
        self,
        name: str,
        bridge: Bridge | str | Sequence[Bridge | str] | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Host:
        """See :meth:`vlab.build.Builder.host`; a host on no bridge, made before any bridge, must
        not be given the ifindex a reused switch namespace keeps its dormant bridge at."""
        lone = bridge is None and kwargs.get("bond") is None
        if lone and self._shell is not None and self._shell.dormant:
            nspool.discard_dormant(self._shell)
        return super().host(name, bridge, *args, **kwargs)

    def _expose_switch(self) -> None:
        """Before a test looks into the switch namespace, a dormant bridge and spare links
        must be gone: a fresh namespace has neither."""
        self.switch.ns.touched = True  # whatever the test does there, the pool checks it all
        if self._shell is not None:
            nspool.Spares(self._shell, self._adopt_space).discard()
            if self._shell.dormant:
                nspool.discard_dormant(self._shell)

    def namespaces(self) -> dict[str, NetNS]:
        """The lab's namespaces by name (``switch``, ``upstream``, one per host), for tools
        that enter them (``vlab up``/``exec``) — their fds stay owned by the lab."""
        self._expose_switch()
        for space in self._spaces.values():
            space.ns.touched = True  # entered by someone else: a pool checks all of it
        return {name: space.ns for name, space in self._spaces.items()}

    @guarded
    def guest_dir(self) -> Path:
        """Where QEMU guests keep their boot logs: beside the pcaps, or a temporary dir."""
        if self._guest_dir is None:
            if self.artifacts is not None:
                self._guest_dir = self.artifacts / "guests"
                self._guest_dir.mkdir(parents=True, exist_ok=True)
            else:  # removed by close(); after a SIGKILL, by the next lab's (see vlab.scratch)
                self._guest_dir = scratch.make(f"{self.name}-guests")
                self._guest_dir_is_temp = True
        return self._guest_dir

    def _space(self, name: str) -> Namespace:
        if name in self._spaces:
            return self._spaces[name]
        space = Namespace(name, self.quiet)
        self._spaces[name] = space
        return space

    def _check_open(self) -> None:
        self._guard.check()

    def _check_name(self, name: str, what: str) -> None:
        check = validate.bridge_name_problem if what == "bridge" else validate.name_problem
        problem = check(name)
        if problem is not None:
            raise LabError(f"{what} name {problem}")
        taken = name in self.endpoints or name in self.bridges or name in self.cables
        taken = taken or name in self._spaces  # a hypervisor's or a host's namespace
        if taken or name in ("switch", "upstream", "underlay"):
            raise LabError(f"{what} name {name!r} is already used in this lab; pick another")

    def _bridge(self, bridge: Bridge | str) -> Bridge:
        if isinstance(bridge, Bridge):
            if bridge.lab is not self:
                raise LabError(f"bridge {bridge.name} belongs to another lab")
            return bridge
        if isinstance(bridge, str) and bridge in self.bridges:
            return self.bridges[bridge]
        raise LabError(
            f"unknown bridge {bridge!r}; bridges in this lab: {', '.join(self.bridges) or 'none'}"
        )

    def _topology_changed(self) -> None:
        self._dirty = True
        for space in self._spaces.values():
            space.watch.invalidate()  # new links bring default qdiscs, unannounced

    # --- readiness -------------------------------------------------------------------------

    @guarded
    def ready(self, timeout: float = 5.0) -> None:
        """Block until every link is up with its qdisc attached and every port forwards.

        The kernel brings carrier, qdiscs and bridge ports up asynchronously; a frame sent in
        the first milliseconds would otherwise be dropped (``TX dropped``) at random. Sending
        calls this by itself; call it before changing what depends on ports being up (turning
        STP on after the ports forward, say). Guests are waited for too.
        """
        self._ready(validate.timeout(timeout, "ready"))

    def _ready(self, timeout: float = 5.0) -> None:
        if not self._dirty:
            return
        self._check_open()
        for ep in self.endpoints.values():
            ep.wait_started()  # guests boot in parallel; this waits for the slowest
        deadline = time.monotonic() + timeout
        while True:
            missing = [m for switch in self._switches for m in switch.not_ready()]
            if not missing:
                self._dirty = False
                loss.baseline(self)
                return
            if time.monotonic() > deadline:
                raise LabError(
                    f"lab links did not come up within {timeout:g} s: {'; '.join(missing)}"
                )
            time.sleep(0.0002)

    # --- bridges joined by cables, STP ------------------------------------------------------

    @guarded
    def cable(
        self, a: Bridge | str, b: Bridge | str, name: str | None = None, **port_options: Any
    ) -> cablelib.Cable:
        """Join bridges ``a`` and ``b`` with a veth whose ends are ports of both
        (``cable.ports == (port_on_a, port_on_b)``), each with ``port_options``.

        Several cables may join the same bridges. A cable that closes a loop is refused unless
        every bridge on the loop runs STP (see :mod:`vlab.cable`); then :meth:`converge` waits
        for the tree before frames are sent.
        """
        return cablelib.add_cable(self, self._bridge(a), self._bridge(b), name, port_options)

    @guarded
    def converge(self, timeout: float | None = None) -> float:
        """Return once STP has settled: every STP port with carrier forwarding or blocking
        and cabled STP bridges agreeing on their root, read from the kernel (no fixed sleep).

        A port needs 2 x forward_delay to forward: about 4 s with ``forward_delay=2`` (the
        kernel's minimum; ``vlab.stp.FAST``), 30 s with the default 15 s. ``timeout=None``
        allows max_age + 2 x forward_delay + 5 s. Returns the seconds it waited; see
        :mod:`vlab.stp`.
        """
        if timeout is not None:
            timeout = validate.timeout(timeout, "converge")
        self._ready()
        return stp.converge(self, timeout)

    # --- observing -------------------------------------------------------------------------

    def add_switch(self, switch: Switch) -> None:
        """A further switch namespace of this lab (a hypervisor, see vlab.hypervisor): closed,
        made ready and settled with the lab's own."""
        self._switches.append(switch)
        self._topology_changed()

    def add_settle_probe(self, probe: Callable[[], int]) -> None:
        """A queue no kernel counter shows, emptied by an active probe (macvlan's broadcast
        queue, see vlab.bcqueue): ``probe()`` runs in every settle round and returns how many
        frames it moved (more than 0: the round was not quiet)."""
        self._drain_hooks.append(probe)

    def _drain_all(self) -> int:
        got = self._edges.drain(list(self.endpoints.values()))
        got += sum(c.pull() for c in self.cables.values())
        return got + sum(hook() for hook in self._drain_hooks)  # e.g. vlab.bcqueue

    @guarded
    def settle(self, timeout: float = 10.0) -> None:
        """Return once every frame in flight has been delivered to an endpoint or dropped.

        Fails (:class:`vlab.loss.FramesLost`) when the kernel dropped frames at an endpoint
        before vlab read them: what "arrived" is then not what the lab delivered.
        """
        self._settle(validate.timeout(timeout, "settle"), "settle()")

    def _settle(self, timeout: float, what: str) -> None:
        self._ready()
        self._quiet = None
        self._quiet = quiesce.settle(
            [s.watch for s in self._spaces.values()],
            self._drain_all,
            [ep.io.fileno() for ep in self.endpoints.values()]
            + [fd for c in self.cables.values() for fd in c.fds()],
            timeout,
        )
        lost = loss.lab_losses(self)
        if lost:
            self._quiet = None  # a loss stands until clear(): every later check must see it
            self._fail_lost(lost, what)

    @guarded
    def expect(
        self,
        frame: FrameLike | Mask,
        at: Sequence[Endpoint | str],
        timeout: float = 1.0,
        mask: Mask | Sequence[str] | None = None,
    ) -> list[Ether]:
        """Exact delivery: each endpoint in ``at`` receives ``frame``, and no other one does.

        Consumes the copies it matched and returns them in the order of ``at``; ``at=[]``
        asserts nobody receives it. See :func:`vlab.delivery.expect_at`.
        """
        return delivery.expect_at(self, frame, at, timeout, mask)

    def _settle_unless_quiet(self, what: str = "settle()") -> None:
        """:meth:`settle`, unless nothing has moved in the lab since the last settle found it
        quiet: then every frame that arrived anywhere was drained by that settle already.

        Reading ``frames()`` of each of a thousand endpoints would otherwise settle the whole
        lab a thousand times (tens of seconds); see :func:`vlab.quiesce.still_quiet`.
        """
        known = self._quiet
        watches = [s.watch for s in self._spaces.values()]
        if known is None or self._dirty or self._closed or not quiesce.still_quiet(watches, known):
            self._settle(10.0, what)

    @guarded
    def expect_quiet(self) -> None:
        """Assert that no endpoint holds a frame the test has not consumed, and none is coming."""
        self.settle()
        noisy = {ep.name: list(ep.pending) for ep in self.endpoints.values() if ep.pending}
        if noisy:
            raise AssertionError(report.not_quiet(self.snapshot(), noisy))

    # --- more hypervisors ------------------------------------------------------------------

    @guarded
    def hypervisor(self, name: str) -> Hypervisor:
        """Another hypervisor: a switch namespace of its own with the same building calls
        (``hv.bridge()``, ``hv.vm()``, ``hv.host()``, ``hv.uplink()``); see vlab.hypervisor."""
        from vlab.hypervisor import add_hypervisor

        return add_hypervisor(self, name)

    @guarded
    def vxlan(
        self,
        br_a: Bridge | str,
        br_b: Bridge | str,
        vni: int,
        dstport: int = 4789,
        learning: bool = True,
        mtu: int | None = None,
    ) -> Vxlan:
        """Join ``br_a`` and ``br_b`` (bridges on two hypervisors) through VXLAN ``vni`` over
        the lab's underlay, with head-end replication to each other; see vlab.vxlan."""
        from vlab.vxlan import join

        return join(self, self._bridge(br_a), self._bridge(br_b), vni, dstport, learning, mtu)

    @guarded
    def where(self, mac: str, vlan: int | None = None) -> Where | None:
        """Which port of which bridge ``mac`` sits behind, from the fdb; None if nowhere.

        ``vlan=N``: in VLAN N (a VLAN-aware bridge has an entry per VLAN, possibly on different
        ports); without it, the first entry found.
        """
        mac = normalize_mac(mac)
        if vlan is not None:
            if isinstance(vlan, bool) or not isinstance(vlan, int):
                raise LabError(f"where({mac}, vlan={vlan!r}): give one VLAN ID, e.g. vlan=10")
            vid_ranges(vlan, "where(vlan)")
        owner = next((ep.name for ep in self.endpoints.values() if ep.mac == mac), None)
        via_cable: Where | None = None  # an entry on a cable port: only if none is closer
        for br in self.bridges.values():
            for entry in br.fdb_entries():
                if entry.mac == mac and (vlan is None or entry.vlan == vlan):
                    port = br.ports.get(entry.port)  # None: a port vlab did not make
                    if isinstance(port, cablelib.CablePort):
                        if via_cable is None:
                            cable = port.cable.name
                            via_cable = Where(
                                mac, br.name, entry.port, None, owner, entry.how, cable, entry.vlan
                            )
                        continue
                    ep_name = port.endpoint.name if port and port.endpoint else None
                    return Where(
                        mac, br.name, entry.port, ep_name, owner, entry.how, vlan=entry.vlan
                    )
        return via_cable

    def describe(self) -> str:
        """The lab as text: bridges, their ports (those vlab did not make too) and what is
        cabled to each, and the endpoints in no bridge (see :mod:`vlab.topology`)."""
        from vlab import topology

        return topology.describe(self)

    @guarded
    def fdb_text(self) -> str:
        """Every bridge's fdb as text, for the failure report of a lab test."""
        lines = []
        for br in self.bridges.values():
            lines.append(f"fdb of {br.name}:")
            for e in br.fdb_entries():
                vlan = f" vlan {e.vlan}" if e.vlan is not None else ""
                lines.append(f"  {e.mac} {e.port}{vlan} {e.how}")
            lines.extend(mdb_text(br))
        return "\n".join(lines)

    # --- failure reports -------------------------------------------------------------------

    def snapshot(self) -> LabSnapshot:
        """An immutable picture of the lab for reports: every endpoint with what it holds
        and logged, the topology and fdb as text, and where its artifacts go (a temporary
        directory, made once, for a lab without ``artifacts=``)."""
        return self._snapshot(None)

    def _snapshot(self, directory: Path | None) -> LabSnapshot:
        with self._guard.lock:
            fdb = None
            if not self._closed:
                with contextlib.suppress(OSError, LabError):
                    fdb = self.fdb_text()
            if directory is None:
                if self.artifact_dir is None:
                    home = self.artifacts
                    if home is None:  # outside pytest, no artifacts=: once per lab
                        home = Path(
                            tempfile.mkdtemp(prefix=f"vlab-{safe_component(self.name, 20)}-")
                        )
                    self.artifact_dir = home
                directory = self.artifact_dir
            endpoints = tuple(
                EndpointSnapshot(
                    ep.name,
                    ep.kind,
                    ep.mac,
                    ep.port,
                    None if ep.bridge is None else ep.bridge.name,
                    ep.location,
                    ep.describe(),
                    tuple(ep.pending),
                    tuple(ep.log),
                )
                for ep in self.endpoints.values()
            )
            links = tuple(
                (stem, name, description, tuple(log))
                for cable in self.cables.values()
                for stem, name, description, log in cable.logs()
            )
            return LabSnapshot(
                self.name, self._closed, endpoints, self.describe(), fdb, directory, links
            )

    def write_artifacts(self, directory: Path | None = None) -> Path:
        """One pcap per endpoint (ns timestamps), the topology and the fdb: for a failed test."""
        written = report.write_artifacts(self._snapshot(directory))
        self.artifact_dir = written
        return written

    def _fail_expect(self, ep: Endpoint, mask: Mask, timeout: float) -> None:
        self._drain_all()
        lost = loss.losses(ep, fresh=True)
        raise AssertionError(report.missing_frame(self.snapshot(), ep.name, mask, timeout, lost))

    def _fail_lost(self, lost: list[loss.Loss], what: str) -> None:
        raise loss.FramesLost(report.lost_frames(self.snapshot(), lost, what))

    def _fail_none(
        self, ep: Endpoint, mask: Mask | None, unexpected: list[tuple[int, bytes]]
    ) -> None:
        text = report.unexpected_frames(self.snapshot(), ep.name, mask, unexpected)
        raise AssertionError(text)

    # --- running programs in the lab -------------------------------------------------------

    @guarded
    def run(
        self, node: str, *argv: str, check: bool = True, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a program in a lab namespace: ``"switch"``, ``"upstream"`` or a host's name.

        ``lab.run("switch", "tc", "qdisc", "add", "dev", "eth0", "root", "tbf", ...)``
        """
        if node == "switch":
            self._expose_switch()
        space = self._spaces.get(node) if isinstance(node, str) else None
        if space is None:
            raise unknown_node(node, self._fabric)
        self._await_nics(space)
        return self.switch.run(space.ns, list(argv), check=check, timeout=timeout)

    @guarded
    def spawn(self, node: str, argv: list[str]) -> proglib.Program:
        """Start a background program in a lab namespace; it dies with the lab (even when the
        test process is killed), and its output goes into the failure report."""
        if node == "switch":
            self._expose_switch()
        space = self._spaces.get(node) if isinstance(node, str) else None
        if space is None:
            raise unknown_node(node, self._fabric)
        self._await_nics(space)
        return self.switch.spawn(node, space.ns, argv)

    def _await_nics(self, space: Namespace) -> None:
        """A program about to run in ``space`` finds that namespace's NICs up (see
        :meth:`vlab.endpoints.NamespacedEndpoint.await_nic`)."""
        for ep in list(self._fabric.endpoints.values()):
            if isinstance(ep, NamespacedEndpoint) and ep.space is space:
                ep.await_nic()

    # --- the names these had before vlab.switch (kept for code written against them) -----

    @property
    def _switch(self) -> Switch:
        return self.switch

    @property
    def _switch_rtnl(self) -> Any:
        return self.switch.rtnl

    @property
    def _noise(self) -> list[Callable[[bytes], bool]]:
        return self.switch.noise

    @property
    def _programs(self) -> list[proglib.Program]:
        return self.switch.programs

    @property
    def _undo(self) -> list[Callable[[], None]]:
        return self.switch.undo

    @property
    def _sockets(self) -> list[Any]:
        return self.switch.sockets

    @property
    def _taps(self) -> list[int]:
        return self.switch.taps

    @property
    def _guests(self) -> list[Any]:
        return self.switch.guests

    @property
    def _counters(self) -> dict[str, int]:
        return self.switch.counters

    def _next(self, prefix: str) -> str:
        return self.switch.next_name(prefix)

    def _register(self, ep: Endpoint, br: Bridge, index: int, port_mac: str) -> None:
        self.switch.register(ep, br, index, port_mac)

    @contextmanager
    def _rollback(self) -> Iterator[list[Callable[[], None]]]:
        with self.switch.rollback() as undo:
            yield undo

    def _run_in(
        self, ns: NetNS, argv: list[str], check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        return self.switch.run(ns, argv, check=check, timeout=timeout)

    def _sync_link(self, index: int, port: str | None = None, up: bool = True) -> None:
        self.switch.sync_link(index, port, up)

    def __repr__(self) -> str:
        return f"<Lab {self.name} bridges={list(self.bridges)} endpoints={list(self.endpoints)}>"
