"""A reference model of the VLAN-aware Linux bridge (``vlan_filtering=1``), in pure Python.

:class:`VlanBridgeModel` extends :class:`~vlab.reference.bridge.BridgeModel` with what
``br_vlan.c`` adds to the frame path, and answers a richer question: *which endpoints receive this
frame, and as which bytes?* — a VLAN-aware bridge changes frames (it adds and removes tags), so
:meth:`VlanBridgeModel.deliver_frames` returns each receiver's copy.

Modelled, each as one small method named after the kernel function it mirrors ("fact N" as in
docs/bridge-facts.md):

* ingress (``__allowed_ingress``): a frame tagged with the bridge's ``vlan_protocol`` belongs to
  its VID; an untagged frame, a priority-tagged one (VID 0, its PCP kept) or one tagged with the
  *other* protocol (that tag stays in the payload: a customer tag on an 802.1ad bridge) belongs
  to the port's PVID, and is dropped without one; a VLAN the port is not a member of is dropped;
* the port's per-VLAN STP state (``br_vlan_get_state``) in place of its port state when the port
  forwards, on ingress (learning allowed in "learning") and egress (forwarding only);
* learning, lookups, flooding and locked-port checks per VLAN: the fdb is keyed by (MAC, VID), so
  the same MAC can sit behind two ports in two VLANs;
* local entries per VLAN: a port's MAC is local only in the VLANs it is a member of, the
  bridge's MAC only in the bridge device's own VLANs (its "self" entries);
* egress (``br_allowed_egress``, ``br_handle_vlan``): only to members of the frame's VLAN,
  untagged where the egress membership says so, else tagged with the bridge's protocol and the
  ingress PCP;
* link-local frames with tags: kept ones learn in the VLAN ``br_should_learn`` picks; an
  802.1ad bridge forwards the groups of ``BR_GROUPFWD_8021AD`` (``group_fwd_mask_required``);
* ``default_pvid`` (``br_vlan_set_default_pvid``): new ports join it as PVID, untagged; a change
  moves the bridge and the ports still on the old default, and only those.

Everything the base model leaves out stays out (IP payloads, STP BPDUs...). The base model's
rules are reused: while one frame is handled, ``self._fdb`` is the table of that frame's VLAN.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import SupportsBytes

from vlab.errors import LabError
from vlab.reference.bridge import (
    EGRESS_SLACK,
    PAUSE,
    BridgeModel,
    LearnedEntry,
    NotModelled,
    OptionValue,
    ParsedFrame,
    Receivers,
    is_link_local,
    is_runt_tagged,
    normalize_mac,
)

VID_MIN, VID_MAX = 1, 4094
TPIDS = {"802.1Q": 0x8100, "802.1ad": 0x88A8}
GROUPFWD_8021AD = 0xB801
"""``BR_GROUPFWD_8021AD``: groups a provider bridge must forward (01:80:c2:00:00:00, 0b-0d, 0f)."""
VLAN_OPTIONS = ("vlan_filtering", "default_pvid", "vlan_protocol")
SELF = "self"
"""The bridge device's own membership, where a port name is expected."""


@dataclass
class Membership:
    """One VLAN of one port (or of the bridge device)."""

    untagged: bool = False
    state: str = "forwarding"


@dataclass
class _Vlans:
    members: dict[int, Membership] = field(default_factory=dict)
    pvid: int = 0  # 0: none

    def flags(self) -> dict[int, dict[str, bool]]:
        return {
            vid: {"pvid": vid == self.pvid, "untagged": m.untagged}
            for vid, m in sorted(self.members.items())
        }


def check_vid(vid: object, what: str = "VLAN ID") -> int:
    """A VLAN ID the kernel accepts (1-4094); anything else is a LabError."""
    if isinstance(vid, bool) or not isinstance(vid, int) or not VID_MIN <= vid <= VID_MAX:
        raise LabError(f"{what} {vid!r}: VLAN IDs are {VID_MIN}-{VID_MAX}")
    return vid


