"""A reference model of the VLAN-unaware Linux learning bridge, in pure Python.

:class:`BridgeModel` answers one question — *which endpoints must receive this frame?* — and keeps
the forwarding database the way the kernel would while doing so. Property tests drive a real bridge
and this model side by side and compare every port's observations, so the model follows the kernel
(6.18 as measured here; "fact N" below is numbered as in the project's docs/bridge-facts.md),
not the 802.1D textbook: each rule is one small method whose docstring names the fact and the
kernel function it mirrors (``br_handle_frame``, ``br_handle_frame_finish``, ``br_fdb_update``,
``br_flood``...).

The rules are methods so that a deliberately wrong bridge is a three-line subclass::

    class ForgetsHairpin(BridgeModel):
        def hairpin_reflects(self, port: str) -> bool:
            return False

Time is explicit: nothing ages until :meth:`BridgeModel.advance` moves the model's clock.

Scope. The model predicts frames whose payload the bridge does not look into. IPv4, IPv6, ARP and
RARP payloads are parsed by br_netfilter (``bridge-nf-call-*``, on by default in every namespace
here: it drops malformed IP of any destination and trims padding), by multicast snooping (malformed
IP multicast is dropped) and by neighbour suppression; LLC frames to the STP group address are
BPDUs with STP on. :meth:`BridgeModel.deliver` raises :class:`NotModelled` for those rather than
guess; every frame :func:`vlab.strategies.frames` makes by default is inside the scope. Within it,
snooping and the querier change nothing: the bridge has no mdb entry for a non-IP group, so such
multicast always floods like unregistered multicast (facts 18, 27).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Literal, SupportsBytes, TypeAlias

from vlab import options
from vlab.errors import LabError

OptionValue: TypeAlias = bool | int | float | str
"""An option value in the friendly units of the public API (seconds, booleans, MAC strings)."""

Receivers: TypeAlias = set[str]
"""Endpoint names (``set[str]``; named because ``BridgeModel.set`` shadows the builtin there)."""

Traffic: TypeAlias = Literal["unicast", "multicast", "broadcast"]
"""The three ways ``br_handle_frame_finish`` classifies a destination (``br_pkt_type``)."""

BROADCAST = "ff:ff:ff:ff:ff:ff"
STP_GROUP = "01:80:c2:00:00:00"
PAUSE = "01:80:c2:00:00:01"
LINK_LOCAL = tuple(f"01:80:c2:00:00:{i:02x}" for i in range(16))
"""01:80:C2:00:00:00..0F, the addresses ``is_link_local_ether_addr`` matches."""

PORT_STATES = tuple(options.PORT_STATES)  # disabled, listening, learning, forwarding, blocking
VLAN_TPIDS = (0x8100, 0x88A8)
"""Tags ``skb_vlan_untag`` moves into skb metadata before the bridge sees the frame."""
PARSED_ETHERTYPES = (0x0800, 0x86DD, 0x0806, 0x8035)
"""IPv4, IPv6, ARP, RARP: payloads the bridge (or br_netfilter) inspects; outside the model."""
EGRESS_SLACK = 18
"""``is_skb_forwardable`` accepts skb->len <= MTU + Ethernet header + one VLAN tag (fact 21)."""

_U32 = 2**32 - 1


class NotModelled(LabError):
    """The model cannot predict this frame or setting; the message says what is out of scope."""


# --- addresses ------------------------------------------------------------------------------


normalize_mac = options.normalize_mac
"""Lower-case colon form (the fdb's spelling): the lab's own :func:`vlab.options.normalize_mac`."""


def is_multicast(mac: str) -> bool:
    """The group bit (I/G) of the first octet; broadcast is multicast too."""
    return bool(int(mac[:2], 16) & 1)


def is_link_local(mac: str) -> bool:
    """Whether ``mac`` is in the reserved 01:80:c2:00:00:0X group (facts 7-9)."""
    return mac in LINK_LOCAL


def is_valid_source(mac: str) -> bool:
    """``is_valid_ether_addr``: neither multicast (so not broadcast) nor all-zero."""
    return not is_multicast(mac) and mac != "00:00:00:00:00:00"


def classify(dst: str) -> Traffic:
    """Whether a destination MAC is broadcast, multicast or unicast traffic."""
    if dst == BROADCAST:
        return "broadcast"
    return "multicast" if is_multicast(dst) else "unicast"


def _mac_str(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


# --- frames ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedFrame:
    """A frame as the bridge sees it: the first 802.1Q/802.1ad tag already moved to metadata."""

    dst: str
    src: str
    ethertype: int
    """``skb->protocol``: the type after the tag; values below 0x0600 are 802.3 lengths (LLC)."""
    payload: bytes
    tagged: bool

    @property
    def skb_len(self) -> int:
        """The length the egress MTU check sees: Ethernet header + payload, without the tag."""
        return 14 + len(self.payload)

    @classmethod
    def parse(cls, data: bytes) -> ParsedFrame:
        """The fields of raw frame bytes the model decides on; under 14 bytes is a LabError."""
        if len(data) < 14:
            raise LabError(f"a {len(data)}-byte frame has no Ethernet header (14 bytes minimum)")
        ethertype = int.from_bytes(data[12:14], "big")
        tagged = ethertype in VLAN_TPIDS and len(data) >= 18
        if tagged:
            ethertype = int.from_bytes(data[16:18], "big")
        return cls(
            dst=_mac_str(data[0:6]),
            src=_mac_str(data[6:12]),
            ethertype=ethertype,
            payload=data[18:] if tagged else data[14:],
            tagged=tagged,
        )


def is_runt_tagged(data: bytes) -> bool:
    """``skb_vlan_untag`` needs 6 bytes after the Ethernet header, so a tagged frame shorter than
    20 bytes is dropped before the bridge sees it (measured: 19 bytes dropped, 20 forwarded)."""
    return int.from_bytes(data[12:14], "big") in VLAN_TPIDS and len(data) < 20


# --- options --------------------------------------------------------------------------------


OptionKind: TypeAlias = Literal["bool", "int", "seconds", "mac", "state", "tpid"]


@dataclass(frozen=True)
class _Opt:
    kind: OptionKind
    default: OptionValue | None
    lo: float = 0
    hi: float = _U32
    rule: Callable[[OptionValue], str | None] | None = None


def _off_only(what: str) -> Callable[[OptionValue], str | None]:
    def rule(value: OptionValue) -> str | None:
        if value:
            return f"BridgeModel does not model it ({what}); leave it off in model-checked labs"
        return None

    return rule


NOT_MODELLED_BRIDGE = {
    "vlan_filtering": "VLAN-aware forwarding",  # vlab.reference.vlan models it
    "multicast_vlan_snooping": "per-VLAN snooping",
}
"""Bridge options the model accepts only at their default (it does not model their effect)."""

NOT_MODELLED_PORT = {
    "neigh_suppress": "it answers ARP/ND from br0's table",
    "proxy_arp_wifi": "it acts on ARP replies",
}
"""Port options the model accepts only at their default."""


def _derive(option: options.Option, not_modelled: str | None) -> _Opt:
    """The model's view of one option of the lab's table (:mod:`vlab.options`): its kind,
    range, kernel rule and default, plus the model's own refusal of what it does not model."""
    kernel_rule, off = option.check, _off_only(not_modelled) if not_modelled else None

    def rule(value: OptionValue) -> str | None:
        if kernel_rule is not None and isinstance(value, int | str) and not isinstance(value, bool):
            problem = kernel_rule(value)
            if problem:
                return f"{problem} (EINVAL)"
        return off(value) if off is not None else None

    kind: OptionKind = option.kind  # type: ignore[assignment]
    return _Opt(kind, option.default, option.lo, option.hi, rule)


BRIDGE_OPTIONS: dict[str, _Opt] = {
    name: _derive(o, NOT_MODELLED_BRIDGE.get(name)) for name, o in options.BRIDGE_OPTIONS.items()
}
"""Bridge options in the public API's names and units, with the kernel's defaults: derived
from the lab's own table, :data:`vlab.options.BRIDGE_OPTIONS`."""

PORT_OPTIONS: dict[str, _Opt] = {
    name: _derive(o, NOT_MODELLED_PORT.get(name)) for name, o in options.PORT_OPTIONS.items()
}
"""Port options (from :data:`vlab.options.PORT_OPTIONS`); ``cost`` defaults to None because
the kernel derives it from the link speed."""


def _unknown(kind: str, name: str, table: Mapping[str, _Opt]) -> LabError:
    close = difflib.get_close_matches(name, table, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return LabError(f"unknown {kind} option {name!r}: {hint}valid options: {', '.join(table)}")


def _normalize(kind: str, table: Mapping[str, _Opt], name: str, value: object) -> OptionValue:
    opt = table.get(name)
    if opt is None:
        raise _unknown(kind, name, table)
    out: OptionValue
    if opt.kind == "bool":
        if not isinstance(value, bool) and value not in (0, 1):
            raise LabError(f"option {name}={value!r}: expected true or false")
        out = bool(value)
    elif opt.kind == "mac":
        out = normalize_mac(value, f"option {name}")
    elif opt.kind == "tpid":
        if value not in ("802.1Q", "802.1ad"):
            raise LabError(f"option {name}={value!r}: expected '802.1Q' or '802.1ad'")
        out = str(value)
    elif opt.kind == "state":
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 5:
            value = PORT_STATES[value]
        if not isinstance(value, str) or value.lower() not in PORT_STATES:
            raise LabError(f"option state={value!r}: expected one of {', '.join(PORT_STATES)}")
        out = value.lower()
    else:
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise LabError(f"option {name}={value!r}: expected a number")
        if not opt.lo <= value <= opt.hi:
            raise LabError(f"option {name}={value!r} is out of range {opt.lo:g}..{opt.hi:g}")
        if opt.kind == "int" and value != int(value):
            raise LabError(f"option {name}={value!r}: expected an integer")
        out = float(value) if opt.kind == "seconds" else int(value)
    problem = opt.rule(out) if opt.rule else None
    if problem:
        raise LabError(f"option {name}={value!r}: {problem}")
    return out


PORT_FLAGS = frozenset(
    {"hairpin", "bpdu_guard", "fast_leave", "root_block", "learning", "flood", "mcast_flood",
     "mcast_to_unicast", "bcast_flood", "proxy_arp", "proxy_arp_wifi", "isolated", "locked",
     "mab", "neigh_suppress"}
)  # fmt: skip
"""Port options ``br_setport`` applies first, all together, before any other attribute."""


# --- the forwarding database ----------------------------------------------------------------


@dataclass(frozen=True)
class LearnedEntry:
    """One non-local fdb entry (a ``net_bridge_fdb_entry`` without the kernel's bookkeeping)."""

    port: str
    updated: float
    """Model time of the last frame from this MAC (or of its creation): ageing counts from here."""
    static: bool = False
    sticky: bool = False
    user: bool = False
    """Added with :meth:`BridgeModel.fdb_add` (``BR_FDB_ADDED_BY_USER``)."""
    learned: bool = False
    """Counts against ``fdb_max_learned`` (``BR_FDB_DYNAMIC_LEARNED``)."""
    locked: bool = False
    """Created by MAB on a locked port: forwards to the port, but does not authorise it."""


@dataclass
class _Port:
    mac: str
    options: dict[str, OptionValue]
    carrier: bool = True
    stp_since: float | None = None
    """When STP started walking this port listening -> learning -> forwarding."""

    def flag(self, name: str) -> bool:
        return bool(self.options[name])

    @property
    def group_fwd_mask(self) -> int:
        return int(self.options["group_fwd_mask"])


# --- the model ------------------------------------------------------------------------------


class BridgeModel:
    """The bridge's forwarding decision and fdb, from pure data.

    ``ports`` maps each endpoint's name to the MAC of *its bridge port* (the tap's or the
    bridge-side veth's own address, not the endpoint's). Frames to those MACs or to the bridge's
    MAC go up the stack; frames from them are forwarded without being learnt (facts 15, 16).

    The model starts from a bridge whose ports are all forwarding, as a lab is once its links are
    up. With STP on that holds for ports that were forwarding when STP was switched on (fact 10);
    only ports whose carrier comes back under STP walk listening -> learning -> forwarding.
    Not modelled: topology-change ageing (fact 12's forward_delay hold time), BPDUs the bridge
    sends (fact 10), snooping state (facts 27-29) and neighbour suppression (fact 30).
    """

    port_mtu: int = 1500
    """MTU of every port link; frames longer than ``port_mtu + 18`` are dropped at egress."""

    def __init__(
        self, bridge_mac: str, ports: Mapping[str, str], **bridge_options: OptionValue
    ) -> None:
        self._now = 0.0
        self._bridge_mac = self._unicast(bridge_mac, "bridge_mac")
        self._ports: dict[str, _Port] = {}
        for name, mac in ports.items():
            self._ports[name] = _Port(
                mac=self._unicast(mac, f"port MAC of {name!r}"),
                options={k: o.default for k, o in PORT_OPTIONS.items() if o.default is not None},
            )
        self._options: dict[str, OptionValue] = {
            k: o.default for k, o in BRIDGE_OPTIONS.items() if o.default is not None
        }
        self._options["mac"] = self._bridge_mac
        self._fdb: dict[str, LearnedEntry] = {}
        self.set(**bridge_options)

    # --- configuration --------------------------------------------------------------------

    def set(self, **bridge_options: OptionValue) -> None:
        """Change bridge options (all validated first, so a bad one changes nothing).

        Lowering ``ageing_time`` ages at once (``br_set_ageing_time`` kicks the gc), so
        ``ageing_time=0`` empties the dynamic fdb. Switching STP on leaves forwarding ports
        forwarding (fact 10).
        """
        new = dict(self._options)
        for name, value in bridge_options.items():
            new[name] = _normalize("bridge", BRIDGE_OPTIONS, name, value)
        if new["mac"] != self._bridge_mac:
            self._unicast(str(new["mac"]), "option mac")
        self._options = new
        self._bridge_mac = str(new["mac"])
        self._age()

    def set_port(self, name: str, **port_options: OptionValue) -> None:
        """Change a port's options in ``br_setport``'s order, which is not atomic.

        The flags (learning, flood..., hairpin, isolated, locked, mab) are applied together
        first; ``mab`` needs ``locked`` and ``learning`` in the result (EINVAL, nothing changed,
        fact 24), and switching MAB off flushes the port's locked entries. Then ``state``: refused
        while STP runs (EBUSY, fact 10) and, other than "disabled", without carrier (ENETDOWN),
        "blocking" becoming "forwarding" at once with STP off (fact 11). A refused state leaves
        the flags applied and the later attributes (``group_fwd_mask``) not, as the kernel does
        (measured: ``isolated=True`` sticks when the state in the same message is refused for
        lack of carrier). Values themselves are checked first: vlab refuses a port mask with bit
        1 before sending it, although the kernel would only check it after the state.
        """
        port = self._port(name)
        values = {k: _normalize("port", PORT_OPTIONS, k, v) for k, v in port_options.items()}
        staged = dict(port.options)
        staged.update((k, v) for k, v in values.items() if k in PORT_FLAGS)
        if staged["mab"] and not (staged["locked"] and staged["learning"]):
            raise LabError(
                f"port {name}: mab needs locked=True and learning=True (the kernel says EINVAL)"
            )
        if port.options["mab"] and not staged["mab"]:
            self._drop_entries(lambda m, e: e.port == name and e.locked)
        port.options = staged
        for key in ("cost", "priority"):
            if key in values:
                port.options[key] = values[key]
        if "state" in values:
            state = values["state"]
            if self._options["stp"]:
                raise LabError(f"port {name}: state cannot be set while STP runs (EBUSY)")
            if not port.carrier and state != "disabled":
                raise LabError(f"port {name}: no carrier, only state='disabled' is allowed")
            port.options["state"] = "forwarding" if state == "blocking" else state
            port.stp_since = None
        port.options.update(
            (k, v) for k, v in values.items() if k not in PORT_FLAGS and k != "state"
        )

    def set_carrier(self, name: str, up: bool) -> None:
        """Link carrier of a port (fact 26, ``br_port_carrier_check``).

        Down: the port is disabled and its non-static entries go (``br_stp_disable_port``) —
        unless the port was already disabled by hand, which the kernel leaves alone, entries
        and all (measured). Up: forwarding at once with STP off, whatever state was set by hand;
        with STP on it starts listening and forwards after 2 x forward_delay of model time.
        """
        port = self._port(name)
        if up == port.carrier:
            return
        was_disabled = self.port_state(name) == "disabled"
        port.carrier = up
        if not up:
            if not was_disabled:
                self._drop_entries(lambda m, e: e.port == name and not e.static)
            return
        port.options["state"] = "forwarding"
        port.stp_since = self._now if self._options["stp"] else None

    def fdb_add(self, mac: str, port_name: str, static: bool = True, sticky: bool = False) -> None:
        """Add or replace a user entry (``bridge fdb replace ... master [static] [sticky]``).

        A user entry stops counting against ``fdb_max_learned`` and loses any MAB lock. A dynamic
        one (``static=False``) ages like a learnt entry and needs the port learning or forwarding
        (EPERM otherwise).
        """
        mac = self._unicast(mac, "fdb_add MAC")
        self._port(port_name)
        if self.is_local(mac):
            raise LabError(f"{mac} is the bridge's or a port's own address (a local entry)")
        if not static and self.port_state(port_name) not in ("learning", "forwarding"):
            raise LabError(f"port {port_name} is not learning: the kernel refuses dynamic entries")
        self._fdb[mac] = LearnedEntry(
            port=port_name, updated=self._now, static=static, sticky=sticky, user=True
        )

    def fdb_del(self, mac: str) -> None:
        """Delete the entry for ``mac``; a missing one is a LabError, as the kernel's ENOENT."""
        mac = normalize_mac(mac)
        if mac not in self._fdb:
            raise LabError(f"no fdb entry for {mac} (the kernel says ENOENT)")
        del self._fdb[mac]

    def fdb_flush(self) -> None:
        """``IFLA_BR_FDB_FLUSH``: every non-static entry goes (learnt, user dynamic, locked)."""
        self._drop_entries(lambda m, e: not e.static)

    def advance(self, seconds: float) -> None:
        """Move the model clock; entries not refreshed for ``ageing_time`` disappear (fact 12)."""
        if not math.isfinite(seconds) or seconds < 0:
            raise LabError(f"advance({seconds!r}): time only moves forward by a finite amount")
        self._now += seconds
        self._age()

    # --- observation ----------------------------------------------------------------------

    @property
    def now(self) -> float:
        """The model's clock in seconds (moved by :meth:`advance`), which ageing is measured on."""
        return self._now

    @property
    def bridge_mac(self) -> str:
        """The bridge device's own MAC (frames to it are delivered locally, fact 15)."""
        return self._bridge_mac

    @property
    def ports(self) -> tuple[str, ...]:
        """The model's port names, in the order they were added."""
        return tuple(self._ports)

    def option(self, name: str) -> OptionValue:
        """The current value of bridge option ``name``."""
        if name not in BRIDGE_OPTIONS:
            raise _unknown("bridge", name, BRIDGE_OPTIONS)
        return self._options[name]

    def port_option(self, port: str, name: str) -> OptionValue | None:
        """The current value of port option ``name`` on ``port``, None if never set."""
        if name not in PORT_OPTIONS:
            raise _unknown("port", name, PORT_OPTIONS)
        return self._port(port).options.get(name)

    def port_mac(self, port: str) -> str:
        """The MAC of ``port`` itself (not of what is behind it)."""
        return self._port(port).mac

    def port_state(self, name: str) -> str:
        """The state ``br_handle_frame`` sees: disabled without carrier, else STP's or the user's
        choice."""
        port = self._port(name)
        if not port.carrier:
            return "disabled"
        if port.stp_since is not None:
            elapsed = self._now - port.stp_since
            delay = float(self._options["forward_delay"])
            if elapsed < delay:
                return "listening"
            if elapsed < 2 * delay:
                return "learning"
        return str(port.options["state"])

    def fdb(self) -> dict[str, str]:
        """MAC -> endpoint name for every non-local entry (learnt, static, sticky, MAB-locked)."""
        return {mac: e.port for mac, e in self._fdb.items()}

    def entries(self) -> dict[str, LearnedEntry]:
        """A copy of the model's fdb, keyed by MAC."""
        return dict(self._fdb)

    def __repr__(self) -> str:
        fdb = ", ".join(f"{m}->{e.port}" for m, e in self._fdb.items())
        return f"<BridgeModel t={self._now:g}s ports={list(self._ports)} fdb={{{fdb}}}>"

    # --- the frame path -------------------------------------------------------------------

    def deliver(self, ingress: str, frame: bytes | SupportsBytes) -> Receivers:
        """Endpoints that receive ``frame`` sent by ``ingress``; updates the fdb on the way.

        Follows ``__netif_receive_skb_core`` (untag), ``br_handle_frame`` (source check,
        link-local), ``br_handle_frame_finish`` (state, lock, learning, destination) and
        ``br_forward``/``br_flood``. Each receiver gets the frame unchanged, tag included
        (fact 20). Raises :class:`NotModelled` for payloads the bridge parses (module docstring).
        """
        self._port(ingress)
        data = bytes(frame)
        if len(data) >= 14 and is_runt_tagged(data):
            return set()
        f = ParsedFrame.parse(data)
        if not self.source_valid(f.src):
            return set()
        if self.parsed_by_bridge(f):
            raise NotModelled(
                f"ethertype {f.ethertype:#06x} to {f.dst}: the bridge parses this payload "
                "(br_netfilter, multicast snooping, STP or neighbour suppression) and "
                "BridgeModel does not; use vlab.strategies.ethertypes() for modelled frames"
            )
        if is_link_local(f.dst) and not self.link_local_forwarded(ingress, f.dst):
            if self.link_local_learns(ingress, f.dst):
                self._fdb_update(ingress, f.src)
            return set()
        state = self.port_state(ingress)
        if state not in ("learning", "forwarding"):
            return set()
        if not self.locked_port_admits(ingress, f.src):
            if self.mab_records(ingress, f.src):
                self._fdb_update(ingress, f.src, locked=True)
            return set()
        if self._port(ingress).flag("learning"):
            self._fdb_update(ingress, f.src)
        if state == "learning":
            return set()
        if not self.fits_mtu(f):
            return set()
        return self.forward_targets(ingress, f.dst)

    def forward_targets(self, ingress: str, dst: str) -> Receivers:
        """Known unicast to its port, local addresses up the stack, the rest flooded (facts 2,
        3, 15). A known port that may not receive drops the frame: it is not flooded instead."""
        kind = classify(dst)
        if kind != "unicast":
            return self.flood(ingress, kind)
        if self.is_local(dst):
            return set()
        entry = self._fdb.get(dst)
        if entry is None:
            return self.flood(ingress, "unicast")
        return {entry.port} if self.should_deliver(ingress, entry.port) else set()

    def flood(self, ingress: str, kind: Traffic) -> Receivers:
        """``br_flood``: every port that takes this kind of flood and may receive from ingress."""
        return {
            p for p in self._ports if self.floods_to(p, kind) and self.should_deliver(ingress, p)
        }

    # --- rules: one per fact; override in a subclass to build a wrong bridge ----------------

    def source_valid(self, src: str) -> bool:
        """Fact 6: multicast, broadcast and all-zero sources are dropped before learning
        (``br_handle_frame``: ``is_valid_ether_addr``)."""
        return is_valid_source(src)

    def parsed_by_bridge(self, frame: ParsedFrame) -> bool:
        """Frames whose payload decides their fate, which this model does not predict."""
        if frame.ethertype in PARSED_ETHERTYPES:
            return True
        return frame.ethertype < 0x0600 and is_link_local(frame.dst) and bool(self._options["stp"])

    def link_local_forwarded(self, ingress: str, dst: str) -> bool:
        """Facts 7, 8, 10 (``br_handle_frame``'s switch on ``dest[5]``).

        :00 forwards while STP is off, or with bit 0 of the ingress port's mask; :01 (pause)
        never; any other group when its bit is in the port mask OR the bridge mask. The kernel's
        ``group_fwd_mask_required`` is 0 on a bridge without VLAN filtering.
        """
        group = int(dst[-2:], 16)
        port_mask = self._port(ingress).group_fwd_mask
        if group == 0:
            return not self._options["stp"] or bool(port_mask & 1)
        if group == 1:
            return False
        return bool((port_mask | int(self._options["group_fwd_mask"])) & (1 << group))

    def link_local_learns(self, ingress: str, dst: str) -> bool:
        """Fact 7 (``__br_handle_local_finish``): a link-local frame the bridge keeps still
        teaches its source if the port learns, is learning/forwarding and no_linklocal_learn is
        off — except pause, which ``br_handle_frame`` drops before that (measured). The port lock
        is not consulted: the locked-port bypass of bridge bug 1. A *forwarded* link-local frame
        learns through the normal path, no_linklocal_learn or not (measured).
        """
        return (
            dst != PAUSE
            and self._port(ingress).flag("learning")
            and self.port_state(ingress) in ("learning", "forwarding")
            and not self._options["no_linklocal_learn"]
        )

    def locked_port_admits(self, ingress: str, src: str) -> bool:
        """Fact 23 (``br_handle_frame_finish``, BR_PORT_LOCKED): only a source with an unlocked,
        non-local entry on this very port gets in; nothing roams into a locked port."""
        if not self._port(ingress).flag("locked"):
            return True
        entry = self._fdb.get(src)
        return (
            not self.is_local(src)
            and entry is not None
            and entry.port == ingress
            and not entry.locked
        )

    def mab_records(self, ingress: str, src: str) -> bool:
        """Fact 24: a source a locked port refused becomes (or refreshes) a locked entry when it
        is unknown and MAB is on, or already locked on this port."""
        if self.is_local(src):
            return False
        entry = self._fdb.get(src)
        if entry is None:
            return self._port(ingress).flag("mab")
        return entry.port == ingress and entry.locked

    def learning_enabled(self) -> bool:
        """Fact 13: ``br_fdb_update`` returns at once when ``hold_time`` is 0, i.e. with
        ageing_time 0 nothing is learnt, refreshed, moved or MAB-recorded."""
        return float(self._options["ageing_time"]) > 0

    def entry_roams(self, entry: LearnedEntry, port: str) -> bool:
        """Facts 5, 14: a frame from another port moves any entry (static included, staying
        static) except a sticky one."""
        return entry.port != port and not entry.sticky

    def learned_limit_reached(self) -> bool:
        """Fact 25 (``fdb_create``): with fdb_max_learned=N, an (N+1)th learnt MAC gets no
        entry; user and local entries do not count."""
        limit = int(self._options["fdb_max_learned"])
        return limit > 0 and sum(e.learned for e in self._fdb.values()) >= limit

    def is_local(self, mac: str) -> bool:
        """Fact 15: the bridge's MAC and every port's MAC are local entries."""
        return mac == self._bridge_mac or any(p.mac == mac for p in self._ports.values())

    def floods_to(self, port: str, kind: Traffic) -> bool:
        """Fact 18 (``br_flood``): flood / mcast_flood / bcast_flood per kind; proxy_arp ports
        take no flood at all (measured). Known unicast ignores these flags."""
        flag = {"unicast": "flood", "multicast": "mcast_flood", "broadcast": "bcast_flood"}[kind]
        p = self._port(port)
        return p.flag(flag) and not p.flag("proxy_arp")

    def should_deliver(self, ingress: str, egress: str) -> bool:
        """``should_deliver`` in br_forward.c: never back out of the ingress port unless it
        reflects (facts 2, 4), only to forwarding ports (fact 11), not between isolated ports
        (fact 22)."""
        if egress == ingress and not self.hairpin_reflects(ingress):
            return False
        if self.port_state(egress) != "forwarding":
            return False
        return not self.isolated_blocks(ingress, egress)

    def hairpin_reflects(self, port: str) -> bool:
        """Fact 4: hairpin mode sends frames back out of their ingress port — known unicast,
        broadcast, and (measured) flooded unknown unicast and multicast alike."""
        return self._port(port).flag("hairpin")

    def isolated_blocks(self, ingress: str, egress: str) -> bool:
        """Fact 22 (``br_skb_isolated``): isolated -> isolated is blocked, which also stops a
        hairpin reflection on an isolated port (fact 4)."""
        return self._port(ingress).flag("isolated") and self._port(egress).flag("isolated")

    def fits_mtu(self, frame: ParsedFrame) -> bool:
        """Fact 21 (``is_skb_forwardable`` at egress): skb->len, tag excluded, <= MTU + 18."""
        return frame.skb_len <= self.port_mtu + EGRESS_SLACK

    # --- internals ------------------------------------------------------------------------

    def _fdb_update(self, port: str, mac: str, *, locked: bool = False) -> None:
        """``br_fdb_update``: create (fact 1), refresh, or move (fact 5) the source's entry."""
        if not self.learning_enabled() or self.is_local(mac):  # facts 13, 16
            return
        entry = self._fdb.get(mac)
        if entry is None:
            if not self.learned_limit_reached():
                self._fdb[mac] = LearnedEntry(
                    port=port, updated=self._now, learned=True, locked=locked
                )
            return
        if self.entry_roams(entry, port):
            entry = replace(entry, port=port, locked=False)
        self._fdb[mac] = replace(entry, updated=self._now)

    def _age(self) -> None:
        """``br_fdb_cleanup``: non-static entries older than ageing_time go (0 = all of them)."""
        ageing = float(self._options["ageing_time"])
        self._drop_entries(lambda m, e: not e.static and self._now - e.updated >= ageing)

    def _drop_entries(self, doomed: Callable[[str, LearnedEntry], bool]) -> None:
        for mac in [m for m, e in self._fdb.items() if doomed(m, e)]:
            del self._fdb[mac]

    def _port(self, name: str) -> _Port:
        port = self._ports.get(name)
        if port is None:
            raise LabError(f"no port for endpoint {name!r}; the model has {', '.join(self._ports)}")
        return port

    @staticmethod
    def _unicast(value: object, what: str) -> str:
        mac = normalize_mac(value, what)
        if not is_valid_source(mac):
            raise LabError(f"{what} {mac} must be a unicast, non-zero MAC")
        return mac
