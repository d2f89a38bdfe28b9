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

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlab import delivery, loss, quiesce, report
from vlab import tap as taplib
from vlab.bridge import Bridge
from vlab.capture import PacketPort, TapPort
from vlab.endpoints import VM, EdgePoll, Endpoint, Host, Uplink
from vlab.errors import LabError, Unsupported
from vlab.frames import Mask
from vlab.netns import NetNS, setns
from vlab.options import BRIDGE_OPTIONS, encode_bridge, encode_mtu, normalize_mac, pack_data
from vlab.reaper import reap
from vlab.rtnl import LinkRequests, Rtnl, qdisc_events, set_noqueue

if TYPE_CHECKING:
    from scapy.layers.l2 import Ether

    from vlab.frames import FrameLike

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")
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
TAP_TXQLEN = 4096  # frames a tap queues for its VM before it drops (tx_dropped)


def _link_ready(links: LinkRequests, index: int, tap: bool) -> bool:
    oper, qdisc, carrier = links.link_state(index)
    if not carrier or qdisc in ("", "noop"):
        return False
    return oper == OPER_UP or (tap and oper == OPER_UNKNOWN)


def random_mac(prefix: str) -> str:
    """A random MAC under ``prefix`` (whose first octet must be locally administered unicast)."""
    n = 6 - len(prefix.split(":"))
    return prefix + "".join(f":{b:02x}" for b in os.urandom(n))


@dataclass(frozen=True)
class Where:
    """Answer to "which VM NIC is behind which tap on which bridge" for one MAC."""

    mac: str
    bridge: str
    port: str
    endpoint: str | None  # the endpoint cabled to that port
    owner: str | None  # the endpoint whose own MAC this is, if any
    how: str  # learnt, static, static+sticky, local, locked

    def __str__(self) -> str:
        who = f" ({self.owner}'s NIC)" if self.owner else ""
        behind = f" ({self.endpoint})" if self.endpoint else ""
        where = f"port {self.port}{behind} on bridge {self.bridge}"
        return f"{self.mac}{who} is behind {where}, {self.how}"


class _Namespace:
    """A lab namespace with its raw netlink socket and ifindex allocator."""

    def __init__(self, name: str, quiet: bool = True) -> None:
        self.ns = NetNS.create(name)
        opened: list[Any] = []  # sockets hold the namespace too: close them on a failure
        try:
            with self.ns.entered():
                for key, value in (QUIET_SYSCTLS if quiet else ()) + PURE_L2_SYSCTLS:
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

    def index(self) -> int:
        self.next_index += 1
        return self.next_index - 1

    def close(self) -> None:
        self.watch.close()
        self.rtnl.close()
        self.ns.close()


