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

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlab import (
    delivery,
    limits,
    loss,
    nspool,
    programs,
    quiesce,
    report,
    rootless,
    scratch,
    spawn,
    tools,
    validate,
)
from vlab import ip as iplib
from vlab import tap as taplib
from vlab.bridge import Bridge, Port
from vlab.capture import PacketPort, TapPort
from vlab.endpoints import VM, EdgePoll, Endpoint, Host, Uplink
from vlab.errors import LabError, Unsupported
from vlab.frames import Mask
from vlab.guard import LabGuard, guarded
from vlab.mdb import mdb_text
from vlab.netns import NetNS
from vlab.options import BRIDGE_OPTIONS, encode_bridge, encode_mtu, normalize_mac, pack_data
from vlab.reaper import reap
from vlab.rtnl import LinkRequests, Rtnl, qdisc_events, set_noqueue

if TYPE_CHECKING:
    from scapy.layers.l2 import Ether

    from vlab.frames import FrameLike

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


def _suppress_os() -> contextlib.suppress:
    """Undoing a failed build is best effort: the lab's close removes what is left anyway."""
    return contextlib.suppress(OSError)


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
        self.name = validate.lab_name(name)
        self.quiet = validate.flag(quiet, "Lab(quiet)")
        self.artifacts = validate.artifacts_dir(artifacts)
        self._guard = LabGuard(self.name)
        self.bridges: dict[str, Bridge] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self._spaces: dict[str, _Namespace] = {}
        self._taps: list[int] = []
        self._sockets: list[PacketPort] = []
        self._guests: list[Any] = []
        self._programs: list[programs.Program] = []  # background programs: die with the lab
        self._noise: list[Callable[[bytes], bool]] = []  # frames the lab itself causes
        self._counters = {"vnet": 0, "veth": 0, "eth": 0, "port": 0}
        self._undo: list[Callable[[], None]] = []  # steps undoing the build call in progress
        self._dirty = True
        self._closed = False
        self._artifact_dir: Path | None = None  # where this lab's failure artifacts went
        self._quiet: quiesce.Quiet | None = None  # the lab when a settle last found it quiet
        self._edges = EdgePoll()
        self._drain_hooks: list[Callable[[], int]] = []  # queues only a probe can empty
        self._guest_dir: Path | None = None
        self._guest_dir_is_temp = False
        if os.geteuid() != 0:  # a non-root user builds labs as root of a user namespace
            rootless.ensure()
        self._shell = nspool.take(quiet)  # a reused switch namespace with a dormant bridge
        if self._shell is not None:
            self._spaces["switch"] = self._shell.space  # type: ignore[assignment]
        try:
            self._switch = self._space("switch")
        except OSError as exc:
            problem = limits.fd_limit_error(exc, f"lab {self.name!r}: cannot create its switch")
            if problem is None:
                raise
            raise problem from None
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
        with self._guard.lock:  # waits for a call in progress in another thread
            self._guard.closed = True
            self._closed = True
            self._close()

    def _close(self) -> None:
        try:
            programs.stop_all(self)
            for ep in self.endpoints.values():
                ep._detach()  # no fd number of this lab is used again, whoever reuses it
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
                    name, space = self._spaces.popitem()
                    if name == "switch" and self._shell is not None:
                        self._release_switch()
                    else:
                        space.close()

    def _release_switch(self) -> None:
        """A switch namespace whose only bridge sits at the pool's ifindex goes to the pool."""
        shell, self._shell = self._shell, None
        assert shell is not None
        bridges = list(self.bridges.values())
        if self.quiet and len(bridges) == 1 and bridges[0].index == nspool.BRIDGE_INDEX:
            nspool.give(shell, lambda: _Namespace("switch", True))
        else:
            shell.close()

    def _expose_switch(self) -> None:
        """Before a test looks into the switch namespace, a dormant bridge must be gone."""
        if self._shell is not None and self._shell.dormant:
            nspool.discard_dormant(self._shell)

    def namespaces(self) -> dict[str, NetNS]:
        """The lab's namespaces by name (``switch``, ``upstream``, one per host), for tools
        that enter them (``vlab up``/``exec``) — their fds stay owned by the lab."""
        self._expose_switch()
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

    def _space(self, name: str) -> _Namespace:
        if name in self._spaces:
            return self._spaces[name]
        space = _Namespace(name, self.quiet)
        self._spaces[name] = space
        return space

    def _check_open(self) -> None:
        self._guard.check()

    def _check_name(self, name: str, what: str) -> None:
        check = validate.bridge_name_problem if what == "bridge" else validate.name_problem
        problem = check(name)
        if problem is not None:
            raise LabError(f"{what} name {problem}")
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

    @guarded
    def bridge(self, name: str, **options: Any) -> Bridge:
        """A Linux bridge in the switch namespace, with options in friendly names and units."""
        self._check_name(name, "bridge")
        encoded = encode_bridge(options)  # everything validated before anything is built
        mac = encoded.pop("mac", None) or random_mac("02")
        mtu = encoded.pop("mtu", None)
        if encoded.get("vlan_filtering") == 0:
            del encoded["vlan_filtering"]  # the default; kernels without the feature refuse it
        # mcast_querier in the same message as the query intervals starts with the old ones.
        # The MLD querier also needs the bridge's link-local address first: Bridge.set does both.
        querier = encoded.pop("multicast_querier", None)
        index = self._switch.index()
        data = pack_data(BRIDGE_OPTIONS, encoded)
        try:
            if not self._adopt_bridge(name, index, mac, data, mtu):
                self._switch.links.add_bridge(name, index, mac, data, mtu)
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
            try:
                br.set(multicast_querier=bool(querier))
            except BaseException:
                del self.bridges[name]  # a failed call leaves nothing
                with _suppress_os():
                    self._switch.links.delete(index)
                raise
        return br

    def _adopt_bridge(self, name: str, index: int, mac: str, data: bytes, mtu: int | None) -> bool:
        """The first bridge of a reused switch namespace is its dormant bridge, made anew."""
        if index != nspool.BRIDGE_INDEX:
            return False
        if self._shell is None:
            if self.quiet and mtu is None and nspool.enabled():  # may join the pool later
                self._shell = nspool.wrap(self._switch)
            return False
        return nspool.adopt(self._shell, name, mac, data, mtu)

    @guarded
    def vm(
        self,
        name: str,
        bridge: Bridge | str | Sequence[Bridge | str] | None = None,
        mac: str | None = None,
        mtu: int | None = None,
        guest: str | None = None,
        macvtap: object = None,
        mode: str | None = None,
    ) -> VM:
        """A VM whose vNIC is a tap on ``bridge``; vlab holds the tap fd as QEMU would.

        ``guest="qemu"`` boots a real Linux guest on that tap instead of emulating one.
        ``macvtap=nic, mode="bridge"`` makes the vNIC a macvtap on ``nic`` (a host, an uplink
        or a bare port) instead of a tap: libvirt's ``direct`` attachment (see vlab.macvtap).
        """
        self._check_name(name, "vm")
        if (bridge is None) == (macvtap is None):
            raise LabError(f"vm {name}: give either bridge= (a tap) or macvtap= (a lower NIC)")
        if mode is not None and macvtap is None:
            raise LabError(f"vm {name}: mode= is a macvtap's; give macvtap= with it")
        mtu = self._endpoint_mtu("vm", name, mtu)
        mac = self._endpoint_mac("vm", name, mac, "52:54:00")
        if guest not in (None, "qemu"):
            raise LabError(f"vm {name}: guest={guest!r} is not known; use guest='qemu' or None")
        if macvtap is not None:
            from vlab.macvtap import add_vm

            with self._rollback():
                return add_vm(self, name, macvtap, mode, mac, mtu, guest)
        if isinstance(bridge, list | tuple):  # a NIC on each bridge (see vlab.nics)
            if not bridge or guest is not None:
                raise LabError(f"vm {name}: bridge= as a list takes bridges, and no guest=")
            more = [self._bridge(b) for b in bridge[1:]]
            from vlab.nics import nic_name

            for i in range(1, len(more) + 1):
                self._check_name(nic_name(name, f"nic{i}"), "vm")
            first = self.vm(name, bridge[0], mac, mtu)
            for extra in more:
                first.add_nic(extra, mtu=mtu)
            return first
        assert bridge is not None
        br = self._bridge(bridge)  # type: ignore[arg-type]
        tap_mac = "fe" + mac[2:]  # libvirt's rule: never the guest's MAC, never the bridge's
        self._check_room(br, f"vm {name}")
        with self._rollback() as undo:
            port = self._next("vnet")
            with self._switch.ns.entered():
                fd = taplib.open_tap(port)
                self._taps.append(fd)
                undo.append(lambda: self._forget_tap(fd))
                # the emulated VM reads a stamping socket on its tap (see TapPort); a guest's
                # tap is watched by the guest's own port instead
                try:
                    txqlen = TAP_TXQLEN if guest is None else 0
                    io: Any = TapPort(fd, port, mtu or 1500, txqlen=txqlen)
                except OSError as exc:
                    problem = limits.fd_limit_error(exc, f"vm {name}: cannot watch tap {port}")
                    raise problem or LabError(
                        f"vm {name}: cannot watch tap {port}: {exc.strerror}"
                    ) from None
            if io.sock is not None:
                self._sockets.append(io)
            index = self._switch.links.index_of(port)
            self._switch.next_index = max(self._switch.next_index, index + 1)
            try:
                set_noqueue(self._switch.rtnl, index)  # while down: no qdisc swap to wait on
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

    @guarded
    def host(
        self,
        name: str,
        bridge: Bridge | str | Sequence[Bridge | str] | None = None,
        mac: str | None = None,
        mtu: int | None = None,
        ip: str | list[str] | None = None,
        ipv6: bool | str | list[str] | None = None,
        bond: Sequence[Bridge | str] | None = None,
        mode: str | None = None,
    ) -> Host:
        """A namespace cabled to ``bridge`` by a veth; ``host.run(...)`` runs programs in it.

        ``ip="192.0.2.1/24"`` (or a list, IPv4 and IPv6) gives eth0 addresses; ``ipv6=True``
        or IPv6 addresses turn IPv6 on in this host alone (see :mod:`vlab.ip`).
        ``bridge=[br1, br2]`` gives it a NIC on each (``host.nics``); ``bond=[br1, br2],
        mode="active-backup"`` bonds those NICs (see :mod:`vlab.nics`).
        """
        self._check_name(name, "host")
        if (bridge is None) == (bond is None):
            raise LabError(f"host {name}: give either bridge= (its NICs) or bond= (bonded NICs)")
        if mode is not None and bond is None:
            raise LabError(f"host {name}: mode= is a bond's; give bond= with it")
        mtu = self._endpoint_mtu("host", name, mtu)
        mac = self._endpoint_mac("host", name, mac, "02")
        ips = iplib.interfaces(ip, f"host {name} ip")
        want6, ips6 = iplib.ipv6_request(ipv6, f"host {name}")
        if bond is not None:
            from vlab.nics import add_bonded_host

            mode = "active-backup" if mode is None else mode
            return add_bonded_host(self, name, bond, mode, mac, mtu, ips + ips6, want6)
        more: list[Bridge] = []
        if isinstance(bridge, list | tuple):
            if not bridge:
                raise LabError(f"host {name}: bridge=[] names no bridge to cable it to")
            more = [self._bridge(b) for b in bridge[1:]]
            bridge = bridge[0]
        assert bridge is not None
        br = self._bridge(bridge)  # type: ignore[arg-type]
        self._check_room(br, f"host {name}")
        for extra in more:
            self._check_room(extra, f"host {name}")
        if more:
            from vlab.nics import add_host_nic, nic_name

            for i in range(1, len(more) + 1):
                self._check_name(nic_name(name, f"eth{i}"), "host")
            host = self.host(name, br, mac, mtu, ip, ipv6)
            for extra in more:
                add_host_nic(host, extra, None, mtu, None)
            return host
        with self._rollback():
            space = self._space(name)
            port = self._next("veth")
            ep = self._cable(Host, name, br, port, space, "eth0", mac, mtu)
            assert isinstance(ep, Host)
            iplib.configure_host(space.ns, space.rtnl, "eth0", ep.ifindex, ips + ips6, want6)
        return ep  # type: ignore[return-value]

    @guarded
    def uplink(
        self,
        bridge: Bridge | str,
        mac: str | None = None,
        mtu: int | None = None,
        name: str | None = None,
        kind: str = "veth",
    ) -> Uplink:
        """The bridge's pNIC port; its far end, in the upstream namespace, is the network.

        Only a veth carries frames both ways, so that is the default. ``kind="dummy"`` makes
        the port a dummy link of the switch namespace (see :mod:`vlab.dummy`): it receives what
        the bridge sends and can be watched, but injects nothing (``send()`` is a LabError);
        ``Unsupported`` (a skip) where the kernel lacks the dummy link type.
        """
        br = self._bridge(bridge)
        if kind not in ("veth", "dummy"):
            raise LabError(f"uplink kind={kind!r}: choose 'veth' (default) or 'dummy'")
        if name is None:
            name = "uplink" if "uplink" not in self.endpoints else f"uplink-{br.name}"[:15]
        self._check_name(name, "uplink")
        mtu = self._endpoint_mtu("uplink", name, mtu)
        mac = self._endpoint_mac("uplink", name, mac, "02")
        self._check_room(br, f"uplink {name}")
        if kind == "dummy":
            from vlab.dummy import add_dummy_uplink

            with self._rollback():
                return add_dummy_uplink(self, br, name, mac, mtu)
        with self._rollback():
            space = self._space("upstream")
            port = self._next("eth")
            ep = self._cable(Uplink, name, br, port, space, port, mac, mtu)
        return ep  # type: ignore[return-value]

    @guarded
    def port(self, bridge: Bridge | str, mac: str | None = None) -> Port:
        """A bare port of ``bridge`` (no endpoint behind it) with MAC ``mac``: a local fdb
        entry, a port to detach and attach (see :mod:`vlab.ports`)."""
        from vlab.ports import bare_port

        br = self._bridge(bridge)
        mac = self._endpoint_mac("port", br.name, mac, "02")
        self._check_room(br, f"port on {br.name}")
        with self._rollback():
            return bare_port(self, br, mac)

    def _forget_tap(self, fd: int) -> None:
        self._taps.remove(fd)
        taplib.discard_tap(fd)

    def _endpoint_mtu(self, kind: str, name: str, mtu: object) -> int | None:
        value = encode_mtu(mtu, f"{kind} {name}")
        problem = validate.mtu_problem(kind, value) if value is not None else None
        if problem is not None:
            raise LabError(f"{kind} {name}: {problem}")
        return value

    def _endpoint_mac(self, kind: str, name: str, mac: object, prefix: str) -> str:
        if mac is None:
            return random_mac(prefix)
        value = normalize_mac(mac, f"{kind} {name} mac")
        problem = validate.endpoint_mac_problem(value)
        if problem is not None:
            raise LabError(f"{kind} {name} mac: {problem}")
        return value

    def _check_room(self, br: Bridge, what: str) -> None:
        if len(br.ports) >= validate.BRIDGE_MAX_PORTS:
            raise LabError(
                f"{what}: bridge {br.name} already has {len(br.ports)} ports, the most a Linux "
                f"bridge takes ({validate.BRIDGE_MAX_PORTS}); cable more to another bridge"
            )

    @contextmanager
    def _rollback(self) -> Iterator[list[Callable[[], None]]]:
        """Undo everything a build call made if it fails, so that a retry works.

        The registry, port-name counters, new namespaces and sockets are restored from a
        snapshot; callers push undo steps for what a snapshot cannot see (a tap fd, a link in
        a namespace that stays). Undo steps run newest first and never mask the real error.
        """
        undo: list[Callable[[], None]] = []
        self._undo = undo
        counters = dict(self._counters)
        spaces, endpoints = set(self._spaces), set(self.endpoints)
        ports = {name: set(br.ports) for name, br in self.bridges.items()}
        sockets, guests = len(self._sockets), len(self._guests)
        try:
            yield undo
        except BaseException:
            steps = [*reversed(undo)]
            steps += [g.close for g in self._guests[guests:]]
            steps += [s.close for s in self._sockets[sockets:]]
            del self._guests[guests:], self._sockets[sockets:]
            for step in steps:
                with _suppress_os():
                    step()
            for name in set(self._spaces) - spaces:
                self._spaces.pop(name).close()
            for name in set(self.endpoints) - endpoints:
                del self.endpoints[name]
            for name, br in self.bridges.items():
                for port in set(br.ports) - ports.get(name, set()):
                    del br.ports[port]
            self._counters.update(counters)
            raise

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
            self._undo.append(lambda: self._switch.links.delete(index))  # takes its peer along
            space.links.set_link(far_index)
        except OSError as exc:
            if exc.errno in limits.FD_ERRNOS:
                raise
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
            if isinstance(ep, VM):
                ep._wait_booted()  # guests boot in parallel; this waits for the slowest
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
                if (ep is not None and not ep.carrier) or port.admin_down:
                    continue
                # a tap keeps operstate UNKNOWN: it had carrier from birth, so no link event
                tap = isinstance(ep, VM) or getattr(ep, "link_kind", "") == "dummy"
                if not _link_ready(self._switch.links, port.index, tap):
                    missing.append(f"{port.name} is not up")
                elif not (port.state_managed or br.stp) and ports.get(port.name) != 3:
                    missing.append(f"{port.name} is not forwarding yet")
        for ep in self.endpoints.values():
            readiness = getattr(ep, "_readiness", None)  # kinds that are not bridge ports
            if readiness is not None:
                missing.extend(readiness())
            if not isinstance(ep, Host | Uplink) or not ep.carrier:
                continue
            if getattr(ep, "link_kind", "") == "dummy":  # a port of the switch: checked above
                continue
            space = next(s for s in self._spaces.values() if s.ns is ep.ns)  # a host's NICs
            if not _link_ready(space.links, ep.ifindex, False):
                missing.append(f"{ep.name}'s {ep.ifname} is not up")
        return missing

    # --- observing -------------------------------------------------------------------------

    def _drain_all(self) -> int:
        got = self._edges.drain(list(self.endpoints.values()))
        return got + sum(hook() for hook in self._drain_hooks)

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
            [ep._io.fileno() for ep in self.endpoints.values()],
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
        noisy = {ep.name: list(ep._pending) for ep in self.endpoints.values() if ep._pending}
        if noisy:
            raise AssertionError(report.not_quiet(self, noisy))

    @guarded
    def where(self, mac: str) -> Where | None:
        """Which port of which bridge ``mac`` sits behind, from the fdb; None if nowhere."""
        mac = normalize_mac(mac)
        owner = next((ep.name for ep in self.endpoints.values() if ep.mac == mac), None)
        for br in self.bridges.values():
            for entry in br.fdb_entries():
                if entry.mac == mac:
                    port = br.ports.get(entry.port)  # None: a port vlab did not make
                    ep_name = port.endpoint.name if port and port.endpoint else None
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
        cabled = {id(p.endpoint) for br in self.bridges.values() for p in br.ports.values()}
        behind = [ep for ep in self.endpoints.values() if id(ep) not in cabled]
        lines += [f"  {ep.describe()}" for ep in behind]  # no port of their own: macvtap, bond
        return "\n".join(lines)

    @guarded
    def fdb_text(self) -> str:
        """Every bridge's fdb as text, for the failure report of a lab test."""
        lines = []
        for br in self.bridges.values():
            lines.append(f"fdb of {br.name}:")
            for e in br.fdb_entries():
                lines.append(f"  {e.mac} {e.port} {e.how}")
            lines.extend(mdb_text(br))
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
            raise LabError(f"unknown node {node!r}; nodes of this lab: {', '.join(self._spaces)}")
        return self._run_in(space.ns, list(argv), check=check, timeout=timeout)

    @guarded
    def spawn(self, node: str, argv: list[str]) -> programs.Program:
        """Start a background program in a lab namespace; it dies with the lab (even when the
        test process is killed), and its output goes into the failure report."""
        space = self._spaces.get(node) if isinstance(node, str) else None
        if space is None:
            raise LabError(f"unknown node {node!r}; nodes of this lab: {', '.join(self._spaces)}")
        argv = validate.argv(programs.as_list(argv, node), node)
        return programs.start(self, node, space.ns, argv)

    # --- helpers for endpoints -------------------------------------------------------------

    def _run_in(
        self, ns: NetNS, argv: list[str], check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        argv = validate.argv(argv, ns.name)
        check = validate.flag(check, "run(check)")
        timeout = validate.timeout(timeout, "run")
        argv = tools.resolve(argv)  # ip, bridge, tc: in /usr/sbin, off a normal user's PATH
        # every program dies with this process, SIGKILL included (see vlab.programs.dying)
        return spawn.run(ns, argv, check=check, timeout=timeout, wrap=programs.dying)

    def _sync_link(self, index: int, port: str | None = None, up: bool = True) -> None:
        self._switch.links.link_state(index)
        if port is not None and not up:  # kernels whose GETLINK runs no linkwatch work (6.1)
            deadline = time.monotonic() + 2.0  # act on carrier loss up to a second later
            while self._switch.links.port_states().get(port, 0) and time.monotonic() < deadline:
                time.sleep(0.002)

    def _link_updown(self, ns: NetNS, ifindex: int, up: bool) -> None:
        space = next(s for s in self._spaces.values() if s.ns is ns)
        space.links.set_link(ifindex, up=up)

    def __repr__(self) -> str:
        return f"<Lab {self.name} bridges={list(self.bridges)} endpoints={list(self.endpoints)}>"