class VlanBridgeModel(BridgeModel):
    """The VLAN-aware bridge's forwarding decision, fdb per VLAN and frames as they leave.

    ``VlanBridgeModel(bridge_mac, ports, default_pvid=1, vlan_protocol="802.1Q", **options)``
    starts as a bridge created with ``vlan_filtering=True``: every port and the bridge device
    are untagged members of ``default_pvid``, their PVID. A wrong bridge is a subclass, as for
    the base model::

        class IgnoresPvid(VlanBridgeModel):
            def classify(self, ingress, tagged_vid):
                return tagged_vid or None
    """

    def __init__(
        self, bridge_mac: str, ports: Mapping[str, str], **bridge_options: OptionValue
    ) -> None:
        self._tables: dict[int, dict[str, LearnedEntry]] = {}
        self._vid = 0
        self._default_pvid = 1
        self._tpid = TPIDS["802.1Q"]
        self._vlans: dict[str, _Vlans] = {SELF: _Vlans({1: Membership(True)}, 1)}
        for name in ports:
            self._vlans[name] = _Vlans({1: Membership(True)}, 1)
        filtering = bridge_options.pop("vlan_filtering", True)
        if filtering is not True:
            raise LabError("VlanBridgeModel models vlan_filtering=True; use BridgeModel otherwise")
        vlan = {k: bridge_options.pop(k) for k in VLAN_OPTIONS[1:] if k in bridge_options}
        super().__init__(bridge_mac, ports, **bridge_options)
        if vlan:
            self.set(**vlan)

    # the base model's rules read and write ``self._fdb``: the table of the current VLAN
    @property  # type: ignore[override]
    def _fdb(self) -> dict[str, LearnedEntry]:
        return self._tables.setdefault(self._vid, {})

    @_fdb.setter
    def _fdb(self, value: dict[str, LearnedEntry]) -> None:
        self._tables = {self._vid: value} if value else {}

    # --- configuration --------------------------------------------------------------------

    def set(self, **bridge_options: OptionValue) -> None:
        """Bridge options; ``default_pvid`` and ``vlan_protocol`` too (validated first)."""
        pvid = bridge_options.pop("default_pvid", None)
        proto = bridge_options.pop("vlan_protocol", None)
        if bridge_options.pop("vlan_filtering", True) is not True:
            raise NotModelled("switching VLAN filtering off is not modelled")
        if pvid is not None and (pvid != 0 and check_vid(pvid, "default_pvid") != pvid):
            raise LabError(f"default_pvid={pvid!r}")  # pragma: no cover - check_vid raised
        if proto is not None and proto not in TPIDS:
            raise LabError(f"vlan_protocol={proto!r}: choose 802.1Q or 802.1ad")
        super().set(**bridge_options)
        if proto is not None:
            self._tpid = TPIDS[str(proto)]
        if pvid is not None:
            self.set_default_pvid(int(pvid))

    def set_default_pvid(self, pvid: int) -> None:
        """``br_vlan_set_default_pvid``: the bridge device and every port whose PVID is still the
        old default, untagged, and that is not yet a member of the new one move to it."""
        old = self._default_pvid
        if pvid == old:
            return
        for name, v in self._vlans.items():
            on_default = old == 0 or (
                v.pvid == old and old in v.members and v.members[old].untagged
            )
            if not on_default or (pvid and pvid in v.members):
                continue
            if old:
                self._leave(name, old)
            if pvid:
                v.members[pvid] = Membership(True)
                v.pvid = pvid
        self._default_pvid = pvid

    def add_port(self, name: str, mac: str) -> None:
        """Not offered by the base model either: ports are fixed at construction."""
        raise NotModelled("ports are fixed when the model is built")

    def vlan_add(
        self, port: str, vid: int | range, pvid: bool = False, untagged: bool = False
    ) -> None:
        """``bridge vlan add``: join (or re-flag) VLANs; ``pvid`` moves the PVID here."""
        vids = self._vids(vid)
        if pvid and len(vids) != 1:
            raise LabError("a port has one PVID: give one VLAN with pvid=True")
        v = self._member(port)
        for one in vids:
            old = v.members.get(one)
            v.members[one] = Membership(untagged, old.state if old else "forwarding")
            if pvid:
                v.pvid = one
            elif v.pvid == one:
                v.pvid = 0  # re-adding the PVID without the flag takes the PVID away
            if old is None:
                self._drop_local(port, one)

    def vlan_del(self, port: str, vid: int | range) -> None:
        """``bridge vlan del``: leave VLANs (their entries on this port go with them)."""
        v = self._member(port)
        vids = self._vids(vid)
        missing = [x for x in vids if x not in v.members]
        if missing:
            raise LabError(f"{port} is not a member of VLAN {missing[0]}")
        for one in vids:
            self._leave(port, one)

    def vlan_set(self, port: str, vid: int, state: str) -> None:
        """``bridge vlan set ... state``: the port's STP state in one VLAN."""
        if state not in ("disabled", "listening", "learning", "forwarding", "blocking"):
            raise LabError(f"state {state!r}")
        if self._options["stp"]:
            raise LabError("per-VLAN states cannot be set while STP runs (EBUSY)")
        v = self._member(port)
        one = check_vid(vid)
        if one not in v.members:
            raise LabError(f"{port} is not a member of VLAN {one}")
        v.members[one].state = state

    def fdb_add(
        self,
        mac: str,
        port_name: str,
        static: bool = True,
        sticky: bool = False,
        vlan: int | None = None,
    ) -> None:
        """A user entry in VLAN ``vlan`` (None: the VLAN-less entry, which no lookup finds)."""
        with self._in_vlan(0 if vlan is None else check_vid(vlan)):
            super().fdb_add(mac, port_name, static, sticky)

    def fdb_del(self, mac: str, vlan: int | None = None) -> None:  # type: ignore[override]
        """Delete the entry for ``mac`` in ``vlan``."""
        with self._in_vlan(0 if vlan is None else check_vid(vlan)):
            super().fdb_del(mac)

    # --- observation ----------------------------------------------------------------------

    def vlans(self, port: str) -> dict[int, dict[str, bool]]:
        """``{vid: {"pvid", "untagged"}}`` of a port (or of ``"self"``), as ``vlans()`` reads."""
        return self._member(port).flags()

    def vlan_state(self, port: str, vid: int) -> str | None:
        """The port's per-VLAN STP state, None if it is not a member."""
        m = self._member(port).members.get(vid)
        return m.state if m else None

    @property
    def vlan_protocol(self) -> str:
        """ "802.1Q" or "802.1ad"."""
        return next(n for n, t in TPIDS.items() if t == self._tpid)

    @property
    def default_pvid(self) -> int:
        """The VLAN new ports join (0: none)."""
        return self._default_pvid

    def fdb(self, vlan: int | None = None) -> dict[str, str]:  # type: ignore[override]
        """MAC -> port in one VLAN; without ``vlan`` every VLAN's entries (later VLANs win)."""
        if vlan is not None:
            return {mac: e.port for mac, e in self._tables.get(vlan, {}).items()}
        return {mac: e.port for _vid, t in sorted(self._tables.items()) for mac, e in t.items()}

    def vlan_entries(self) -> dict[tuple[str, int], LearnedEntry]:
        """Every non-local entry keyed by (MAC, VID); VID 0 for VLAN-less user entries."""
        return {(mac, vid): e for vid, t in self._tables.items() for mac, e in t.items()}

    def entries(self) -> dict[str, LearnedEntry]:
        """Like the base model's, over every VLAN (a MAC in two VLANs appears once)."""
        return {mac: e for _vid, t in sorted(self._tables.items()) for mac, e in t.items()}

    # --- the frame path -------------------------------------------------------------------

    def deliver(self, ingress: str, frame: bytes | SupportsBytes) -> Receivers:
        """Who receives ``frame`` (see :meth:`deliver_frames` for what each receives)."""
        return set(self.deliver_frames(ingress, frame))

    def deliver_frames(self, ingress: str, frame: bytes | SupportsBytes) -> dict[str, bytes]:
        """``{receiver: bytes it receives}`` for ``frame`` sent by ``ingress``; updates the fdb.

        ``br_handle_frame`` (source, link-local), then ``__allowed_ingress`` (classification,
        membership, per-VLAN state), the locked port, learning and the destination in the
        frame's VLAN, and ``br_handle_vlan`` for each egress copy.
        """
        self._port(ingress)
        data = bytes(frame)
        if len(data) >= 14 and is_runt_tagged(data):
            return {}
        f = ParsedFrame.parse(data)
        if not self.source_valid(f.src):
            return {}
        if self.parsed_by_bridge(f):
            raise NotModelled(
                f"ethertype {f.ethertype:#06x}: the bridge parses this payload; "
                "VlanBridgeModel does not (use vlab.strategies.ethertypes())"
            )
        tag = self._outer_tag(data)
        inner = data if tag is None else data[:12] + data[16:]  # the frame without our tag
        tagged_vid = None if tag is None else tag & 0xFFF
        if is_link_local(f.dst) and not self.link_local_forwarded(ingress, f.dst):
            vid = self.learning_vlan(ingress, tagged_vid)
            if vid is not None and self.link_local_learns(ingress, f.dst):
                with self._in_vlan(vid):
                    self._fdb_update(ingress, f.src)
            return {}
        state = self.port_state(ingress)
        if state not in ("learning", "forwarding"):
            return {}
        vid = self.classify(ingress, tagged_vid)
        if vid is None or not self.ingress_member(ingress, vid):
            return {}
        if state == "forwarding":
            state = self._member(ingress).members[vid].state
            if state not in ("learning", "forwarding"):
                return {}
        pcp = 0 if tag is None else tag & 0xF000
        with self._in_vlan(vid):
            if not self.locked_port_admits(ingress, f.src):
                if self.mab_records(ingress, f.src):
                    self._fdb_update(ingress, f.src, locked=True)
                return {}
            if self._port(ingress).flag("learning"):
                self._fdb_update(ingress, f.src)
            if state == "learning":
                return {}
            if len(inner) > self.port_mtu + EGRESS_SLACK:  # fact 21: skb->len, our tag aside
                return {}
            receivers = self.forward_targets(ingress, f.dst)
        return {r: self.egress_frame(r, vid, pcp, inner) for r in receivers}

    # --- rules ----------------------------------------------------------------------------

    def classify(self, ingress: str, tagged_vid: int | None) -> int | None:
        """``__allowed_ingress``: the frame's VID if it carries one in our protocol, else the
        ingress port's PVID (untagged and priority-tagged frames alike); None: dropped."""
        if tagged_vid:
            return tagged_vid
        return self._member(ingress).pvid or None

    def ingress_member(self, ingress: str, vid: int) -> bool:
        """Ingress filtering: the port must be a member of the frame's VLAN."""
        return vid in self._member(ingress).members

    def learning_vlan(self, ingress: str, tagged_vid: int | None) -> int | None:
        """``br_should_learn``: the VLAN a kept link-local frame teaches its source in — its
        own (if the port is a member, forwarding or learning there) or the PVID's."""
        v = self._member(ingress)
        vid = tagged_vid or v.pvid
        if not vid or vid not in v.members:
            return None
        return vid if v.members[vid].state in ("learning", "forwarding") else None

    def link_local_forwarded(self, ingress: str, dst: str) -> bool:
        """Fact 7 plus ``group_fwd_mask_required``: an 802.1ad bridge forwards 01:80:c2:00:00:00,
        0b, 0c, 0d and 0f as if their bits were in every port's mask."""
        group = int(dst[-2:], 16)
        if self._tpid == TPIDS["802.1ad"] and dst != PAUSE and GROUPFWD_8021AD & (1 << group):
            return True
        return super().link_local_forwarded(ingress, dst)

    def should_deliver(self, ingress: str, egress: str) -> bool:
        """The base rule plus ``br_allowed_egress``: the egress port is a member of the frame's
        VLAN and forwarding in it."""
        if not super().should_deliver(ingress, egress):
            return False
        m = self._member(egress).members.get(self._vid)
        return m is not None and m.state == "forwarding"

    def is_local(self, mac: str) -> bool:
        """Local entries per VLAN: a port's MAC in its VLANs, the bridge's in its own."""
        if self._vid == 0:  # the VLAN-less entries every port and the bridge also have
            return super().is_local(mac)
        if mac == self._bridge_mac:
            return self._vid in self._vlans[SELF].members
        return any(
            p.mac == mac and self._vid in self._vlans[name].members
            for name, p in self._ports.items()
        )

    def learned_limit_reached(self) -> bool:
        """``fdb_max_learned`` counts learnt entries of every VLAN together."""
        limit = int(self._options["fdb_max_learned"])
        total = sum(e.learned for t in self._tables.values() for e in t.values())
        return limit > 0 and total >= limit

    def egress_frame(self, egress: str, vid: int, pcp: int, inner: bytes) -> bytes:
        """``br_handle_vlan``: untagged members get the frame without our tag; tagged ones get
        our protocol's tag with the VID and the ingress PCP/DEI (0 for untagged ingress)."""
        if self._member(egress).members[vid].untagged:
            return inner
        tag = self._tpid.to_bytes(2, "big") + (pcp | vid).to_bytes(2, "big")
        return inner[:12] + tag + inner[12:]

    # --- internals ------------------------------------------------------------------------

    def _outer_tag(self, data: bytes) -> int | None:
        """The TCI of the outer tag if it is in the bridge's protocol (else None)."""
        if len(data) >= 18 and int.from_bytes(data[12:14], "big") == self._tpid:
            return int.from_bytes(data[14:16], "big")
        return None

    def _in_vlan(self, vid: int) -> _VlanScope:
        return _VlanScope(self, vid)

    def _member(self, port: str) -> _Vlans:
        if port != SELF:
            self._port(port)
        return self._vlans[port]

    def _vids(self, vid: int | range) -> list[int]:
        vids = list(vid) if isinstance(vid, range) else [vid]
        if not vids:
            raise LabError("no VLAN given")
        return [check_vid(v) for v in vids]

    def _leave(self, port: str, vid: int) -> None:
        v = self._vlans[port]
        del v.members[vid]
        if v.pvid == vid:
            v.pvid = 0
        if port != SELF:  # br_fdb_delete_by_port(vid): the port's dynamic entries there
            table = self._tables.get(vid, {})
            for mac in [m for m, e in table.items() if e.port == port and not e.static]:
                del table[mac]

    def _drop_local(self, port: str, vid: int) -> None:
        """Joining a VLAN makes the port's MAC local there: a learnt entry for it goes."""
        mac = self.bridge_mac if port == SELF else self._ports[port].mac
        self._tables.get(vid, {}).pop(mac, None)

    def _drop_entries(self, doomed: object) -> None:
        for vid in list(self._tables):
            with self._in_vlan(vid):
                super()._drop_entries(doomed)  # type: ignore[arg-type]


class _VlanScope:
    """``with model._in_vlan(vid):`` the base rules see that VLAN's fdb table."""

    def __init__(self, model: VlanBridgeModel, vid: int) -> None:
        self.model = model
        self.vid = vid
        self.saved = 0

    def __enter__(self) -> None:
        self.saved = self.model._vid
        self.model._vid = self.vid

    def __exit__(self, *exc: object) -> None:
        self.model._vid = self.saved


__all__ = ["SELF", "Membership", "VlanBridgeModel", "check_vid", "normalize_mac"]
