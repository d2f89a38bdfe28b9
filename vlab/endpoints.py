"""Endpoints: the places a test sends frames from and expects them at.

All three kinds (a VM's vNIC on a tap, a host namespace on a veth, the uplink's far end) share
one behaviour: frames are drained from the kernel on demand into a per-endpoint list, ``expect``
consumes the first frame that matches (PTF semantics) and leaves the others for later checks, and
everything sent or received is kept for the pcap written when a test fails.
"""

from __future__ import annotations

import collections
import contextlib
import select
import subprocess
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from scapy.layers.l2 import Ether

from vlab import ip as iplib
from vlab import loss, quiesce, validate
from vlab import tap as taplib
from vlab.capture import Record
from vlab.errors import LabError
from vlab.frames import FrameLike, Mask, as_mask, parse, to_bytes
from vlab.guard import LabGuard, guarded
from vlab.rxfilter import ReceiveFilter

if TYPE_CHECKING:
    from vlab.bridge import Bridge
    from vlab.lab import Lab
    from vlab.netns import NetNS
    from vlab.programs import Program
    from vlab.qemu import GuestResult, QemuGuest
    from vlab.rtnl import Rtnl
    from vlab.stats import LinkStats
    from vlab.switch import Namespace, Switch
    from vlab.unbridged import Interface

PCAP_KEEP = 50_000  # frames kept per endpoint for the failure pcap
WAIT_SLICE = 0.05  # longest select() in expect: a close or a guest's death is noticed this soon


class FrameIO(Protocol):
    ifname: str

    def fileno(self) -> int:
        """The fd frames are read from (a tap fd or a packet socket), for polling."""
        ...

    def send(self, frame: bytes) -> None:
        """Write one frame, as the endpoint's NIC would transmit it."""
        ...

    def drain(self) -> list[Record]:
        """Every frame that arrived since the last call, with its capture record."""
        ...


class _ClosedIO:
    """What an endpoint's frame I/O becomes at close: it has no fd (the number may be reused)."""

    def __init__(self, guard: LabGuard, ifname: str) -> None:
        self.guard = guard
        self.ifname = ifname

    def fileno(self) -> int:
        self.guard.check()
        raise LabError("endpoint I/O used after close")  # pragma: no cover - check() raised

    def send(self, frame: bytes) -> None:
        self.fileno()

    def drain(self) -> list[Record]:
        self.fileno()
        return []


