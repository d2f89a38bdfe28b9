"""VLAN membership of a VLAN-aware bridge over raw rtnetlink: what ``bridge vlan`` does.

A VLAN-aware bridge (``vlan_filtering=True``) admits a frame on a port only in a VLAN the port is
a member of, classifies untagged and priority-tagged frames into the port's PVID, and sends each
VLAN out tagged or untagged as the egress port's membership says (see docs/bridge-facts.md).

* Membership: ``RTM_SETLINK``/``RTM_DELLINK`` of family AF_BRIDGE whose ``IFLA_AF_SPEC`` carries
  ``IFLA_BRIDGE_VLAN_INFO`` entries (``bridge vlan add|del``); a range is a begin/end pair.
* Read back: an ``RTM_GETVLAN`` dump (``bridge -d vlan show``), the kernel's ranges expanded,
  with each VLAN's per-port STP state.
* Per-VLAN options: ``RTM_NEWVLAN`` with ``BRIDGE_VLANDB_ENTRY`` (a port's per-VLAN STP state,
  ``bridge vlan set ... state``) or ``BRIDGE_VLANDB_GLOBAL_OPTIONS`` (the per-VLAN multicast
  context of the bridge: snooping, querier, intervals; ``bridge vlan global set``).

Every argument is validated here before a message is built (VLAN IDs 1-4094, one PVID, states,
option values), so a mistake is a :class:`~vlab.errors.LabError` naming the fix.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from vlab import rtnl as nl
from vlab.errors import LabError, Unsupported
from vlab.options import BRIDGE_OPTIONS, PORT_OPTIONS, PORT_STATE_NAMES

VID_MIN, VID_MAX = 1, 4094
"""0 means "no VLAN" (priority tags) and 4095 is reserved: the kernel refuses both."""

RTM_SETLINK = 19
RTM_NEWVLAN, RTM_DELVLAN, RTM_GETVLAN = 112, 113, 114
IFLA_AF_SPEC = 26
IFLA_BRIDGE_FLAGS, IFLA_BRIDGE_VLAN_INFO = 0, 2
BRIDGE_FLAGS_SELF = 2
FLAG_PVID, FLAG_UNTAGGED = 0x2, 0x4
FLAG_RANGE_BEGIN, FLAG_RANGE_END = 0x8, 0x10
FLAG_BRENTRY, FLAG_ONLY_OPTS = 0x20, 0x40
VLANDB_ENTRY, VLANDB_GLOBAL = 1, 2
ENTRY_INFO, ENTRY_RANGE, ENTRY_STATE = 1, 2, 3
DUMP_FLAGS, DUMPF_GLOBAL = 1, 0x2
GOPT_ID, GOPT_RANGE = 1, 2

_VLAN_INFO = struct.Struct("=HH")
_VLAN_MSG = struct.Struct("=BxxxI")  # struct br_vlan_msg: family, reserved, ifindex

GLOBAL_OPTIONS: dict[str, tuple[int, str]] = {
    "multicast_snooping": (3, "B"),
    "multicast_igmp_version": (4, "B"),
    "multicast_mld_version": (5, "B"),
    "multicast_last_member_count": (6, "I"),
    "multicast_startup_query_count": (7, "I"),
    "multicast_last_member_interval": (8, "Q"),
    "multicast_membership_interval": (10, "Q"),
    "multicast_querier_interval": (11, "Q"),
    "multicast_query_interval": (12, "Q"),
    "multicast_query_response_interval": (13, "Q"),
    "multicast_startup_query_interval": (14, "Q"),
    "multicast_querier": (15, "B"),
}
"""Per-VLAN multicast options (``BRIDGE_VLANDB_GOPTS_*``), in the bridge options' names and units:
each VLAN of a bridge with ``multicast_vlan_snooping=True`` has its own snooping context."""

_RANGE_RE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


# --- validation -----------------------------------------------------------------------------


def _one_vid(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise LabError(f"{what}: VLAN ID {value!r} is not an integer; give e.g. 10 or '10-20'")
    if not VID_MIN <= value <= VID_MAX:
        raise LabError(
            f"{what}: VLAN ID {value} is out of range: VLAN IDs are {VID_MIN}-{VID_MAX} "
            "(0 marks priority tags, 4095 is reserved)"
        )
    return value


def vid_ranges(value: object, what: str) -> list[tuple[int, int]]:
    """``10``, ``"10"``, ``"10-20"``, ``range(10, 21)`` or a list of those, as sorted, merged
    inclusive ``(first, last)`` ranges; anything else is a LabError naming the forms."""
    items: Iterable[object]
    if isinstance(value, list | tuple | set | frozenset):
        items = value
        if not items:
            raise LabError(f"{what}: no VLAN given; give e.g. 10, '10-20' or range(10, 21)")
    else:
        items = (value,)
    spans: list[tuple[int, int]] = []
    for item in items:
        if isinstance(item, range):
            if item.step != 1 or len(item) == 0:
                raise LabError(f"{what}: {item!r}: give a non-empty range with step 1")
            spans.append((_one_vid(item.start, what), _one_vid(item[-1], what)))
        elif isinstance(item, str):
            m = _RANGE_RE.match(item)
            if m is None:
                raise LabError(f"{what}: {item!r} is not a VLAN or range; write 10 or '10-20'")
            first = _one_vid(int(m.group(1)), what)
            last = _one_vid(int(m.group(2) or m.group(1)), what)
            if last < first:
                raise LabError(f"{what}: range {item!r} runs backwards; write '{last}-{first}'")
            spans.append((first, last))
        else:
            vid = _one_vid(item, what)
            spans.append((vid, vid))
    merged: list[tuple[int, int]] = []
    for first, last in sorted(spans):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(last, merged[-1][1]))
        else:
            merged.append((first, last))
    return merged


def count(ranges: list[tuple[int, int]]) -> int:
    """How many VLAN IDs the ranges hold."""
    return sum(last - first + 1 for first, last in ranges)


VLAN_BRIDGE_OPTIONS = ("default_pvid", "vlan_protocol", "multicast_vlan_snooping")
"""Bridge options that mean something only on a VLAN-aware bridge."""


def check_bridge_options(options: Mapping[str, Any], filtering: bool, what: str) -> None:
    """Refuse VLAN options on a bridge that is not (or not becoming) VLAN-aware: the kernel
    would store them and they would change nothing, which a test would not notice."""
    wanted = options.get("vlan_filtering")
    on = bool(wanted) if wanted is not None else filtering
    given = [k for k in VLAN_BRIDGE_OPTIONS if k in options]
    if given and not on:
        raise LabError(
            f"{what}: {', '.join(given)} need a VLAN-aware bridge; add vlan_filtering=True"
        )


def check_filtering(filtering: bool, what: str, bridge: str) -> None:
    """VLAN membership calls on a VLAN-unaware bridge are mistakes: refuse them."""
    if not filtering:
        raise LabError(
            f"{what}: bridge {bridge} is not VLAN-aware; create it with "
            f"lab.bridge({bridge!r}, vlan_filtering=True) (or set(vlan_filtering=True))"
        )


def check_membership(
    ranges: list[tuple[int, int]], pvid: object, untagged: object, what: str
) -> tuple[bool, bool]:
    """``pvid``/``untagged`` are booleans, and a PVID is one VLAN (a port has one PVID)."""
    flags = []
    for name, value in (("pvid", pvid), ("untagged", untagged)):
        if not isinstance(value, bool) and value not in (0, 1):
            raise LabError(f"{what}: {name}={value!r}: expected True or False")
        flags.append(bool(value))
    if flags[0] and count(ranges) != 1:
        raise LabError(
            f"{what}: pvid=True with {count(ranges)} VLANs: a port has one PVID (the VLAN of "
            "its untagged frames); add the range without pvid, then the PVID alone"
        )
    return flags[0], flags[1]


# --- membership -----------------------------------------------------------------------------


def _info_attrs(ranges: list[tuple[int, int]], flags: int) -> bytes:
    out = b""
    for first, last in ranges:
        if first == last:
            out += nl.nla(IFLA_BRIDGE_VLAN_INFO, _VLAN_INFO.pack(flags, first))
        else:
            out += nl.nla(IFLA_BRIDGE_VLAN_INFO, _VLAN_INFO.pack(flags | FLAG_RANGE_BEGIN, first))
            out += nl.nla(IFLA_BRIDGE_VLAN_INFO, _VLAN_INFO.pack(flags | FLAG_RANGE_END, last))
    return out


def membership_body(
    index: int, ranges: list[tuple[int, int]], pvid: bool, untagged: bool, self_: bool
) -> bytes:
    """``bridge vlan add|del vid RANGES dev DEV [pvid] [untagged] [self]``'s message body."""
    flags = (FLAG_PVID if pvid else 0) | (FLAG_UNTAGGED if untagged else 0)
    spec = nl.nla(IFLA_BRIDGE_FLAGS, struct.pack("=H", BRIDGE_FLAGS_SELF)) if self_ else b""
    spec += _info_attrs(ranges, flags)
    return nl.IFINFO.pack(nl.AF_BRIDGE, 0, index, 0, 0) + nl.nla(
        IFLA_AF_SPEC | nl.NLA_F_NESTED, spec
    )