class Lab:
    """A throwaway network lab; use as a context manager or through the ``lab`` fixture."""

    def __init__(
        self, name: str = "lab", artifacts: Path | str | None = None, quiet: bool = True
    ) -> None:
        """``quiet=False`` keeps the kernel's IPv6/IGMP chatter, for tests that study it."""
        self.name = name
        self.quiet = quiet
        self.artifacts = Path(artifacts) if artifacts is not None else None
        self.bridges: dict[str, Bridge] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self._spaces: dict[str, _Namespace] = {}
        self._taps: list[int] = []
        self._sockets: list[PacketPort] = []
        self._guests: list[Any] = []
        self._noise: list[Callable[[bytes], bool]] = []  # frames the lab itself causes
        self._counters = {"vnet": 0, "veth": 0, "eth": 0}
        self._dirty = True
        self._closed = False
        self._artifact_dir: Path | None = None  # where this lab's failure artifacts went
        self._edges = EdgePoll()
        self._guest_dir: Path | None = None
        self._guest_dir_is_temp = False
        self._switch = self._space("switch")
        self._switch_rtnl = self._switch.rtnl

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
        self._closed = True
        try:
            while self._guests:
                self._guests.pop().close()
            if self._guest_dir is not None and self._guest_dir_is_temp:
                shutil.rmtree(self._guest_dir, ignore_errors=True)
            while self._taps:
                taplib.release_tap(self._taps.pop())
        finally:
            # Resumable: whatever an interrupt (Ctrl-C) cut short, a second close() finishes;
            # the namespaces go in every case, so nothing outlives the lab.
            try:
                reap([s.sock for s in self._sockets])
                self._sockets.clear()
            finally:
                while self._spaces:
                    _name, space = self._spaces.popitem()
                    space.close()

    def namespaces(self) -> dict[str, NetNS]:
        """The lab's namespaces by name (``switch``, ``upstream``, one per host), for tools
        that enter them (``vlab up``/``exec``) — their fds stay owned by the lab."""
        return {name: space.ns for name, space in self._spaces.items()}

    def guest_dir(self) -> Path:
        """Where QEMU guests keep their boot logs: beside the pcaps, or a temporary dir."""
        if self._guest_dir is None:
            if self.artifacts is not None:
                self._guest_dir = self.artifacts / "guests"
                self._guest_dir.mkdir(parents=True, exist_ok=True)
            else:
                self._guest_dir = Path(tempfile.mkdtemp(prefix=f"vlab-{self.name[:20]}-guests-"))
                self._guest_dir_is_temp = True
        return self._guest_dir

    def _space(self, name: str) -> _Namespace:
        if name in self._spaces:
            return self._spaces[name]
        space = _Namespace(name, self.quiet)
        self._spaces[name] = space
        return space

    def _check_open(self) -> None:
        if self._closed:
            raise LabError(f"lab {self.name!r} is closed; build a new Lab()")

    def _check_name(self, name: str, what: str) -> None:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise LabError(
                f"{what} name {name!r} is not usable: 1-15 characters, letters, digits, '_', '.', "
                "'-', starting with a letter or digit"
            )
        if name in self.endpoints or name in self.bridges or name in ("switch", "upstream"):
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

    # --- building --------------------------------------------------------------------------

    def bridge(self, name: str, **options: Any) -> Bridge:
        """A Linux bridge in the switch namespace, with options in friendly names and units."""
        self._check_open()
        self._check_name(name, "bridge")
        encoded = encode_bridge(options)  # everything validated before anything is built
        mac = encoded.pop("mac", None) or random_mac("02")
        mtu = encoded.pop("mtu", None)
        if encoded.get("vlan_filtering") == 0:
            del encoded["vlan_filtering"]  # the default; kernels without the feature refuse it
        # mcast_querier in the same message as the query intervals starts with the old ones.
        querier = encoded.pop("multicast_querier", None) if len(encoded) > 1 else None
        index = self._switch.index()
        try:
            self._switch.links.add_bridge(name, index, mac, pack_data(BRIDGE_OPTIONS, encoded), mtu)
        except OSError as exc:
            shown = ", ".join(f"{k}={v!r}" for k, v in options.items())
            if exc.errno == 95:  # EOPNOTSUPP: e.g. vlan_filtering without the config option
                raise Unsupported(f"bridge {name}: this kernel does not support {shown}") from None
            raise LabError(f"cannot create bridge {name} with {shown}: {exc.strerror}") from None
        br = Bridge(self, name, index, mac)
        br.stp = bool(encoded.get("stp"))
        br.vlan_filtering = bool(encoded.get("vlan_filtering"))
        self.bridges[name] = br
        if querier is not None:
            br.set(multicast_querier=bool(querier))
        return br

    def vm(
        self,
        name: str,
        bridge: Bridge | str,
        mac: str | None = None,
        mtu: int | None = None,
        guest: str | None = None,
    ) -> VM:
        """A VM whose vNIC is a tap on ``bridge``; vlab holds the tap fd as QEMU would.

        ``guest="qemu"`` boots a real Linux guest on that tap instead of emulating one.
        """
        self._check_open()
        self._check_name(name, "vm")
        br = self._bridge(bridge)
        mtu = encode_mtu(mtu, f"vm {name}")
        mac = normalize_mac(mac, f"vm {name} mac") if mac is not None else random_mac("52:54:00")
        tap_mac = "fe" + mac[2:]  # libvirt's rule: never the guest's MAC, never the bridge's
        if guest not in (None, "qemu"):
            raise LabError(f"vm {name}: guest={guest!r} is not known; use guest='qemu' or None")
        port = self._next("vnet")
        with self._switch.ns.entered():
            fd = taplib.open_tap(port)
            self._taps.append(fd)
            index = socket.if_nametoindex(port)
            # the emulated VM reads a stamping socket on its tap (see TapPort); a guest's
            # tap is watched by the guest's own port instead
            io: Any = TapPort(fd, port, mtu or 1500, txqlen=TAP_TXQLEN if guest is None else 0)
        if io.sock is not None:
            self._sockets.append(io)
        self._switch.next_index = max(self._switch.next_index, index + 1)
        try:
            set_noqueue(self._switch.rtnl, index)  # while it is down: no qdisc swap to wait on
            self._switch.links.set_link(
                index, mac=tap_mac, master=br.index, mtu=mtu, txqlen=TAP_TXQLEN
            )
        except OSError as exc:
            raise LabError(
                f"vm {name}: cannot attach {port} to {br.name}: {exc.strerror}"
            ) from None
        vm = VM(self, name, mac, port, br, io, fd, tap_mac)
        self._register(vm, br, index, tap_mac)
        if guest == "qemu":
            from vlab.guests import attach_qemu

            attach_qemu(self, vm)
        return vm

    def host(
        self, name: str, bridge: Bridge | str, mac: str | None = None, mtu: int | None = None
    ) -> Host:
        """A namespace cabled to ``bridge`` by a veth; ``host.run(...)`` runs programs in it."""
        self._check_open()
        self._check_name(name, "host")
        br = self._bridge(bridge)
        mtu = encode_mtu(mtu, f"host {name}")
        mac = normalize_mac(mac, f"host {name} mac") if mac is not None else random_mac("02")
        space = self._space(name)
        port = self._next("veth")
        ep = self._cable(Host, name, br, port, space, "eth0", mac, mtu)
        return ep  # type: ignore[return-value]

    def uplink(
        self,
        bridge: Bridge | str,
        mac: str | None = None,
        mtu: int | None = None,
        name: str | None = None,
        kind: str = "veth",
    ) -> Uplink:
        """The bridge's pNIC port; its far end, in the upstream namespace, is the network.

        Only a veth carries frames both ways (a dummy link swallows what the bridge sends and
        can inject nothing), so the uplink is a veth; ``kind="dummy"`` is refused where the
        kernel lacks the dummy link type (as on the kernels vlab is developed on).
        """
        self._check_open()
        br = self._bridge(bridge)
        if kind != "veth":
            raise LabError(f"uplink kind={kind!r}: only 'veth' can both receive and inject frames")
        if name is None:
            name = "uplink" if "uplink" not in self.endpoints else f"uplink-{br.name}"[:15]
        self._check_name(name, "uplink")
        mtu = encode_mtu(mtu, f"uplink {name}")
        mac = normalize_mac(mac, f"uplink {name} mac") if mac is not None else random_mac("02")
        space = self._space("upstream")
        port = self._next("eth")
        ep = self._cable(Uplink, name, br, port, space, port, mac, mtu)
        return ep  # type: ignore[return-value]

    def _next(self, prefix: str) -> str:
        n = self._counters[prefix]
        self._counters[prefix] = n + 1
        return f"{prefix}{n}"

    def _cable(
        self,
        cls: type[Host] | type[Uplink],
        name: str,
        br: Bridge,
        port: str,
        space: _Namespace,
        ifname: str,
        mac: str,
        mtu: int | None,
    ) -> Endpoint:
        index = self._switch.index()
        far_index = space.index()
        port_mac = random_mac("fe")
        try:
            self._switch.links.add_veth(
                port, index, port_mac, br.index, ifname, mac, space.ns.fd, far_index, mtu
            )
            space.links.set_link(far_index)
        except OSError as exc:
            raise LabError(
                f"{cls.kind} {name}: cannot cable {port} to {br.name}: {exc.strerror}"
            ) from None
        with space.ns.entered():
            pp = PacketPort(ifname)
        self._sockets.append(pp)
        ep = cls(self, name, mac, port, br, pp)
        ep.ns = space.ns
        ep.ifname = ifname
        ep.ifindex = far_index
        self._register(ep, br, index, port_mac)
        return ep

    def _register(self, ep: Endpoint, br: Bridge, index: int, port_mac: str) -> None:
        from vlab.bridge import Port

        br.ports[ep.port] = Port(br, ep.port, index, ep, port_mac)
        self.endpoints[ep.name] = ep
        self._topology_changed()

    # --- readiness -------------------------------------------------------------------------

    def ready(self, timeout: float = 5.0) -> None:
        """Block until every link is up with its qdisc attached and every port forwards.

        The kernel brings carrier, qdiscs and bridge ports up asynchronously; a frame sent in
        the first milliseconds would otherwise be dropped (``TX dropped``) at random. Sending
        calls this by itself; call it before changing what depends on ports being up (turning
        STP on after the ports forward, say). Guests are waited for too.
        """
        self._ready(timeout)

    def _ready(self, timeout: float = 5.0) -> None:
        if not self._dirty:
            return
        self._check_open()
        for ep in self.endpoints.values():
            if isinstance(ep, VM):
                ep.wait_ready()  # guests boot in parallel; this waits for the slowest
        deadline = time.monotonic() + timeout
        while True:
            missing = self._not_ready()
            if not missing:
                self._dirty = False
                loss.baseline(self)
                return
            if time.monotonic() > deadline:
                raise LabError(
                    f"lab links did not come up within {timeout:g} s: {'; '.join(missing)}"
                )
            time.sleep(0.0002)

    def _not_ready(self) -> list[str]:
        missing = []
        ports = self._switch.links.port_states()
        for br in self.bridges.values():
            for port in br.ports.values():
                ep = port.endpoint
                if ep is not None and not ep.carrier:
                    continue
                # a tap keeps operstate UNKNOWN: it had carrier from birth, so no link event
                tap = isinstance(ep, VM)
                if not _link_ready(self._switch.links, port.index, tap):
                    missing.append(f"{port.name} is not up")
                elif not (port.state_managed or br.stp) and ports.get(port.name) != 3:
                    missing.append(f"{port.name} is not forwarding yet")
        for ep in self.endpoints.values():
            if not isinstance(ep, Host | Uplink) or not ep.carrier:
                continue
            space = self._spaces["upstream" if isinstance(ep, Uplink) else ep.name]
            if not _link_ready(space.links, ep.ifindex, False):
                missing.append(f"{ep.name}'s {ep.ifname} is not up")
        return missing

    # --- observing -------------------------------------------------------------------------

    def _drain_all(self) -> int:
        return self._edges.drain(list(self.endpoints.values()))

    def settle(self, timeout: float = 10.0) -> None:
        """Return once every frame in flight has been delivered to an endpoint or dropped.

        Fails (:class:`vlab.loss.FramesLost`) when the kernel dropped frames at an endpoint
        before vlab read them: what "arrived" is then not what the lab delivered.
        """
        self._settle(timeout, "settle()")

    def _settle(self, timeout: float, what: str) -> None:
        self._check_open()
        self._ready()
        quiesce.settle(
            [s.watch for s in self._spaces.values()],
            self._drain_all,
            [ep._io.fileno() for ep in self.endpoints.values()],
            timeout,
        )
        lost = loss.lab_losses(self)
        if lost:
            self._fail_lost(lost, what)

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
        self._check_open()
        return delivery.expect_at(self, frame, at, timeout, mask)

    def expect_quiet(self) -> None:
        """Assert that no endpoint holds a frame the test has not consumed, and none is coming."""
        self.settle()
        noisy = {ep.name: list(ep._pending) for ep in self.endpoints.values() if ep._pending}
        if noisy:
            raise AssertionError(report.not_quiet(self, noisy))

    def where(self, mac: str) -> Where | None:
        """Which port of which bridge ``mac`` sits behind, from the fdb; None if nowhere."""
        mac = normalize_mac(mac)
        owner = next((ep.name for ep in self.endpoints.values() if ep.mac == mac), None)
        for br in self.bridges.values():
            for entry in br.fdb_entries():
                if entry.mac == mac:
                    port = br.ports[entry.port]
                    ep_name = port.endpoint.name if port.endpoint else None
                    return Where(mac, br.name, entry.port, ep_name, owner, entry.how)
        return None

    def describe(self) -> str:
        """The lab as text: bridges, their ports and what is cabled to each."""
        lines = [f"lab {self.name}"]
        for br in self.bridges.values():
            lines.append(f"  bridge {br.name} mac {br.mac}")
            for port in br.ports.values():
                if port.endpoint is not None:
                    lines.append(f"    {port.name:<8} {port.endpoint.describe()}")
        return "\n".join(lines)

    def fdb_text(self) -> str:
        lines = []
        for br in self.bridges.values():
            lines.append(f"fdb of {br.name}:")
            for e in br.fdb_entries():
                lines.append(f"  {e.mac} {e.port} {e.how}")
        return "\n".join(lines)

    # --- failure reports -------------------------------------------------------------------

    def write_artifacts(self, directory: Path | None = None) -> Path:
        """One pcap per endpoint (ns timestamps), the topology and the fdb: for a failed test."""
        return report.write_artifacts(self, directory)

    def _fail_expect(self, ep: Endpoint, mask: Mask, timeout: float) -> None:
        self._drain_all()
        lost = loss.losses(ep, fresh=True)
        raise AssertionError(report.missing_frame(self, ep, mask, timeout, lost))

    def _fail_lost(self, lost: list[loss.Loss], what: str) -> None:
        raise loss.FramesLost(report.lost_frames(self, lost, what))

    def _fail_none(
        self, ep: Endpoint, mask: Mask | None, unexpected: list[tuple[int, bytes]]
    ) -> None:
        raise AssertionError(report.unexpected_frames(self, ep, mask, unexpected))

    # --- running programs in the lab -------------------------------------------------------

    def run(
        self, node: str, *argv: str, check: bool = True, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a program in a lab namespace: ``"switch"``, ``"upstream"`` or a host's name.

        ``lab.run("switch", "tc", "qdisc", "add", "dev", "eth0", "root", "tbf", ...)``
        """
        self._check_open()
        space = self._spaces.get(node)
        if space is None:
            raise LabError(f"unknown node {node!r}; nodes of this lab: {', '.join(self._spaces)}")
        return self._run_in(space.ns, list(argv), check=check, timeout=timeout)

    # --- helpers for endpoints -------------------------------------------------------------

    def _run_in(
        self, ns: NetNS, argv: list[str], check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        if not argv:
            raise LabError(f"nothing to run in {ns.name}: give a program and its arguments")
        fd = ns.fd
        try:
            return subprocess.run(
                argv,
                preexec_fn=lambda: setns(fd),
                pass_fds=(fd,),
                capture_output=True,
                text=True,
                check=check,
                timeout=timeout,
            )
        except FileNotFoundError:
            raise LabError(f"cannot run {argv[0]!r} in {ns.name}: not installed") from None
        except subprocess.TimeoutExpired:
            raise LabError(
                f"{' '.join(argv)} in {ns.name} did not finish within {timeout:g} s"
            ) from None
        except subprocess.CalledProcessError as exc:
            raise LabError(
                f"{' '.join(argv)} failed in {ns.name} (exit {exc.returncode}): "
                f"{exc.stderr.strip()}"
            ) from None
        except OSError as exc:
            raise LabError(f"cannot run {argv[0]!r} in {ns.name}: {exc.strerror}") from None

    def _sync_link(self, index: int) -> None:
        self._switch.links.link_state(index)

    def _link_updown(self, ns: NetNS, ifindex: int, up: bool) -> None:
        space = next(s for s in self._spaces.values() if s.ns is ns)
        space.links.set_link(ifindex, up=up)

    def __repr__(self) -> str:
        return f"<Lab {self.name} bridges={list(self.bridges)} endpoints={list(self.endpoints)}>"