class Endpoint:
    """What VMs, hosts and uplinks have in common (the contract: docs/reference/endpoints.md).

    An endpoint kind is a subclass that supplies its own behaviour through a few hooks, so
    the lab never asks which kind it holds:

    * capture: ``io``, the :class:`FrameIO` its frames are read from and sent through (given
      at construction, never swapped);
    * readiness: :attr:`carrier_from_birth` (its port link keeps operstate UNKNOWN, like a
      tap), :meth:`not_ready` (its own links beyond the bridge port) and
      :meth:`wait_started` (something slow behind it, such as a guest booting);
    * counters and losses: :meth:`nic` (where its own NIC is) and :attr:`tap`;
    * carrier: :meth:`apply_carrier`;
    * close: :meth:`release`, plus whatever it handed to its switch to close
      (:meth:`vlab.switch.Switch.own_socket`, ``own_tap``, ``own_guest``);
    * reports: :meth:`describe`.
    """

    kind = "endpoint"
    carrier_from_birth = False  # its port's operstate stays UNKNOWN (a tap, a dummy)
    tap = False  # its port is a tap it holds: the port's counters, swapped, are its NIC's

    bridge: Bridge | None  # None: an endpoint in no bridge (see vlab.unbridged)

    def __init__(
        self, switch: Switch, name: str, mac: str, port: str, bridge: Bridge | None, io: FrameIO
    ) -> None:
        """Built by a building call (see :mod:`vlab.build`) once its link exists."""
        self.switch = switch  # the switch namespace its port is in, and its services
        self.lab: Lab = switch.lab
        self.name = name
        self.mac = mac
        self.port = port
        self.bridge = bridge
        self.io = io
        self.pending: list[Record] = []  # received, not yet consumed (expect/frames/clear)
        self.log: collections.deque[tuple[int, bool, bytes]] = collections.deque(maxlen=PCAP_KEEP)
        self.carrier = True
        # a capture that sees this endpoint's own sends (a guest's tap) logs them itself
        self.log_sends = not getattr(io, "sees_own_sends", False)
        self.ledger = loss.Ledger()  # frames lost here, and what clear() forgave
        self.switch_index = 0  # in no bridge: the switch namespace's link its frames cross

    @property
    def _guard(self) -> LabGuard:
        return self.switch.guard

    # compatibility: the names these had before the endpoint contract was public
    @property
    def _io(self) -> FrameIO:
        return self.io

    @property
    def _pending(self) -> list[Record]:
        return self.pending

    @property
    def _log(self) -> collections.deque[tuple[int, bool, bytes]]:
        return self.log

    @property
    def location(self) -> str:
        """Where this endpoint is cabled, for messages: ``port vnet0 on br0``, or for an
        endpoint in no bridge ``veth0, in no bridge``."""
        if self.bridge is None:
            return f"{self.port}, in no bridge"
        return f"port {self.port} on {self.bridge.name}"

    def switch_link(self) -> int:
        """The switch namespace's link this endpoint's frames cross: its bridge port (the
        bridge device itself for ``br.local``), or its standalone interface in no bridge."""
        if self.bridge is None:
            return self.switch_index
        port = self.bridge.ports.get(self.port)
        return port.index if port is not None else self.bridge.index

    def loss_link(self) -> int:
        """The switch namespace's link whose tx_dropped counts frames lost on their way to this
        endpoint (see :mod:`vlab.loss`); 0 for none."""
        return self.switch_link()

    # --- the kind's hooks ----------------------------------------------------------------

    def release(self) -> None:
        """At the lab's close: let go of the fds (closed by the switch) so none is used again."""
        self.io = _ClosedIO(self.switch.guard, self.port)

    def check_alive(self) -> None:
        """Refuse to act for an endpoint whose far side is gone (a dead guest); see VM."""

    def not_ready(self) -> list[str]:
        """What of this endpoint's own links (beyond its bridge port, which the switch checks)
        is not up yet, as short phrases; empty when it can carry frames."""
        return []

    def wait_started(self, timeout: float | None = None) -> None:
        """Block until whatever runs behind this endpoint has started (a guest's boot); the
        lab's readiness calls it for every endpoint, in parallel with their boots."""

    def apply_carrier(self, up: bool) -> None:
        """Make the cable's carrier ``up`` at this endpoint's end (``set_carrier`` does the
        rest: the bridge acting on it, readiness)."""
        raise LabError(f"{self.kind} {self.name}: its carrier cannot be changed")

    def nic(self) -> tuple[Namespace, int] | None:
        """Where this endpoint's own NIC lives (namespace, ifindex), for its counters and the
        frames it sent that were lost on the way in; None when it has none beyond its port."""
        return None

    # --- sending -------------------------------------------------------------------------

    @guarded
    def send(self, frame: FrameLike) -> None:
        """Put one frame on the wire here, as this endpoint would."""
        self.check_alive()
        data = to_bytes(frame)
        self.switch.ready()
        sent_at = time.time_ns()  # before the write: never after any receiver's kernel stamp
        self.io.send(data)
        if self.log_sends:
            self.log.append((sent_at, True, data))

    # --- receiving -----------------------------------------------------------------------

    def pull(self) -> int:
        """Drain what the kernel holds for this endpoint into :attr:`pending` (noise of its
        switch filtered out, the pcap log kept); returns how many frames were kept."""
        records = self.io.drain()
        sent = getattr(self.io, "guest_sent", None)
        if sent:
            self.log.extend((ts, True, data) for ts, data in sent)
            sent.clear()
        if records:
            self.log.extend((ts, False, data) for ts, data in records)
            for noise in self.switch.noise:
                records = [r for r in records if not noise(r[1])]
            room = loss.PENDING_MAX - len(self.pending)
            if len(records) > room:
                self.ledger.overflow += len(records) - max(room, 0)
                records = records[: max(room, 0)]
            self.pending.extend(records)
        return len(records)

    def take(self, mask: Mask) -> Ether | None:
        """Consume and return the first pending frame matching ``mask`` (None if none does)."""
        for i, (_ts, data) in enumerate(self.pending):
            if mask.matches(data):
                del self.pending[i]
                return parse(data)
        return None

    def expect(
        self,
        frame: FrameLike | Mask,
        timeout: float = 1.0,
        mask: Mask | Sequence[str] | None = None,
    ) -> Ether:
        """Wait for a frame equal to ``frame`` (or matching ``mask``) here; consume and return it.

        Fails with an AssertionError showing what did arrive, closest first, field by field.
        The lab's lock is held only between waits, so other threads can send meanwhile; a close
        of the lab (or a guest's death) during the wait ends it with a LabError.
        """
        guard = self._guard
        with guard.lock:
            guard.check()
            timeout = validate.timeout(timeout, "expect")
            m = resolve_mask(frame, mask)
            self.check_alive()
            self.pull()
            got = self.take(m)
            fd = self.io.fileno()
        deadline = time.monotonic() + timeout
        while got is None:
            remaining = deadline - time.monotonic()
            if remaining > 0:
                # OSError/ValueError: the fd was closed under us; the check below says why
                with contextlib.suppress(OSError, ValueError):
                    quiesce.wait_readable([fd], min(remaining, WAIT_SLICE))  # poll: fds > 1023
            with guard.lock:
                guard.check()  # before touching fd: after close its number may be another's
                self.check_alive()
                if self.pull():
                    got = self.take(m)
                if got is None and remaining <= 0:
                    self.switch.fabric.fail_missing(self, m, timeout)
        with guard.lock:
            lost = loss.quick(self)
            if lost:
                self.switch.fabric.fail_lost(lost, f"{self.name}.expect()")
        return got

    @guarded
    def expect_none(
        self, frame: FrameLike | Mask | None = None, mask: Mask | Sequence[str] | None = None
    ) -> None:
        """Assert that no frame (or none matching ``frame``) arrived here and none is on its way.

        "On its way" is decided from kernel queues, not a sleep: see :mod:`vlab.quiesce`.
        Never passes after frames were lost in the lab (see :mod:`vlab.loss`).
        """
        self.check_alive()
        self.switch.settle(f"{self.name}.expect_none()")
        if frame is None:
            unexpected = list(self.pending)
            m = None
        else:
            m = resolve_mask(frame, mask)
            unexpected = [r for r in self.pending if m.matches(r[1])]
        if unexpected:
            self.switch.fabric.fail_unexpected(self, m, unexpected)

    @guarded
    def frames(self) -> list[Ether]:
        """Every frame received here and not yet consumed, in arrival order; drains the list."""
        self.check_alive()
        self.switch.settle_unless_quiet(f"{self.name}.frames()")  # cheap when already settled
        self.pull()
        out = [parse(data) for _ts, data in self.pending]
        self.pending.clear()
        return out

    @guarded
    def clear(self) -> None:
        """Forget received frames without asserting anything about them (keeps the pcap).

        Frames lost here so far (see :mod:`vlab.loss`) are forgiven as well: later checks at
        this endpoint judge what arrives from now on.
        """
        self.check_alive()
        self.pull()
        self.pending.clear()
        self.ledger.overflow = 0
        self.ledger.base.pop("store", None)
        loss.forgive(self)

    def stats(self) -> LinkStats:
        """Kernel counters of this endpoint's own NIC: rx is what it received (see
        :mod:`vlab.stats`; for a VM, its tap's counters seen from the guest)."""
        from vlab.stats import endpoint_stats

        return endpoint_stats(self)

    # --- link ----------------------------------------------------------------------------

    @guarded
    def set_carrier(self, up: bool) -> None:
        """Plug or unplug this endpoint's cable; returns once the bridge has acted on it.

        The kernel handles carrier changes in deferred link-watch work (the bridge disables the
        port and flushes its dynamic entries there, up to a second later); reading the port
        back with a single-link request runs that work now.
        """
        up = validate.flag(up, f"{self.kind} {self.name}: set_carrier(up)")
        self.check_alive()
        self.apply_carrier(up)
        self.carrier = up
        bridged = self.bridge is not None
        self.switch.sync_link(self.switch_link(), self.port if bridged else None, up)
        self.switch.topology_changed()

    def describe(self) -> str:
        """One line saying what this endpoint is and where it is cabled (used in reports)."""
        return f"{self.kind} {self.name} mac {self.mac} on {self.location}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.mac} port={self.port}>"