def _refused(exc: OSError, what: str) -> LabError:
    if exc.errno == 95:  # EOPNOTSUPP
        return Unsupported(f"{what}: this kernel has no bridge VLAN filtering (EOPNOTSUPP)")
    if exc.errno == 16:  # EBUSY
        return LabError(f"{what}: the kernel refused it (EBUSY: STP or MST owns the states)")
    return LabError(f"{what}: the kernel refused it ({exc.strerror})")


def add(
    rtnl: nl.Rtnl,
    index: int,
    ranges: list[tuple[int, int]],
    pvid: bool,
    untagged: bool,
    self_: bool,
    what: str,
) -> None:
    """Add (or change the flags of) VLAN memberships of a port or of the bridge itself."""
    try:
        rtnl.request(RTM_SETLINK, membership_body(index, ranges, pvid, untagged, self_))
    except OSError as exc:
        raise _refused(exc, what) from None


def delete(
    rtnl: nl.Rtnl, index: int, ranges: list[tuple[int, int]], self_: bool, what: str
) -> None:
    """Remove VLAN memberships; one the port does not have is a LabError (the kernel: ENOENT)."""
    try:
        rtnl.request(nl.RTM_DELLINK, membership_body(index, ranges, False, False, self_))
    except OSError as exc:
        if exc.errno == 2:
            raise LabError(f"{what}: not a member of that VLAN (ENOENT)") from None
        raise _refused(exc, what) from None


