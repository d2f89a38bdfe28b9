"""A Linux bridge in the lab's switch namespace, its ports and its forwarding database."""

from __future__ import annotations

import contextlib
import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vlab import rtnl as nl
from vlab.errors import LabError, Unsupported
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
    from vlab.endpoints import Endpoint
    from vlab.lab import Lab
    from vlab.stats import LinkStats


@dataclass(frozen=True)
class FdbEntry:
    """One row of the bridge's forwarding database, as ``bridge fdb show`` would print it."""

    mac: str
    port: str
    static: bool
    sticky: bool
    local: bool
    locked: bool

    @property
    def how(self) -> str:
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
    if exc.errno == 16:  # EBUSY
        return LabError(f"{what}: the kernel refused {names} (EBUSY: STP owns port states)")
    return LabError(f"{what}: the kernel refused {names} ({exc.strerror})")


class Port:
    """A bridge port, seen from the bridge: ``br.port(vm).set(learning=False)``."""

    def __init__(
        self, bridge: Bridge, name: str, index: int, endpoint: Endpoint | None, mac: str
    ) -> None:
        self.bridge = bridge
        self.name = name
        self.index = index
        self.endpoint = endpoint
        self.mac = mac  # the port device's own MAC (a local fdb entry), not the endpoint's
        self.state_managed = False  # the user set a state: readiness must not wait on it

    def set(self, **options: Any) -> Port:
        encoded = encode_port(options)
        if "state" in encoded:
            self.state_managed = True
        try:
            self.bridge.lab._switch_rtnl.set_port_data(self.index, pack_data(PORT_OPTIONS, encoded))
        except OSError as exc:
            raise _errno_hint(exc, f"port {self.name} of {self.bridge.name}", options) from None
        return self

    def options(self) -> dict[str, Any]:
        """The port's options as the kernel reports them now."""
        return unpack_data(PORT_OPTIONS, self.bridge.lab._switch_rtnl.port_data(self.index))

    def stats(self) -> LinkStats:
        """The port device's kernel counters: rx is what the bridge got from the endpoint."""
        from vlab.stats import port_stats

        return port_stats(self)

    def __repr__(self) -> str:
        return f"<Port {self.name} of {self.bridge.name}>"


