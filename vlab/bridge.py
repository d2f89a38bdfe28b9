"""A Linux bridge in the lab's switch namespace, its ports and its forwarding database."""

from __future__ import annotations

import contextlib
import ipaddress
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vlab import fdb as fdblib
from vlab import mdb as mdblib
from vlab import rtnl as nl
from vlab import validate
from vlab import vlan as vlanlib
from vlab.bridge_vlans import BridgeVlans, PortVlans
from vlab.endpoints import Endpoint
from vlab.errors import LabError, Unsupported
from vlab.guard import LabGuard, guarded
from vlab.options import (
    BRIDGE_OPTIONS,
    IFLA_BR_FDB_N_LEARNED,
    PORT_OPTIONS,
    encode_bridge,
    encode_port,
    normalize_mac,
    pack_data,
    unpack_data,
)

if TYPE_CHECKING:
    from vlab.lab import Lab
    from vlab.stats import LinkStats
    from vlab.stp import StpPort
    from vlab.switch import Switch


@dataclass(frozen=True)
class FdbEntry:
    """One row of the bridge's forwarding database, as ``bridge fdb show`` would print it."""

    mac: str
    port: str
    static: bool
    sticky: bool
    local: bool
    locked: bool
    extern_learn: bool = False
    offloaded: bool = False
    activity_notify: bool = False
    inactive: bool = False  # activity tracking says no traffic since (FDB_NOTIFY_INACTIVE)
    stale: bool = False  # aged out, not yet collected
    used: float = 0.0  # seconds since the bridge last forwarded a frame to this MAC
    updated: float = 0.0  # seconds since it was learnt, added or refreshed
    vlan: int | None = None  # its VLAN on a VLAN-aware bridge (None: VLAN-unaware, or no VLAN)

    @property
    def how(self) -> str:
        """One word for how the entry got there: local, locked, sticky, static or learnt."""
        if self.local:
            return "local"
        if self.locked:
            return "locked"
        kind = "static" if self.static else "learnt"
        return kind + (", sticky" if self.sticky else "")


def is_mld_report(frame: bytes, src: bytes) -> bool:
    """An MLD listener report (ICMPv6 131/143, hop-by-hop first) sent by MAC ``src``."""
    return (
        len(frame) > 62
        and frame[6:12] == src
        and frame[12:14] == b"\x86\xdd"
        and frame[20] == 0  # next header: hop-by-hop options
        and frame[62] in (131, 143)
    )


def _errno_hint(exc: OSError, what: str, options: dict[str, Any]) -> LabError:
    names = ", ".join(f"{k}={v!r}" for k, v in options.items())
    if exc.errno == 95:  # EOPNOTSUPP
        return Unsupported(f"{what}: this kernel does not support {names} (EOPNOTSUPP)")
    if exc.errno == 19:  # ENODEV
        return LabError(f"{what} is gone (ENODEV): its link was deleted, so {names} cannot be set")
    if exc.errno == 16:  # EBUSY
        return LabError(f"{what}: the kernel refused {names} (EBUSY: STP owns port states)")
    return LabError(f"{what}: the kernel refused {names} ({exc.strerror})")