class EdgePoll:
    """Which endpoints have something to read, in one poll(2) instead of a read per endpoint.

    A settle drains every endpoint several times; a read that finds nothing costs a syscall
    and a Python exception, so a lab of 64 VMs paid 64 of each per round for nothing.
    """

    def __init__(self) -> None:
        self.poll = select.poll()
        self.fds: dict[int, Endpoint] = {}

    def drain(self, endpoints: Sequence[Endpoint]) -> int:
        """Pull every endpoint that has something to read, found with one ``poll(2)``; the
        poll set is rebuilt only when the lab's endpoints (or their fds) changed."""
        if len(endpoints) != len(self.fds) or any(
            self.fds.get(ep.io.fileno()) is not ep for ep in endpoints
        ):
            self.poll = select.poll()
            self.fds = {ep.io.fileno(): ep for ep in endpoints}
            for fd in self.fds:
                self.poll.register(fd, select.POLLIN)
        ready = {fd for fd, _events in self.poll.poll(0)}
        got = 0
        for fd, ep in self.fds.items():
            owed: int = getattr(ep.io, "owed", 0)  # a tap fd still owing frames
            if fd in ready or owed:
                got += ep.pull()
        return got


def resolve_mask(frame: FrameLike | Mask, mask: Mask | Sequence[str] | None) -> Mask:
    """The mask an ``expect`` call means: ``frame`` as is, or with ``mask``'s fields ignored."""
    if mask is None:
        return as_mask(frame)
    if isinstance(mask, Mask):
        return mask
    if isinstance(mask, str) or not isinstance(mask, Sequence):
        raise LabError("mask= takes a Mask or a list of field names such as ['IP.ttl']")
    if not all(isinstance(name, str) for name in mask):
        raise LabError(
            f"mask={list(mask)!r}: every item must be a field name such as 'IP.ttl' (a string)"
        )
    if isinstance(frame, Mask):
        return frame.ignore(*mask)
    return Mask(frame).ignore(*mask)