class Bridge:
    """A VLAN-unaware Linux bridge. ``fdb()`` maps MACs to port names, as tests assert."""

    def __init__(self, lab: Lab, name: str, index: int, mac: str) -> None:
        self.lab = lab
        self.name = name
        self.index = index
        self.mac = mac
        self.ports: dict[str, Port] = {}
        self.stp = False
        self.vlan_filtering = False
        self._ipv6 = False

    # --- options ---------------------------------------------------------------------------

    def set(self, **options: Any) -> Bridge:
        encoded = encode_bridge(options)
        if encoded.get("vlan_filtering") == 0 and not self.vlan_filtering:
            del encoded["vlan_filtering"]  # already off; kernels without it refuse even "off"
        rtnl = self.lab._switch_rtnl
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
        if "stp" in encoded:
            self.stp = bool(encoded["stp"])
        if "vlan_filtering" in encoded:
            self.vlan_filtering = bool(encoded["vlan_filtering"])
        return self

    def options(self) -> dict[str, Any]:
        """The bridge's options as the kernel reports them now (read back through netlink)."""
        return unpack_data(BRIDGE_OPTIONS, self.lab._switch_rtnl.bridge_data(self.index))

    def n_learned(self) -> int:
        """How many dynamically learnt entries count against fdb_max_learned."""
        raw = self.lab._switch_rtnl.bridge_data(self.index).get(IFLA_BR_FDB_N_LEARNED)
        return int.from_bytes(raw[:4], "little") if raw else 0

    # --- ports -----------------------------------------------------------------------------

    def port(self, endpoint: Endpoint | str) -> Port:
        name = endpoint if isinstance(endpoint, str) else endpoint.port
        try:
            return self.ports[name]
        except KeyError:
            raise LabError(
                f"{name!r} is not a port of {self.name}; its ports are: "
                + (", ".join(self.ports) or "none yet")
            ) from None

    # --- forwarding database ---------------------------------------------------------------

    def fdb_entries(self) -> list[FdbEntry]:
        by_index = {p.index: p.name for p in self.ports.values()}
        out = []
        for mac, ifindex, master, state, flags, ext in nl.fdb_dump(self.lab._switch_rtnl):
            if master != self.index or ifindex not in by_index:
                continue
            out.append(
                FdbEntry(
                    mac=mac,
                    port=by_index[ifindex],
                    static=bool(state & nl.NUD_NOARP),
                    sticky=bool(flags & nl.NTF_STICKY),
                    local=bool(state & nl.NUD_PERMANENT),
                    locked=bool(ext & nl.NTF_EXT_LOCKED),
                )
            )
        return out

    def fdb(self, local: bool = False) -> dict[str, str]:
        """``{mac: port name}`` of learnt and static entries (``local=True`` adds own MACs).

        Locked entries (MAB) are left out: they do not forward; see :meth:`fdb_entries`.
        """
        return {
            e.mac: e.port for e in self.fdb_entries() if (local or not e.local) and not e.locked
        }

    def fdb_add(
        self, mac: str, endpoint: Endpoint | str, static: bool = True, sticky: bool = False
    ) -> None:
        port = self.port(endpoint)
        try:
            nl.fdb_request(
                self.lab._switch_rtnl, True, port.index, normalize_mac(mac), static, sticky
            )
        except OSError as exc:
            raise LabError(f"fdb add {mac} on {port.name}: {exc.strerror}") from None

    def fdb_del(self, mac: str, endpoint: Endpoint | str) -> None:
        port = self.port(endpoint)
        try:
            nl.fdb_request(self.lab._switch_rtnl, False, port.index, normalize_mac(mac))
        except OSError as exc:
            raise LabError(f"fdb del {mac} on {port.name}: {exc.strerror}") from None

    def fdb_flush(self) -> None:
        """Forget every dynamic entry (static and local ones stay), as ``fdb_flush`` does."""
        self.lab._switch_rtnl.set_bridge_data(self.index, nl.nla(21, b""))  # IFLA_BR_FDB_FLUSH

    def neigh_add(self, ip: str, mac: str) -> None:
        """A neighbour entry on the bridge device: what neigh_suppress answers ARP/NS from.

        An IPv6 entry needs IPv6 on the bridge device, which quiet labs keep off; it is turned
        on for this device only, without a link-local address (so still no DAD, RS or MLD).
        """
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            raise LabError(f"neigh_add: {ip!r} is not an IPv4 or IPv6 address") from None
        rtnl = self.lab._switch_rtnl
        if addr.version == 6 and not self._ipv6:
            self._enable_ipv6()
        try:
            nl.neigh_add(rtnl, self.index, addr.packed, normalize_mac(mac))
        except OSError as exc:
            raise LabError(f"neigh_add {ip} lladdr {mac} on {self.name}: {exc.strerror}") from None

    def _enable_ipv6(self) -> None:
        """IPv6 on the bridge device alone, with the chatter that costs kept out of assertions.

        Without a link-local address there is no DAD or router solicitation; but the device
        reports its multicast memberships (ff02::6a, joined by the snooping code) once IPv6 is
        on, in bursts over the next second, with no knob to silence them and no tc drop action
        on these kernels. Those reports (MLD, from the bridge's own MAC) are lab noise: they
        stay in the pcaps but never reach an endpoint's queue.
        """
        ns, name = self.lab._switch.ns, self.name
        with contextlib.suppress(FileNotFoundError):
            ns.sysctl(f"net.ipv6.conf.{name}.mld_qrv", 1)  # one report per change, not two
        nl.set_addrgenmode_none(self.lab._switch_rtnl, self.index)
        ns.sysctl(f"net.ipv6.conf.{name}.disable_ipv6", 0)
        self._ipv6 = True
        mac = bytes.fromhex(self.mac.replace(":", ""))
        self.lab._noise.append(lambda frame: is_mld_report(frame, mac))

    def __repr__(self) -> str:
        return f"<Bridge {self.name} {self.mac} ports={list(self.ports)}>"