class Port(PortVlans):
    """A bridge port, seen from the bridge: ``br.port(vm).set(learning=False)``; its VLANs
    with ``vlan_add``/``vlan_del``/``vlans`` (see :mod:`vlab.bridge_vlans`)."""

    carrier_from_birth = False  # a port link with no endpoint that keeps operstate UNKNOWN

    def __init__(
        self, bridge: Bridge, name: str, index: int, endpoint: Endpoint | None, mac: str
    ) -> None:
        self.bridge = bridge
        self.name = name
        self.index = index
        self.endpoint = endpoint
        self.mac = mac  # the port device's own MAC (a local fdb entry), not the endpoint's
        self.state_managed = False  # the user set a state: readiness must not wait on it
        self.admin_down = False  # set_up(False): readiness must not wait on it either
        self.foreign = False  # made behind vlab's back (see br.port): nor on this one

    @property
    def _guard(self) -> LabGuard:
        return self.bridge.switch.guard

    def describe(self) -> str:
        """One line for the lab's topology: the endpoint behind this port, or what the port is
        when none is (a cable end says which cable; a bare port its MAC)."""
        if self.endpoint is not None:
            return self.endpoint.describe()
        return f"no endpoint (mac {self.mac})"

    @guarded
    def set(self, **options: Any) -> Port:
        """Change port options (friendly names and units), all validated before any is sent."""
        encoded = encode_port(options)
        if "state" in encoded:
            self.state_managed = True
        try:
            self.bridge.switch.rtnl.set_port_data(self.index, pack_data(PORT_OPTIONS, encoded))
            raw = self.bridge.switch.rtnl.port_data(self.index)  # gone since: ENODEV here
        except OSError as exc:
            raise _errno_hint(exc, f"port {self.name} of {self.bridge.name}", options) from None
        from vlab import readback

        readback.check(PORT_OPTIONS, encoded, raw, f"port {self.name} of {self.bridge.name}")
        return self

    @guarded
    def options(self) -> dict[str, Any]:
        """The port's options as the kernel reports them now, with its read-only counters
        (``mcast_n_groups``, ``port_no``, ``port_id``, ``backup_port``...)."""
        raw = self.bridge.switch.rtnl.port_data(self.index)
        out = unpack_data(PORT_OPTIONS, raw)
        names = {p.index: p.name for p in self.bridge.ports.values()}
        out.update(mdblib.read_only_port(raw, names))
        return out

    @guarded
    def set_backup(self, backup: Port | Endpoint | str | None) -> Port:
        """``bridge link set dev PORT backup_port BACKUP``: while this port is down (carrier or
        admin), what the bridge would send it goes out of ``backup``; None removes it.
        Read back as ``options()["backup_port"]``."""
        index = 0 if backup is None else self.bridge.port(backup).index
        try:
            data = nl.nla(34, index.to_bytes(4, "little"))  # IFLA_BRPORT_BACKUP_PORT
            self.bridge.switch.rtnl.set_port_data(self.index, data)
        except OSError as exc:
            raise LabError(f"port {self.name}: backup_port refused: {exc.strerror}") from None
        return self

    @guarded
    def detach(self) -> Port:
        """``ip link set PORT nomaster``: out of its bridge (its fdb entries go with it)."""
        from vlab.ports import set_master

        if self.bridge.ports.get(self.name) is not self:
            raise LabError(f"port {self.name} is not attached to a bridge; attach(br) it first")
        set_master(self.bridge.switch, self, 0)
        del self.bridge.ports[self.name]
        return self

    @guarded
    def attach(self, bridge: Bridge) -> Port:
        """``ip link set PORT master BR``: into ``bridge`` (of the same lab)."""
        from vlab.ports import set_master

        if self.bridge.ports.get(self.name) is self:
            raise LabError(f"port {self.name} is on {self.bridge.name}: detach() it first")
        switch = self.bridge.switch
        br = switch.fabric.bridge_of(bridge)
        if br.switch is not switch:
            raise LabError(
                f"port {self.name}: bridge {br.name} is in another switch namespace "
                f"({br.switch.name}); a port can only join a bridge of its own"
            )
        set_master(switch, self, br.index)
        self.bridge = br
        br.ports[self.name] = self
        if self.endpoint is not None:
            self.endpoint.bridge = br
        switch.topology_changed()
        return self

    @guarded
    def set_up(self, up: bool) -> Port:
        """Administratively up or down (``ip link set PORT up|down``), distinct from carrier:
        the cable stays plugged, the bridge disables the port. Returns once the bridge acted."""
        up = validate.flag(up, f"port {self.name}: set_up(up)")
        switch = self.bridge.switch
        switch.links.set_link(self.index, up=up)
        self.admin_down = not up
        switch.sync_link(self.index)
        switch.topology_changed()
        return self

    def stp(self) -> StpPort:
        """What the kernel's STP holds for this port: role, state, designated root, bridge,
        port and cost (the role is derived, netlink has none: see :mod:`vlab.stp`)."""
        from vlab.stp import port_stp

        with self._guard.lock:
            return port_stp(self)

    def stats(self) -> LinkStats:
        """The port device's kernel counters: rx is what the bridge got from the endpoint."""
        from vlab.stats import port_stats

        return port_stats(self)

    def __repr__(self) -> str:
        return f"<Port {self.name} of {self.bridge.name}>"


