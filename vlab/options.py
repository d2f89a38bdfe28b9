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
    """One option: where it lives in netlink and how a friendly value becomes a kernel value."""

    name: str
    attr: int  # IFLA_BR_* / IFLA_BRPORT_* number; -1 for a link attribute (mac, mtu)
    fmt: str  # struct format of the attribute ("B", "H", "I", "Q"), "mac" or "boolopt"
    kind: str  # "bool" | "int" | "seconds" | "mac" | "state" | "tpid"
    lo: float = 0
    hi: float = 2**32 - 1
    check: Callable[[int], str | None] | None = None  # extra kernel rule -> error text
    doc: str = ""

    def encode(self, value: Any) -> Any:
        """The kernel value of a friendly one, or a LabError naming the range or choices."""
        if self.kind == "bool":
            if not isinstance(value, bool) and value not in (0, 1):
                raise LabError(f"option {self.name}={value!r}: expected true or false")
            return int(bool(value))
        if self.kind == "mac":
            return normalize_mac(value, f"option {self.name}")
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


def _bridge_mask_rule(mask: int) -> str | None:
    if mask & 0x7:
        return (
            "the kernel refuses bits 0-2 of the bridge group_fwd_mask (STP, pause, LACP); "
            "use a port's group_fwd_mask for LACP (bit 2)"
        )
    return None


def _port_mask_rule(mask: int) -> str | None:
    if mask & 0x2:
        return "the kernel refuses bit 1 (pause frames, 01:80:c2:00:00:01) in a port mask"
    return None


def _group_address_rule(mac: str) -> str | None:
    if not mac.startswith("01:80:c2:00:00:") or mac[-2:] in ("01", "02", "03"):
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
        ),
        Option("stp", 5, "I", "bool", doc="kernel STP"),
        Option("forward_delay", 1, "I", "seconds", 2, 30, doc="seconds, 2-30"),
        Option("hello_time", 2, "I", "seconds", 1, 10, doc="seconds, 1-10"),
        Option("max_age", 3, "I", "seconds", 6, 40, doc="seconds, 6-40"),
        Option("priority", 6, "H", "int", 0, _U16, doc="STP bridge priority"),
        Option(
            "group_fwd_mask",
            9,
            "H",
            "int",
            0,
            _U16,
            check=_bridge_mask_rule,
            doc="bitmask of 01:80:c2:00:00:0X groups to forward",
        ),
        Option("group_address", 20, "mac", "mac", doc="STP group address"),
        Option("multicast_snooping", 23, "B", "bool"),
        Option("multicast_querier", 25, "B", "bool"),
        Option(
            "multicast_router",
            22,
            "B",
            "int",
            0,
            2,
            doc="0 disabled, 1 learn, 2 always",
        ),
        Option("multicast_query_use_ifaddr", 24, "B", "bool"),
        Option("multicast_last_member_count", 28, "I", "int", 0, _U32),
        Option("multicast_startup_query_count", 29, "I", "int", 0, _U32),
        Option(
            "multicast_last_member_interval",
            30,
            "Q",
            "seconds",
            0,
            _CS_MAX,
            doc="seconds",
        ),
        Option(
            "multicast_membership_interval",
            31,
            "Q",
            "seconds",
            0,
            _CS_MAX,
            doc="seconds",
        ),
        Option(
            "multicast_querier_interval",
            32,
            "Q",
            "seconds",
            0,
            _CS_MAX,
            doc="seconds",
        ),
        Option(
            "multicast_query_interval",
            33,
            "Q",
            "seconds",
            1,
            _CS_MAX,
            doc="seconds, >= 1",
        ),
        Option(
            "multicast_query_response_interval",
            34,
            "Q",
            "seconds",
            0.01,
            _CS_MAX,
            doc="seconds",
        ),
        Option(
            "multicast_startup_query_interval",
            35,
            "Q",
            "seconds",
            1,
            _CS_MAX,
            doc="seconds, >= 1",
        ),
        Option("multicast_igmp_version", 43, "B", "int", 2, 3),
        Option("multicast_mld_version", 44, "B", "int", 1, 2),
        Option(
            "vlan_filtering",
            7,
            "B",
            "bool",
            doc="802.1Q-aware bridge; needs CONFIG_BRIDGE_VLAN_FILTERING",
        ),
        Option(
            "default_pvid",
            39,
            "H",
            "int",
            0,
            4094,
            doc="VLAN new ports join as PVID, untagged; 0 = none (VLAN-aware bridges)",
        ),
        Option(
            "vlan_protocol",
            8,
            ">H",
            "tpid",
            doc="'802.1Q' or '802.1ad', the tag a VLAN-aware bridge filters on",
        ),
        Option(
            "multicast_vlan_snooping",
            IFLA_BR_MULTI_BOOLOPT,
            "boolopt",
            "bool",
            doc="a snooping context per VLAN (VLAN-aware bridges)",
        ),
        Option(
            "fdb_max_learned",
            IFLA_BR_FDB_MAX_LEARNED,
            "I",
            "int",
            0,
            _U32,
            doc="cap on dynamically learnt entries, 0 = no limit",
        ),
        Option(
            "no_linklocal_learn",
            IFLA_BR_MULTI_BOOLOPT,
            "boolopt",
            "bool",
            doc="do not learn from 01:80:c2:00:00:0X frames",
        ),
        Option("mac", -1, "mac", "mac", doc="the bridge device's own MAC"),
        Option("mtu", -1, "I", "int", 68, 65535, doc="bytes"),
    )
}

PORT_OPTIONS: dict[str, Option] = {
    o.name: o
    for o in (
        Option("learning", 8, "B", "bool"),
        Option("flood", 9, "B", "bool", doc="unknown unicast flooding"),
        Option("mcast_flood", 27, "B", "bool"),
        Option("bcast_flood", 30, "B", "bool"),
        Option("isolated", 33, "B", "bool"),
        Option("hairpin", 4, "B", "bool", doc="reflect frames back out of ingress"),
        Option("locked", 39, "B", "bool", doc="802.1X: unknown sources dropped"),
        Option("mab", 40, "B", "bool", doc="MAC authentication bypass; needs locked"),
        Option("neigh_suppress", 32, "B", "bool"),
        Option("proxy_arp", 10, "B", "bool"),
        Option("proxy_arp_wifi", 12, "B", "bool"),
        Option(
            "group_fwd_mask",
            31,
            "H",
            "int",
            0,
            _U16,
            check=_port_mask_rule,
            doc="bitmask of 01:80:c2:00:00:0X groups to forward",
        ),
        Option("state", 1, "B", "state"),
        Option("priority", 2, "H", "int", 0, 63, doc="STP port priority"),
        Option("cost", 3, "I", "int", 1, 65535, doc="STP path cost"),
        Option("bpdu_guard", 5, "B", "bool"),
        Option("root_block", 6, "B", "bool"),
        Option("fast_leave", 7, "B", "bool"),
        Option(
            "multicast_router",
            25,
            "B",
            "int",
            0,
            3,
            doc="0 disabled, 1 learn, 2 permanent, 3 temporary",
        ),
        Option("mcast_to_unicast", 28, "B", "bool"),
        Option("mcast_max_groups", 42, "I", "int", 0, _U32),
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
        raw = opt.encode(value)
        if opt.name == "group_address":
            problem = _group_address_rule(raw)
            if problem:
                raise LabError(f"option group_address={value!r}: {problem}")
        out[opt.name] = raw
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