# --- reading back ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VlanEntry:
    """One VLAN of one port (or of the bridge device) as the kernel reports it."""

    vid: int
    pvid: bool
    untagged: bool
    state: str  # the port's STP state in this VLAN (forwarding, blocking...)


def attr_list(buf: bytes, offset: int = 0) -> Iterator[tuple[int, bytes]]:
    """Attributes in order, repeats kept (``vlab.rtnl.attrs`` keeps only the last of a kind)."""
    while offset + 4 <= len(buf):
        length, kind = struct.unpack_from("=HH", buf, offset)
        if length < 4:
            return
        yield kind & 0x3FFF, buf[offset + 4 : offset + length]
        offset += (length + 3) & ~3


def dump(rtnl: nl.Rtnl, index: int = 0) -> dict[int, dict[int, VlanEntry]]:
    """``{ifindex: {vid: VlanEntry}}`` of every bridge port and bridge (or of ``index`` only)."""
    body = _VLAN_MSG.pack(nl.AF_BRIDGE, index)
    try:
        replies = rtnl.dump(RTM_GETVLAN, body)
    except OSError as exc:
        raise _refused(exc, "bridge vlan show") from None
    out: dict[int, dict[int, VlanEntry]] = {}
    for reply in replies:
        _family, ifindex = _VLAN_MSG.unpack_from(reply)
        table = out.setdefault(ifindex, {})
        for kind, entry in attr_list(reply, _VLAN_MSG.size):
            if kind != VLANDB_ENTRY:
                continue
            a = nl.attrs(entry)
            flags, first = _VLAN_INFO.unpack_from(a[ENTRY_INFO])
            last = struct.unpack_from("=H", a[ENTRY_RANGE])[0] if ENTRY_RANGE in a else first
            state = PORT_STATE_NAMES.get(a[ENTRY_STATE][0], "?") if ENTRY_STATE in a else "?"
            for vid in range(first, last + 1):
                table[vid] = VlanEntry(
                    vid, bool(flags & FLAG_PVID), bool(flags & FLAG_UNTAGGED), state
                )
    return out