class Bridge(BridgeVlans):
    """A Linux bridge (VLAN-aware with ``vlan_filtering=True``). ``fdb()`` maps MACs to port
    names, as tests assert; the bridge device's own VLANs are in :mod:`vlab.bridge_vlans`."""

    def __init__(self, switch: Switch, name: str, index: int, mac: str) -> None:
        self.switch = switch  # the switch namespace it lives in, and its services
        self.lab: Lab = switch.lab
        self.name = name
        self.index = index
        self.mac = mac
        self.ports: dict[str, Port] = {}
        self.stp = False
        self.vlan_filtering = False
        self._ipv6 = False
        self._link_local = False  # an IPv6 link-local address: what the MLD querier sends from
        self._querier_since: float | None = None
        self._querier_ll = False  # the bridge had its link-local when the querier started

    @property
    def _guard(self) -> LabGuard:
        return self.switch.guard

    # --- options ---------------------------------------------------------------------------

    @guarded
    def set(self, **options: Any) -> Bridge:
        """Change bridge options (friendly names and units), all validated before any is sent."""
        encoded = encode_bridge(options)
        vlanlib.check_bridge_options(encoded, self.vlan_filtering, f"bridge {self.name}")
        if encoded.get("vlan_filtering") == 0 and not self.vlan_filtering:
            del encoded["vlan_filtering"]  # already off; kernels without it refuse even "off"
        rtnl = self.switch.rtnl
        if "stp" in encoded and not encoded["stp"] and self.stp:
            from vlab.cable import check_stp_off

            check_stp_off(self)  # a loop of cables without STP would be a broadcast storm
        if encoded.get("multicast_querier") and not self._link_local:
            self._enable_link_local()  # before the querier's first MLD query, which needs it
        try:
            link = {k: encoded[k] for k in ("mac", "mtu") if k in encoded}
            if link:
                nl.LinkRequests(rtnl).set_link(self.index, up=None, **link)
                self.mac = link.get("mac", self.mac)
            data = pack_data(BRIDGE_OPTIONS, encoded)
            if data:
                rtnl.set_bridge_data(self.index, data)
        except OSError as exc:
            raise _errno_hint(exc, f"bridge {self.name}", options) from None
        if data:
            from vlab import readback

            raw = rtnl.bridge_data(self.index)
            readback.check(BRIDGE_OPTIONS, encoded, raw, f"bridge {self.name}")
        if "stp" in encoded:
            self.stp = bool(encoded["stp"])
            if self.stp:
                from vlab.stp import filter_bpdus

                filter_bpdus(self.switch)
        if "vlan_filtering" in encoded:
            self.vlan_filtering = bool(encoded["vlan_filtering"])
        if "multicast_querier" in encoded:
            self._querier_since = time.monotonic() if encoded["multicast_querier"] else None
            self._querier_ll = mdblib.has_link_local(rtnl, self.index)
        return self

    @guarded
    def options(self) -> dict[str, Any]:
        """The bridge's options as the kernel reports them now (read back through netlink)."""
        return unpack_data(BRIDGE_OPTIONS, self.switch.rtnl.bridge_data(self.index))

    @guarded
    def n_learned(self) -> int:
        """How many dynamically learnt entries count against fdb_max_learned."""
        raw = self.switch.rtnl.bridge_data(self.index).get(IFLA_BR_FDB_N_LEARNED)
        if raw is None:  # not a count of 0: a kernel that does not count (before 6.8)
            raise Unsupported(f"bridge {self.name}: this kernel does not count learnt entries")
        return int.from_bytes(raw[:4], "little")

    # --- ports -----------------------------------------------------------------------------

    @guarded
    def port(self, endpoint: Endpoint | Port | str) -> Port:
        """The port an endpoint of this lab is cabled to on this bridge (or a port by name,
        one vlab did not make included: ``lab.run("switch", "ip", "link", "set", "X", "master",
        br.name)`` then ``br.port("X")``)."""
        if isinstance(endpoint, Port):
            if endpoint.bridge is not self:
                raise LabError(f"{endpoint!r} is a port of {endpoint.bridge.name}, not {self.name}")
            return endpoint
        if isinstance(endpoint, Endpoint):
            if endpoint.lab is not self.lab:
                raise LabError(
                    f"{endpoint.kind} {endpoint.name} belongs to lab {endpoint.lab.name!r}, not to "
                    f"lab {self.lab.name!r} of bridge {self.name}: use its own lab's bridges"
                )
            port = self.ports.get(endpoint.port)
            if port is None and endpoint.bridge is self:
                raise LabError(
                    f"{endpoint.kind} {endpoint.name} has no port of its own on {self.name} "
                    "(a macvtap VM, a bond, an underlay watch): set the options on the port its "
                    "frames enter through (its NIC's)"
                )
            if port is None or port.endpoint is not endpoint:
                if endpoint.bridge is None:
                    raise LabError(
                        f"{endpoint.kind} {endpoint.name} is cabled to no bridge: it has no "
                        f"port on {self.name}"
                    )
                raise LabError(
                    f"{endpoint.kind} {endpoint.name} is cabled to {endpoint.bridge.name}, not to "
                    f"{self.name}: use {endpoint.bridge.name}.port({endpoint.name})"
                )
            return port
        if not isinstance(endpoint, str):
            raise LabError(
                f"port({endpoint!r}): give an endpoint of this lab (from lab.vm/host/uplink), "
                "one of its ports or a port name"
            )
        if endpoint not in self.ports:  # a port made behind vlab's back: adopt it
            from vlab.topology import adopt_port

            adopt_port(self, endpoint)
        try:
            return self.ports[endpoint]
        except KeyError:
            raise LabError(
                f"{endpoint!r} is not a port of {self.name}; its ports are: "
                + (", ".join(self.ports) or "none yet")
            ) from None

    # --- forwarding database ---------------------------------------------------------------

    @guarded
    def fdb_entries(self) -> list[FdbEntry]:
        """Every fdb entry of this bridge, read from the kernel, with its flags and timers and
        how it got there (ports vlab did not make included)."""
        by_index = {p.index: p.name for p in self.ports.values()}
        rtnl = self.switch.rtnl
        # the bridge device's own entry stays out, as ``bridge fdb show br`` lists it apart
        records = [
            r for r in fdblib.dump(rtnl) if r.master == self.index and r.ifindex != self.index
        ]
        if any(r.ifindex not in by_index for r in records):
            # a port added behind vlab's back (lab.run("switch", "ip", "link", ...)): name it
            others = {i: n for n, (i, _o, _q) in nl.LinkRequests(rtnl).link_states().items()}
            by_index = others | by_index
        out = []
        for r in records:
            out.append(
                FdbEntry(
                    mac=r.mac,
                    port=by_index.get(r.ifindex, f"ifindex {r.ifindex}"),
                    static=bool(r.state & nl.NUD_NOARP),
                    sticky=bool(r.flags & nl.NTF_STICKY),
                    local=bool(r.state & nl.NUD_PERMANENT),
                    locked=bool(r.ext & nl.NTF_EXT_LOCKED),
                    extern_learn=bool(r.flags & nl.NTF_EXT_LEARNED),
                    offloaded=bool(r.flags & fdblib.NTF_OFFLOADED),
                    activity_notify=bool(r.notify & fdblib.FDB_NOTIFY_BIT),
                    inactive=bool(r.notify & fdblib.FDB_NOTIFY_INACTIVE_BIT),
                    stale=bool(r.state & fdblib.NUD_STALE),
                    used=r.used,
                    updated=r.updated,
                    vlan=r.vlan,
                )
            )
        return out

    @guarded
    def fdb(self, local: bool = False, vlan: int | None = None) -> dict[str, str]:
        """``{mac: port name}`` of learnt and static entries (``local=True`` adds own MACs);
        ``vlan=N`` only VLAN N's entries (a VLAN-aware bridge learns a MAC per VLAN, so the
        same MAC can sit behind two ports in two VLANs: ask per VLAN).

        Locked entries (MAB) are left out: they do not forward; see :meth:`fdb_entries`.
        """
        local = validate.flag(local, "fdb(local)")
        vlan = self._fdb_vlan(vlan, "fdb")
        return {
            e.mac: e.port
            for e in self.fdb_entries()
            if (local or not e.local) and not e.locked and (vlan is None or e.vlan == vlan)
        }

    @guarded
    def fdb_add(
        self,
        mac: str,
        endpoint: Endpoint | str,
        static: bool = True,
        sticky: bool = False,
        vlan: int | None = None,
        **extra: bool,
    ) -> None:
        """Add a user fdb entry for ``mac`` on ``endpoint``'s port (``bridge fdb replace``): static
        unless ``static=False``; ``sticky=True`` keeps it from moving to another port (bridge
        facts, fact 14); ``vlan=N`` puts it in VLAN N of a VLAN-aware bridge; ``extra`` flags:
        use, extern_learn, activity_notify, inactive, norefresh (see :func:`vlab.fdb.add_body`)."""
        port = self.port(endpoint)
        vid = self._fdb_vlan(vlan, "fdb_add")
        static = validate.flag(static, "fdb_add(static)")
        sticky = validate.flag(sticky, "fdb_add(sticky)")
        known = ("use", "extern_learn", "activity_notify", "inactive", "norefresh")
        for key, value in extra.items():
            if key not in known:
                raise LabError(f"fdb_add: unknown flag {key!r}; flags: {', '.join(known)}")
            extra[key] = validate.flag(value, f"fdb_add({key})")
        try:
            if extra or vid is not None:
                body = fdblib.add_body(
                    port.index, normalize_mac(mac), static, sticky, vlan=vid, **extra
                )
                fdblib.add(self.switch.rtnl, body)
            else:
                nl.fdb_request(
                    self.switch.rtnl, True, port.index, normalize_mac(mac), static, sticky
                )
        except OSError as exc:
            raise LabError(f"fdb add {mac} on {port.name}: {exc.strerror}") from None

    @guarded
    def fdb_del(self, mac: str, endpoint: Endpoint | str, vlan: int | None = None) -> None:
        """Delete the entry for ``mac`` on ``endpoint``'s port (in VLAN ``vlan`` of a
        VLAN-aware bridge); a missing one is a LabError."""
        port = self.port(endpoint)
        vid = self._fdb_vlan(vlan, "fdb_del")
        try:
            if vid is None:
                nl.fdb_request(self.switch.rtnl, False, port.index, normalize_mac(mac))
            else:
                body = fdblib.delete_body(port.index, normalize_mac(mac), vid)
                self.switch.rtnl.request(nl.RTM_DELNEIGH, body)
        except OSError as exc:
            raise LabError(f"fdb del {mac} on {port.name}: {exc.strerror}") from None

    def _fdb_vlan(self, vlan: object, call: str) -> int | None:
        """One VLAN ID for an fdb entry, on a VLAN-aware bridge only (checked before sending)."""
        if vlan is None:
            return None
        if isinstance(vlan, bool) or not isinstance(vlan, int):
            raise LabError(f"{call}(vlan={vlan!r}): give one VLAN ID, e.g. vlan=10")
        vlanlib.vid_ranges(vlan, f"{call}(vlan)")
        vlanlib.check_filtering(self.vlan_filtering, f"{call}(vlan={vlan})", self.name)
        return vlan

    @guarded
    def fdb_flush(self) -> None:
        """Forget every dynamic entry (static and local ones stay), as ``fdb_flush`` does."""
        self.switch.rtnl.set_bridge_data(self.index, nl.nla(21, b""))  # IFLA_BR_FDB_FLUSH

    @guarded
    def neigh_add(self, ip: str, mac: str) -> None:
        """A neighbour entry on the bridge device: what neigh_suppress answers ARP/NS from.

        An IPv6 entry needs IPv6 on the bridge device, which quiet labs keep off; it is turned
        on for this device only, without a link-local address (so still no DAD, RS or MLD).
        """
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            raise LabError(f"neigh_add: {ip!r} is not an IPv4 or IPv6 address") from None
        rtnl = self.switch.rtnl
        if addr.version == 6 and not self._ipv6:
            self._enable_ipv6()
        try:
            nl.neigh_add(rtnl, self.index, addr.packed, normalize_mac(mac))
        except OSError as exc:
            raise LabError(f"neigh_add {ip} lladdr {mac} on {self.name}: {exc.strerror}") from None

    def enable_ipv6(self) -> None:
        """IPv6 on the bridge device alone, once (see :meth:`_enable_ipv6`): what an IPv6
        group join of ``br.local`` needs."""
        if not self._ipv6:
            self._enable_ipv6()

    def _enable_ipv6(self) -> None:
        """IPv6 on the bridge device alone, with the chatter that costs kept out of assertions.

        Without a link-local address there is no DAD or router solicitation; but the device
        reports its multicast memberships (ff02::6a, joined by the snooping code) once IPv6 is
        on, in bursts over the next second, with no knob to silence them and no tc drop action
        on these kernels. Those reports (MLD, from the bridge's own MAC) are lab noise: they
        stay in the pcaps but never reach an endpoint's queue.
        """
        ns, name = self.switch.ns, self.name
        with contextlib.suppress(FileNotFoundError):
            ns.sysctl(f"net.ipv6.conf.{name}.mld_qrv", 1)  # one report per change, not two
        nl.set_addrgenmode_none(self.switch.rtnl, self.index)
        ns.sysctl(f"net.ipv6.conf.{name}.disable_ipv6", 0)
        self._ipv6 = True
        mac = bytes.fromhex(self.mac.replace(":", ""))
        self.switch.noise.append(lambda frame: is_mld_report(frame, mac))

    def _enable_link_local(self) -> None:
        """IPv6 with a link-local address on the bridge device alone, for the MLD querier.

        Its queries need a link-local source; without one the kernel marks the bridge as having
        no IPv6 address and floods IPv6 multicast as if snooping were off, silently. DAD and
        router solicitations stay off; the device's own MLD reports are lab noise (see
        :meth:`_enable_ipv6`).
        """
        ns, name = self.switch.ns, self.name
        with contextlib.suppress(FileNotFoundError):
            ns.sysctl(f"net.ipv6.conf.{name}.mld_qrv", 1)  # where the kernel has it
        with contextlib.suppress(FileNotFoundError):  # a kernel without IPv6: nothing to do
            for key in ("accept_dad", "router_solicitations", "accept_ra"):
                ns.sysctl(f"net.ipv6.conf.{name}.{key}", 0)
            ns.sysctl(f"net.ipv6.conf.{name}.disable_ipv6", 1)  # regenerate with the new mode
            nl.set_addrgenmode(self.switch.rtnl, self.index, 0)  # EUI-64
            ns.sysctl(f"net.ipv6.conf.{name}.disable_ipv6", 0)
            if not self._ipv6:
                self._ipv6 = True
                mac = bytes.fromhex(self.mac.replace(":", ""))
                self.switch.noise.append(lambda frame: is_mld_report(frame, mac))
            self._link_local = True

    # --- multicast database ----------------------------------------------------------------

    @property
    def local(self) -> Endpoint:
        """The bridge device itself as an endpoint: frames delivered up to the bridge, and sent
        from it (see :mod:`vlab.local`). Opened on first use, and receiving from then on: take
        it before the traffic it should see (one socket per bridge only where used)."""
        from vlab.local import local_endpoint

        self._guard.check()
        with self._guard.lock:
            return local_endpoint(self)

    @guarded
    def add_address(self, address: str) -> None:
        """``ip addr add ADDRESS/LEN dev BR``: the bridge device as an IP host (IPv6 with its
        link-local address, as for the MLD querier). Read back with :meth:`addresses`."""
        from vlab import ip as iplib

        for iface in iplib.interfaces(address, f"bridge {self.name} add_address"):
            if iface.version == 6 and not self._link_local:
                self._enable_link_local()
            iplib.add(self.switch.rtnl, self.index, iface, f"bridge {self.name}")

    @guarded
    def addresses(self) -> list[str]:
        """The bridge device's addresses as the kernel reports them."""
        from vlab import ip as iplib

        return iplib.read_addresses(self.switch.rtnl, self.index)

    def _port_names(self) -> dict[int, str]:
        return {p.index: p.name for p in self.ports.values()} | {self.index: self.name}

    def _mdb_port(self, endpoint: Endpoint | Port | str | Bridge) -> int:
        return self.index if endpoint is self else self.port(endpoint).index  # type: ignore[arg-type]

    @guarded
    def mdb(self) -> list[mdblib.MdbEntry]:
        """The multicast database as the kernel holds it now (``bridge mdb show``).

        Entries of the bridge device itself (host joins) have the bridge's name as port.
        """
        return mdblib.dump(self.switch.rtnl, self.index, self._port_names())

    @guarded
    def mdb_add(
        self,
        group: str,
        endpoint: Endpoint | Port | str | Bridge,
        permanent: bool = True,
        source: str | None = None,
        sources: list[str] | None = None,
        mode: str | None = None,
        vlan: int | None = None,
    ) -> None:
        """``bridge mdb add``: ``endpoint`` (or the bridge itself) joins ``group``.

        ``source=`` makes an (S, G) entry; ``sources=`` and ``mode="include"|"exclude"`` give a
        (*, G) entry a source list and filter mode (IGMPv3/MLDv2 bridges only); ``vlan=N`` in
        VLAN N of a VLAN-aware bridge (the port must be a member of it).
        """
        vid = self._fdb_vlan(vlan, "mdb_add")
        index = self._mdb_port(endpoint)
        if index == self.index and permanent:
            raise LabError(
                f"mdb_add({group!r}, {self.name}): a host join (the bridge itself) is temporary "
                "in the kernel: pass permanent=False"
            )
        body = mdblib.request(self.index, index, group, permanent, source, sources, mode)
        if vid is not None:
            body = mdblib.with_vlan(body, vid)
        try:
            mdblib.add(self.switch.rtnl, body)
        except OSError as exc:
            raise mdblib.refused("add", group, endpoint, exc) from None

    @guarded
    def mdb_del(
        self,
        group: str,
        endpoint: Endpoint | Port | str | Bridge,
        source: str | None = None,
        vlan: int | None = None,
    ) -> None:
        """``bridge mdb del``: remove ``endpoint``'s membership of ``group`` (or of (S, G)),
        in VLAN ``vlan`` of a VLAN-aware bridge."""
        vid = self._fdb_vlan(vlan, "mdb_del")
        index = self._mdb_port(endpoint)
        body = mdblib.request(self.index, index, group, True, source, None, None)
        if vid is not None:
            body = mdblib.with_vlan(body, vid)
        try:
            mdblib.delete(self.switch.rtnl, body)
        except OSError as exc:
            raise mdblib.refused("del", group, endpoint, exc) from None

    @guarded
    def wait_querier(self, timeout: float = 15.0) -> None:
        """Return once the bridge's own querier is in effect (IGMP and MLD).

        After a querier is turned on the kernel floods multicast for one query response
        interval (a grace time, 10 s by default) before it forwards by the mdb. That timer is
        not exported over netlink: its end is computed from the interval the kernel reports and
        the moment vlab turned the querier on; lower ``multicast_query_response_interval`` to
        make it short. The MLD side is checked too: the bridge must have a link-local address.
        """
        timeout = validate.timeout(timeout, "wait_querier")
        if self._querier_since is None:
            raise LabError(f"bridge {self.name} has no querier: set multicast_querier=True first")
        self.switch.ready()  # the bridge gets its link-local address once it has carrier
        rtnl = self.switch.rtnl
        deadline = time.monotonic() + timeout
        while not mdblib.has_link_local(rtnl, self.index):
            if time.monotonic() > deadline:
                raise LabError(f"bridge {self.name} got no IPv6 link-local: no MLD querier")
            time.sleep(0.001)
        if not self._querier_ll:
            # The querier's first MLD query found no source address, and the kernel then
            # treats the bridge as IPv6-less until a later query: restart it now.
            rtnl.set_bridge_data(self.index, nl.nla(25, b"\0"))  # IFLA_BR_MCAST_QUERIER
            rtnl.set_bridge_data(self.index, nl.nla(25, b"\1"))
            self._querier_since, self._querier_ll = time.monotonic(), True
        interval = float(self.options()["multicast_query_response_interval"])
        # the kernel's timer wheel may run a timer up to 1/8 of its delay late
        remaining = self._querier_since + interval * 1.125 + 0.02 - time.monotonic()
        if remaining > deadline - time.monotonic():
            raise LabError(
                f"bridge {self.name}: its querier takes effect in {remaining:.1f} s, more than "
                f"timeout={timeout:g}; lower multicast_query_response_interval"
            )
        if remaining > 0:
            time.sleep(remaining)  # the kernel's timer, not a guess: see above

    def __repr__(self) -> str:
        return f"<Bridge {self.name} {self.mac} ports={list(self.ports)}>"