_resolve_mask = resolve_mask  # the name it had before it was public


class VM(Endpoint):
    """An emulated VM: vlab holds the tap fd, exactly what QEMU's ``-netdev tap,fd=N`` holds."""

    kind = "vm"
    bridge: Bridge  # a tap is always a bridge port
    carrier_from_birth = True  # a tap had carrier from birth: operstate stays UNKNOWN
    tap = True  # a write to the tap hands the frame to the bridge at once: no queue of its own

    def __init__(
        self,
        switch: Switch,
        name: str,
        mac: str,
        port: str,
        bridge: Bridge,
        io: FrameIO,
        tap_fd: int,
        tap_mac: str,
    ) -> None:
        """Built by ``lab.vm`` once its tap is a port of ``bridge``."""
        super().__init__(switch, name, mac, port, bridge, io)
        self.tap_fd = tap_fd
        self.tap_mac = tap_mac
        self.guest: QemuGuest | None = None

    def release(self) -> None:
        """At close: the tap fd is closed by the switch; forget its number."""
        super().release()
        self.tap_fd = -1  # closed by the lab; the number may already belong to another file

    def check_alive(self) -> None:
        """A guest whose QEMU died receives nothing: the tap socket would say otherwise."""
        guest = self.guest
        if guest is None:
            return
        code = guest.returncode
        if code is not None:
            from vlab.guest_image import GuestError

            raise GuestError(
                f"vm {self.name}: its QEMU guest (pid {guest.pid}) is dead, qemu exited with "
                f"status {code}: it cannot send or receive; frames seen on its tap no longer "
                "reach a guest" + guest.tail()
            )

    @guarded
    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the guest's kernel is up and its shell answers (no-op when emulated)."""
        self.check_alive()
        self.wait_started(None if timeout is None else validate.timeout(timeout, "wait_ready"))

    def wait_started(self, timeout: float | None = None) -> None:
        """The lab's readiness wait: a guest that booted and died later fails only its own
        calls, not every send in the lab."""
        if self.guest is not None:
            from vlab.guests import BOOT_TIMEOUT

            self.guest.wait_ready(BOOT_TIMEOUT if timeout is None else timeout)

    @guarded
    def run(self, cmd: str, timeout: float = 10.0) -> GuestResult:
        """Run a shell command in the guest: ``vm.run("ip -o link show eth0")``."""
        if self.guest is None:
            raise LabError(
                f"vm {self.name} is emulated (vlab holds its tap): there is no guest to run "
                "commands in; build it with lab.vm(..., guest='qemu')"
            )
        if not isinstance(cmd, str) or "\0" in cmd:
            raise LabError(f"vm {self.name}: run({cmd!r}): give a shell command as a string")
        self.check_alive()
        self.wait_ready()
        return self.guest.run(cmd, validate.timeout(timeout, "run"))

    def apply_carrier(self, up: bool) -> None:
        """A tap's carrier is set on its fd (TUNSETCARRIER), as QEMU's link_down does."""
        taplib.set_carrier(self.tap_fd, up)

    @guarded
    def add_nic(self, bridge: Bridge | str, mac: str | None = None, mtu: int | None = None) -> VM:
        """Another NIC of this VM, a tap on ``bridge``: the endpoint ``NAME.nicN`` (a VM on
        several networks; see :mod:`vlab.nics`)."""
        from vlab.nics import add_vm_nic

        return add_vm_nic(self, bridge, mac, mtu)

    @property
    def nics(self) -> list[Endpoint]:
        """Every NIC of this VM, first NIC (the VM's own endpoint) first."""
        from vlab.nics import nics_of

        return nics_of(self)

    def describe(self) -> str:
        """One line: the guest's MAC, its tap and the tap's own MAC."""
        kind = "qemu guest" if self.guest is not None else "guest"
        return (
            f"vm {self.name}: {kind} mac {self.mac} -> tap {self.port} (tap mac {self.tap_mac})"
            f" on {self.bridge.name}"
        )