def global_dump(rtnl: nl.Rtnl, bridge_index: int) -> dict[int, dict[str, Any]]:
    """``{vid: {option: value}}`` of a bridge's per-VLAN global options, friendly units."""
    body = _VLAN_MSG.pack(nl.AF_BRIDGE, bridge_index)
    body += nl.nla(DUMP_FLAGS, struct.pack("=I", DUMPF_GLOBAL))
    try:
        replies = rtnl.dump(RTM_GETVLAN, body)
    except OSError as exc:
        raise _refused(exc, "bridge vlan global show") from None
    by_attr = {attr: (name, fmt) for name, (attr, fmt) in GLOBAL_OPTIONS.items()}
    out: dict[int, dict[str, Any]] = {}
    for reply in replies:
        for kind, entry in attr_list(reply, _VLAN_MSG.size):
            if kind != VLANDB_GLOBAL:
                continue
            a = nl.attrs(entry)
            first = struct.unpack_from("=H", a[GOPT_ID])[0]
            last = struct.unpack_from("=H", a[GOPT_RANGE])[0] if GOPT_RANGE in a else first
            values: dict[str, Any] = {}
            for attr, raw in a.items():
                if attr in by_attr:
                    name, fmt = by_attr[attr]
                    number = struct.unpack_from("=" + fmt, raw)[0]
                    values[name] = BRIDGE_OPTIONS[name].decode(number)
            for vid in range(first, last + 1):
                out[vid] = dict(values)
    return out


# --- per-VLAN options -----------------------------------------------------------------------


def encode_state(value: object, what: str) -> int:
    """A port's per-VLAN STP state, as the port option ``state`` takes it."""
    try:
        return int(PORT_OPTIONS["state"].encode(value))
    except LabError as exc:
        raise LabError(f"{what}: {exc}") from None


def set_state(
    rtnl: nl.Rtnl, index: int, ranges: list[tuple[int, int]], state: int, what: str
) -> None:
    """``bridge vlan set dev PORT vid RANGES state STATE``."""
    body = _VLAN_MSG.pack(nl.AF_BRIDGE, index)
    for first, last in ranges:
        entry = nl.nla(ENTRY_INFO, _VLAN_INFO.pack(FLAG_ONLY_OPTS, first))
        if last != first:
            entry += nl.nla(ENTRY_RANGE, struct.pack("=H", last))
        entry += nl.nla(ENTRY_STATE, bytes([state]))
        body += nl.nla(VLANDB_ENTRY | nl.NLA_F_NESTED, entry)
    try:
        rtnl.request(RTM_NEWVLAN, body)
    except OSError as exc:
        raise _refused(exc, what) from None


def encode_global(options: Mapping[str, Any], what: str) -> bytes:
    """Per-VLAN multicast options, validated with the bridge options' own rules, as attributes."""
    out = b""
    for name, value in options.items():
        spec = GLOBAL_OPTIONS.get(name)
        if spec is None:
            raise LabError(
                f"{what}: unknown per-VLAN option {name!r}; per-VLAN options: "
                + ", ".join(GLOBAL_OPTIONS)
            )
        attr, fmt = spec
        try:
            raw = BRIDGE_OPTIONS[name].encode(value)
        except LabError as exc:
            raise LabError(f"{what}: {exc}") from None
        out += nl.nla(attr, struct.pack("=" + fmt, raw))
    return out


def set_global(
    rtnl: nl.Rtnl, bridge_index: int, ranges: list[tuple[int, int]], attrs: bytes, what: str
) -> None:
    """``bridge vlan global set dev BR vid RANGES OPTIONS``."""
    body = _VLAN_MSG.pack(nl.AF_BRIDGE, bridge_index)
    for first, last in ranges:
        entry = nl.nla(GOPT_ID, struct.pack("=H", first))
        if last != first:
            entry += nl.nla(GOPT_RANGE, struct.pack("=H", last))
        body += nl.nla(VLANDB_GLOBAL | nl.NLA_F_NESTED, entry + attrs)
    try:
        rtnl.request(RTM_NEWVLAN, body)
    except OSError as exc:
        if exc.errno == 2:
            raise LabError(f"{what}: the bridge itself is not a member of that VLAN") from None
        raise _refused(exc, what) from None
