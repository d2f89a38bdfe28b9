"""Bridge and bridge-port options: friendly names and units, validated before the kernel sees them.

pyroute2 silently drops keywords it does not know, and the kernel answers some bad values with a
bare ``EINVAL``; both would leave a user staring at a test that "passes" on a bridge configured
differently from what they wrote. Every option therefore goes through one table that knows its
netlink attribute, its unit and the values the kernel accepts, and answers a mistake with a
:class:`~vlab.errors.LabError` naming the valid choices.
"""

from __future__ import annotations

import difflib
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vlab.errors import LabError
from vlab.rtnl import nla

_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")

PORT_STATES = {"disabled": 0, "listening": 1, "learning": 2, "forwarding": 3, "blocking": 4}
PORT_STATE_NAMES = {v: k for k, v in PORT_STATES.items()}


def normalize_mac(value: object, what: str = "MAC address") -> str:
    """Canonical lower-case colon form; accepts ``-`` separators and upper case."""
    if isinstance(value, str):
        mac = value.strip().lower().replace("-", ":")
        if _MAC_RE.match(mac):
            return mac
    raise LabError(f"{what} {value!r} is not a MAC address; write it as 52:54:00:12:34:56")


@dataclass(frozen=True)
class Option:
    """One option: where it lives in netlink and how a friendly value becomes a kernel value.

    This is the one table of options: the lab's validation and encoding, the reference model
    (:mod:`vlab.reference.bridge`: kinds, ranges, kernel rules, defaults), the scenario
    vocabulary (:mod:`vlab.scenario.vocabulary`) and the hypothesis strategies
    (:mod:`vlab.strategies`) all read it.
    """

    name: str
    attr: int  # IFLA_BR_* / IFLA_BRPORT_* number; -1 for a link attribute (mac, mtu)
    fmt: str  # struct format of the attribute ("B", "H", "I", "Q"), "mac" or "boolopt"
    kind: str  # "bool" | "int" | "seconds" | "mac" | "state" | "tpid"
    lo: float = 0
    hi: float = 2**32 - 1
    check: Callable[[Any], str | None] | None = None  # extra kernel rule -> error text
    doc: str = ""
    default: Any = None  # the kernel's default, friendly units; None: none (derived, per link)

    def encode(self, value: Any) -> Any:
        """The kernel value of a friendly one, or a LabError naming the range or choices."""
        if self.kind == "bool":
            if not isinstance(value, bool) and value not in (0, 1):
                raise LabError(f"option {self.name}={value!r}: expected true or false")
            return int(bool(value))
        if self.kind == "mac":
            mac = normalize_mac(value, f"option {self.name}")
            problem = self.check(mac) if self.check is not None else None
            if problem:
                raise LabError(f"option {self.name}={value!r}: {problem}")
            return mac
        if self.kind == "tpid":
            return _tpid(value)
        if self.kind == "state":
            if isinstance(value, str) and value.lower() in PORT_STATES:
                return PORT_STATES[value.lower()]
            if isinstance(value, int) and not isinstance(value, bool) and value in PORT_STATE_NAMES:
                return value
            raise LabError(
                f"option state={value!r}: expected one of {', '.join(PORT_STATES)} (or 0-4)"
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise LabError(f"option {self.name}={value!r}: expected a number ({self.doc})")
        if not self.lo <= value <= self.hi:
            raise LabError(
                f"option {self.name}={value!r} is out of range: allowed {self.lo:g}..{self.hi:g}"
                f" ({self.doc})"
            )
        if self.kind == "seconds":
            centis = round(value * 100)  # the kernel speaks centiseconds (clock_t)
            if value and not centis:  # would silently become 0, which means something else
                raise LabError(
                    f"option {self.name}={value!r}: the kernel counts in hundredths of a second; "
                    "use 0 or at least 0.01"
                )
            return centis
        if value != int(value):
            raise LabError(f"option {self.name}={value!r}: expected an integer ({self.doc})")
        raw = int(value)
        if self.check is not None:
            problem = self.check(raw)
            if problem:
                raise LabError(f"option {self.name}={value!r}: {problem}")
        return raw

    def decode(self, raw: Any) -> Any:
        """The friendly value of a raw kernel value (centiseconds to seconds, ints to bools...)."""
        if self.kind == "bool":
            return bool(raw)
        if self.kind == "seconds":
            return raw / 100
        if self.kind == "state":
            return PORT_STATE_NAMES.get(raw, raw)
        if self.kind == "tpid":
            return next((n for n, t in VLAN_PROTOCOLS.items() if t == raw), raw)
        return raw


VLAN_PROTOCOLS = {"802.1Q": 0x8100, "802.1ad": 0x88A8}
"""``vlan_protocol``: the tag a VLAN-aware bridge filters on (802.1ad: a provider bridge)."""


def _tpid(value: Any) -> int:
    if isinstance(value, str):
        for name, tpid in VLAN_PROTOCOLS.items():
            if value.lower() == name.lower():
                return tpid
    if isinstance(value, int) and not isinstance(value, bool) and value in VLAN_PROTOCOLS.values():
        return value
    raise LabError(
        f"option vlan_protocol={value!r}: choose '802.1Q' (tag 0x8100, the default) or "
        "'802.1ad' (0x88a8, a provider bridge)"
    )


def bridge_mask_rule(mask: int) -> str | None:
    """The bridge group_fwd_mask bits the kernel refuses (fact 8)."""
    if mask & 0x7:
        return (
            "the kernel refuses bits 0-2 of the bridge group_fwd_mask (STP, pause, LACP); "
            "use a port's group_fwd_mask for LACP (bit 2)"
        )
    return None


def port_mask_rule(mask: int) -> str | None:
    """The port group_fwd_mask bit the kernel refuses (fact 8)."""
    if mask & 0x2:
        return "the kernel refuses bit 1 (pause frames, 01:80:c2:00:00:01) in a port mask"
    return None


def group_address_rule(mac: str) -> str | None:
    """The STP group addresses the kernel accepts (``br_group_address``: a link-local
    01:80:c2:00:00:0X address other than X = 1, 2, 3; fact 9)."""
    last = mac[-2:]
    if not mac.startswith("01:80:c2:00:00:0") or last in ("01", "02", "03"):
        return "only 01:80:c2:00:00:00 and 01:80:c2:00:00:04..0f are accepted by the kernel"
    return None


IFLA_BR_MULTI_BOOLOPT = 46
IFLA_BR_FDB_N_LEARNED = 48
IFLA_BR_FDB_MAX_LEARNED = 49
BOOLOPT_NO_LINKLOCAL_LEARN = 1 << 0
BOOLOPT_BITS = {"no_linklocal_learn": BOOLOPT_NO_LINKLOCAL_LEARN, "multicast_vlan_snooping": 1 << 1}
"""Bridge options carried as bits of IFLA_BR_MULTI_BOOLOPT (one attribute for all of them)."""

_U16 = 0xFFFF
_U32 = 2**32 - 1
_CS_MAX = _U32 / 100

BRIDGE_OPTIONS: dict[str, Option] = {
    o.name: o
    for o in (
        Option(
            "ageing_time",
            4,
            "I",
            "seconds",
            0,
            _CS_MAX,
            doc="seconds; 0 turns learning off",
            default=300.0,
        ),
        Option("stp", 5, "I", "bool", doc="kernel STP", default=False),
        Option("forward_delay", 1, "I", "seconds", 2, 30, doc="seconds, 2-30", default=15.0),
        Option("hello_time", 2, "I", "seconds", 1, 10, doc="seconds, 1-10", default=2.0),
        Option("max_age", 3, "I", "seconds", 6, 40, doc="seconds, 6-40", default=20.0),
        Option("priority", 6, "H", "int", 0, _U16, doc="STP bridge priority", default=32768),
        Option(
            "group_fwd_mask",
            9,
            "H",
            "int",
            0,
            _U16,
            check=bridge_mask_rule,
            doc="bitmask of 01:80:c2:00:00:0X groups to forward",
            default=0,
        ),
        Option(
            "group_address",
            20,
            "mac",
            "mac",
            check=group_address_rule,
            doc="STP group address",
            default="01:80:c2:00:00:00",
        ),
        Option("multicast_snooping", 23, "B", "bool", default=True),
        Option("multicast_querier", 25, "B", "bool", default=False),
        Option(
            "multicast_router",
            22,
            "B",
            "int",
            0,
            2,
            doc="0 disabled, 1 learn, 2 always",
            default=1,
        ),
        Option("multicast_query_use_ifaddr", 24, "B", "bool", default=False),
        Option("multicast_last_member_count", 28, "I", "int", 0, _U32, default=2),
        Option("multicast_startup_query_count", 29, "I", "int", 0, _U32, default=2),
        Option(
            "multicast_last_member_interval",
            30,
            "Q",
            "seconds",
            0,
            _CS_MAX,
            doc="seconds",
            default=1.0,
        ),
        Option(
            "multicast_membership_interval",
            31,
            "Q",
            "seconds",
            0,
            _CS_MAX,
            doc="seconds",
            default=260.0,
        ),
        Option(
            "multicast_querier_interval",
            32,
            "Q",
            "seconds",
            0,
            _CS_MAX,
            doc="seconds",
            default=255.0,
        ),
        Option(
            "multicast_query_interval",
            33,
            "Q",
            "seconds",
            1,
            _CS_MAX,
            doc="seconds, >= 1",
            default=125.0,
        ),
        Option(
            "multicast_query_response_interval",
            34,
            "Q",
            "seconds",
            0.01,
            _CS_MAX,
            doc="seconds",
            default=10.0,
        ),
        Option(
            "multicast_startup_query_interval",
            35,
            "Q",
            "seconds",
            1,
            _CS_MAX,
            doc="seconds, >= 1",
            default=31.25,
        ),
        Option("multicast_igmp_version", 43, "B", "int", 2, 3, default=2),
        Option("multicast_mld_version", 44, "B", "int", 1, 2, default=1),
        Option(
            "vlan_filtering",
            7,
            "B",
            "bool",
            doc="802.1Q-aware bridge; needs CONFIG_BRIDGE_VLAN_FILTERING",
            default=False,
        ),
        Option(
            "default_pvid",
            39,
            "H",
            "int",
            0,
            4094,
            doc="VLAN new ports join as PVID, untagged; 0 = none (VLAN-aware bridges)",
            default=1,
        ),
        Option(
            "vlan_protocol",
            8,
            ">H",
            "tpid",
            doc="'802.1Q' or '802.1ad', the tag a VLAN-aware bridge filters on",
            default="802.1Q",
        ),
        Option(
            "multicast_vlan_snooping",
            IFLA_BR_MULTI_BOOLOPT,
            "boolopt",
            "bool",
            doc="a snooping context per VLAN (VLAN-aware bridges)",
            default=False,
        ),
        Option(
            "fdb_max_learned",
            IFLA_BR_FDB_MAX_LEARNED,
            "I",
            "int",
            0,
            _U32,
            doc="cap on dynamically learnt entries, 0 = no limit",
            default=0,
        ),
        Option(
            "no_linklocal_learn",
            IFLA_BR_MULTI_BOOLOPT,
            "boolopt",
            "bool",
            doc="do not learn from 01:80:c2:00:00:0X frames",
            default=False,
        ),
        Option("mac", -1, "mac", "mac", doc="the bridge device's own MAC", default=None),
        Option("mtu", -1, "I", "int", 68, 65535, doc="bytes", default=1500),
    )
}

PORT_OPTIONS: dict[str, Option] = {
    o.name: o
    for o in (
        Option("learning", 8, "B", "bool", default=True),
        Option("flood", 9, "B", "bool", doc="unknown unicast flooding", default=True),
        Option("mcast_flood", 27, "B", "bool", default=True),
        Option("bcast_flood", 30, "B", "bool", default=True),
        Option("isolated", 33, "B", "bool", default=False),
        Option("hairpin", 4, "B", "bool", doc="reflect frames back out of ingress", default=False),
        Option("locked", 39, "B", "bool", doc="802.1X: unknown sources dropped", default=False),
        Option(
            "mab", 40, "B", "bool", doc="MAC authentication bypass; needs locked", default=False
        ),
        Option("neigh_suppress", 32, "B", "bool", default=False),
        Option("proxy_arp", 10, "B", "bool", default=False),
        Option("proxy_arp_wifi", 12, "B", "bool", default=False),
        Option(
            "group_fwd_mask",
            31,
            "H",
            "int",
            0,
            _U16,
            check=port_mask_rule,
            doc="bitmask of 01:80:c2:00:00:0X groups to forward",
            default=0,
        ),
        Option("state", 1, "B", "state", default="forwarding"),
        Option("priority", 2, "H", "int", 0, 63, doc="STP port priority", default=32),
        Option("cost", 3, "I", "int", 1, 65535, doc="STP path cost", default=None),
        Option("bpdu_guard", 5, "B", "bool", default=False),
        Option("root_block", 6, "B", "bool", default=False),
        Option("fast_leave", 7, "B", "bool", default=False),
        Option(
            "multicast_router",
            25,
            "B",
            "int",
            0,
            3,
            doc="0 disabled, 1 learn, 2 permanent, 3 temporary",
            default=1,
        ),
        Option("mcast_to_unicast", 28, "B", "bool", default=False),
        Option("mcast_max_groups", 42, "I", "int", 0, _U32, default=0),
    )
}


def _unknown(kind: str, name: str, table: Mapping[str, Option]) -> LabError:
    close = difflib.get_close_matches(name, table, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return LabError(f"unknown {kind} option {name!r}: {hint}valid options: {', '.join(table)}")


def encode_options(
    kind: str, table: Mapping[str, Option], options: Mapping[str, Any]
) -> dict[str, Any]:
    """Validate every option, then map them to ``{nla_name_or_number: kernel_value}``.

    Validation is complete before anything is sent, so a bad option never half-applies.
    """
    out: dict[str, Any] = {}
    for name, value in options.items():
        opt = table.get(name)
        if opt is None:
            raise _unknown(kind, name, table)
        out[opt.name] = opt.encode(value)
    if kind == "port" and out.get("mab") and out.get("locked") == 0:
        raise LabError(
            "option mab=true needs locked=true (and learning on): the kernel says EINVAL"
        )
    return out


MTU = Option("mtu", -1, "I", "int", 68, 65535, doc="bytes")


def encode_mtu(value: Any, what: str) -> int | None:
    """An endpoint's MTU, checked before any link is made (None keeps the kernel's 1500)."""
    if value is None:
        return None
    try:
        return int(MTU.encode(value))
    except LabError as exc:
        raise LabError(f"{what}: {exc}") from None


def encode_bridge(options: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and encode bridge options (see :func:`encode_options`)."""
    return encode_options("bridge", BRIDGE_OPTIONS, options)


def encode_port(options: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and encode port options (see :func:`encode_options`)."""
    return encode_options("port", PORT_OPTIONS, options)


_FMT = {
    "B": struct.Struct("=B"),
    "H": struct.Struct("=H"),
    "I": struct.Struct("=I"),
    "Q": struct.Struct("=Q"),
    ">H": struct.Struct(">H"),
}


def pack_data(table: Mapping[str, Option], encoded: Mapping[str, Any]) -> bytes:
    """IFLA_INFO_DATA / IFLA_INFO_SLAVE_DATA payload for already-encoded options."""
    out = b""
    bits = mask = 0
    for name, raw in encoded.items():
        opt = table[name]
        if opt.attr < 0:
            continue  # link attributes (mac, mtu) travel outside the bridge data
        if opt.fmt == "boolopt":  # gathered: the kernel reads one MULTI_BOOLOPT per message
            bit = BOOLOPT_BITS[name]
            bits, mask = bits | (bit if raw else 0), mask | bit
            continue
        data = bytes.fromhex(raw.replace(":", "")) if opt.fmt == "mac" else _FMT[opt.fmt].pack(raw)
        out += nla(opt.attr, data)
    if mask:
        out += nla(IFLA_BR_MULTI_BOOLOPT, struct.pack("=II", bits, mask))
    return out


def unpack_data(table: Mapping[str, Option], data: Mapping[int, bytes]) -> dict[str, Any]:
    """Friendly values of every option present in a kernel dump."""
    out: dict[str, Any] = {}
    for opt in table.values():
        value = data.get(opt.attr)
        if opt.attr < 0 or value is None:
            continue
        if opt.fmt == "mac":
            out[opt.name] = ":".join(f"{b:02x}" for b in value[:6])
        elif opt.fmt == "boolopt":
            optval = struct.unpack_from("=I", value)[0]
            out[opt.name] = bool(optval & BOOLOPT_BITS[opt.name])
        else:
            out[opt.name] = opt.decode(_FMT[opt.fmt].unpack_from(value)[0])
    return out