class NamespacedEndpoint(Endpoint):
    """An endpoint whose NIC ``ifname`` (index ``ifindex``) lives in a namespace ``space``:
    the far end of a veth, or a link of the switch namespace itself."""

    def __init__(
        self,
        switch: Switch,
        name: str,
        mac: str,
        port: str,
        bridge: Bridge | None,
        io: FrameIO,
        space: Namespace,
        ifname: str,
        ifindex: int,
    ) -> None:
        """Built once its link exists, its far end ``ifname`` already in ``space``."""
        super().__init__(switch, name, mac, port, bridge, io)
        self.space: Namespace = space
        self.ifname = ifname
        self.ifindex = ifindex
        self._nic_seen_up = False

    @property
    def ns(self) -> NetNS:
        """The endpoint's namespace, for a test that enters it itself: from then on nothing
        vlab did not do can be ruled out there, so a pool checks all of it before any reuse
        (see vlab.nspool)."""
        self.space.ns.touched = True
        return self.space.ns

    @guarded
    def run(
        self, *argv: str, check: bool = True, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a program inside this endpoint's namespace (``ip``, ``ping``, ``tcpdump``...)."""
        self.await_nic()
        return self.switch.run(self.space.ns, list(argv), check=check, timeout=timeout)

    def await_nic(self) -> None:
        """Before the first program runs here: let the kernel finish bringing the NIC up.

        The kernel sets a link's operstate, and on the end of a veth that came up first
        attaches its qdisc, from deferred link-watch work a moment after carrier; until then
        ``ip link`` says UNKNOWN and a frame the program sends meets the noop qdisc (dropped).
        vlab's own sends wait for the whole lab (:meth:`vlab.Lab.ready`); a program should not
        see the lab half up either, yet must not wait for guests or other hosts. Only the lag
        after carrier is waited for (bounded): a NIC without carrier, or one the test changed
        after it was seen up, is the test's own doing.
        """
        if self._nic_seen_up or not self.carrier:
            return
        from vlab.switch import OPER_UP

        deadline = time.monotonic() + 1.0
        while True:
            oper, qdisc, carrier = self.space.links.link_state(self.ifindex)
            if not carrier or time.monotonic() > deadline:
                return
            if oper == OPER_UP and qdisc not in ("", "noop"):
                self._nic_seen_up = True
                return
            time.sleep(0.0002)

    def nic(self) -> tuple[Namespace, int] | None:
        """Its ``ifname`` in its namespace."""
        return self.space, self.ifindex

    def apply_carrier(self, up: bool) -> None:
        """The far end goes down or up: the veth's other end, the bridge port, loses carrier."""
        self.space.links.set_link(self.ifindex, up=up)

    def not_ready(self) -> list[str]:
        """Its own NIC, in its namespace, must be up with a qdisc too."""
        from vlab.switch import link_ready

        if link_ready(self.space.links, self.ifindex, False):
            return []
        return [f"{self.name}'s {self.ifname} is not up"]

    @guarded
    def spawn(self, argv: list[str]) -> Program:
        """A background program in this namespace that dies with the lab; see vlab.programs."""
        self.check_alive()
        self.await_nic()
        return self.switch.spawn(self.space.ns.name, self.space.ns, argv)


_NamespacedEndpoint = NamespacedEndpoint  # the name it had before it was public


class Host(ReceiveFilter, NamespacedEndpoint):
    """A namespace cabled to the bridge by a veth: a container, a bare-metal box, a router.

    Its eth0's receive filter and group joins: :mod:`vlab.rxfilter` (``host.join(group)``
    joins as the host's own stack would, sending real IGMP/MLD reports)."""

    kind = "host"

    def rx_target(self) -> tuple[Namespace, int, str]:
        """eth0, in the host's namespace."""
        return self.space, self.ifindex, self.ifname

    def rx_enable_ipv6(self) -> None:
        """IPv6 on in this host alone (an IPv6 join needs it)."""
        iplib.enable_ipv6(self.space.ns, "lo")
        iplib.enable_ipv6(self.space.ns, self.ifname)
        if self.carrier:
            iplib.wait_usable(self._rtnl, self.ifindex, f"host {self.name}")

    @property
    def peer(self) -> Interface:
        """The other end of this host's veth when the host is in no bridge
        (``lab.host(name, bridge=None)``): an interface endpoint of the switch namespace."""
        found = self.switch.fabric.endpoints.get(f"{self.name}.peer")
        if self.bridge is not None or found is None:
            raise LabError(
                f"host {self.name} is cabled to a bridge: the other end of its veth is port "
                f"{self.port} (br.port(host)); lab.host(name, bridge=None) makes a peer"
            )
        return found  # type: ignore[return-value]

    @property
    def _rtnl(self) -> Rtnl:
        return self.space.rtnl

    @guarded
    def add_nic(
        self,
        bridge: Bridge | str,
        mac: str | None = None,
        mtu: int | None = None,
        ip: str | list[str] | None = None,
    ) -> Host:
        """Another NIC of this host, ``ethN`` of its namespace cabled to ``bridge``: the
        endpoint ``NAME.ethN`` (a host on several networks; see :mod:`vlab.nics`)."""
        from vlab.nics import add_host_nic

        return add_host_nic(self, bridge, mac, mtu, ip)

    @property
    def nics(self) -> list[Endpoint]:
        """Every NIC endpoint of this host's namespace, ``eth0`` first."""
        from vlab.nics import nics_of

        return nics_of(self)

    @guarded
    def add_address(self, address: str) -> None:
        """``ip addr add ADDRESS/LEN dev eth0`` (IPv6 turns IPv6 on in this host)."""
        self.check_alive()
        ifaces = iplib.interfaces(address, f"host {self.name} add_address")
        six = any(iface.version == 6 for iface in ifaces)
        if six:
            iplib.enable_ipv6(self.space.ns, "lo")
            iplib.enable_ipv6(self.space.ns, self.ifname)
        for iface in ifaces:
            iplib.add(self._rtnl, self.ifindex, iface, f"host {self.name}")
        if six and self.carrier:
            iplib.wait_usable(self._rtnl, self.ifindex, f"host {self.name}")

    @guarded
    def addresses(self) -> list[str]:
        """eth0's addresses as the kernel reports them (IPv6 link-local included)."""
        self.check_alive()
        return iplib.read_addresses(self._rtnl, self.ifindex)

    @guarded
    def route_add(self, dst: str, via: str | None = None) -> None:
        """``ip route add DST [via GW] dev eth0``; DST a prefix, ``default`` or ``default6``."""
        self.check_alive()
        iplib.route(self._rtnl, dst, via, self.ifindex, f"host {self.name} route_add")

    @guarded
    def ping(self, dst: str, count: int = 1, timeout: float = 1.0) -> bool:
        """True when each of ``count`` ICMP echo requests is answered within ``timeout`` s.

        No iputils: a raw ICMP socket in this host's namespace. Neither outcome fails the test
        by itself: ``assert host.ping(...)`` or ``assert not host.ping(...)``.
        """
        self.check_alive()
        target = iplib.address(dst, f"host {self.name} ping")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1000:
            raise LabError(f"host {self.name} ping: count={count!r}: give 1 to 1000")
        timeout = validate.timeout(timeout, "ping")
        self.switch.ready()
        return iplib.ping(self.space.ns, target, count, timeout)

    @guarded
    def vlan(self, vid: int, ip: str | list[str] | None = None, protocol: str = "802.1Q") -> Any:
        """An 802.1Q sub-interface ``eth0.VID`` as an endpoint of its own (frames sent there
        leave tagged, tagged frames of that VLAN arrive there untagged); see :mod:`vlab.vlanif`.
        ``Unsupported`` on kernels without 8021q."""
        from vlab.vlanif import add_vlan

        self.check_alive()
        return add_vlan(self, vid, ip, protocol)

    def describe(self) -> str:
        """One line: the host's interface and MAC, and the veth port it is cabled to."""
        if self.bridge is None:
            return (
                f"host {self.name}: {self.ifname} {self.mac} == veth ==> {self.port} (interface"
                f" {self.name}.peer), in no bridge"
            )
        return (
            f"host {self.name}: {self.ifname} {self.mac} == veth ==> {self.port}"
            f" on {self.bridge.name}"
        )


class Uplink(NamespacedEndpoint):
    """The bridge's uplink: the pNIC port, its far end standing for the physical network."""

    kind = "uplink"
    bridge: Bridge  # the pNIC is always a bridge port

    def describe(self) -> str:
        """One line: the bridge port, and the far end in the upstream namespace."""
        return (
            f"uplink {self.name}: {self.bridge.name} port {self.port} == veth ==> "
            f"{self.ifname} ({self.mac}) in namespace {self.space.ns.name}"
        )
