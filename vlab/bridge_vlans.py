"""The VLAN side of bridges and ports: ``br.port(vm).vlan_add(10, pvid=True, untagged=True)``.

Mixed into :class:`vlab.bridge.Port` and :class:`vlab.bridge.Bridge`, so the calls live where a
test looks for them while their netlink lives in :mod:`vlab.vlan`. Every call checks the bridge
is VLAN-aware and validates its arguments before anything reaches the kernel, and every reading
(``vlans()``, ``vlan_states()``, ``vlan_global()``) comes back from the kernel, never from what
vlab remembers having asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vlab import vlan as vlanlib
from vlab.errors import LabError
from vlab.guard import guarded

if TYPE_CHECKING:
    from vlab.bridge import Bridge
    from vlab.guard import LabGuard
    from vlab.rtnl import Rtnl

VlanFlags = dict[str, bool]
"""``{"pvid": bool, "untagged": bool}``: one VLAN of a port, as ``bridge vlan show`` flags it."""


class _VlanMember:
    """What ports and the bridge device share: membership of VLANs, read back from the kernel."""

    _self_entry = False  # the bridge device's own membership is "self" (BRIDGE_FLAGS_SELF)

    @property
    def _guard(self) -> LabGuard:
        raise NotImplementedError

    @property
    def _vlan_bridge(self) -> Bridge:
        raise NotImplementedError

    @property
    def _vlan_index(self) -> int:
        raise NotImplementedError

    @property
    def _vlan_what(self) -> str:
        raise NotImplementedError

    @property
    def _rtnl(self) -> Rtnl:
        return self._vlan_bridge.switch.rtnl

    def _ranges(self, vid: object, call: str) -> list[tuple[int, int]]:
        return vlanlib.vid_ranges(vid, f"{self._vlan_what}: {call}")

    def _check_filtering(self, call: str) -> None:
        """Last of the checks: every argument is validated on any bridge first."""
        br = self._vlan_bridge
        vlanlib.check_filtering(br.vlan_filtering, f"{self._vlan_what}: {call}", br.name)

    @guarded
    def vlan_add(self, vid: Any, pvid: bool = False, untagged: bool = False) -> None:
        """Make this a member of VLAN ``vid`` (an int, ``"10-20"``, ``range(10, 21)`` or a list):
        ``pvid=True`` classifies untagged and priority-tagged frames into it (one VLAN only; it
        replaces the previous PVID), ``untagged=True`` sends it out without a tag. Adding a VLAN
        again changes its flags to exactly these, as ``bridge vlan add`` does."""
        what = f"{self._vlan_what}: vlan_add({vid!r})"
        ranges = self._ranges(vid, f"vlan_add({vid!r})")
        pvid, untagged = vlanlib.check_membership(ranges, pvid, untagged, what)
        self._check_filtering(f"vlan_add({vid!r})")
        vlanlib.add(self._rtnl, self._vlan_index, ranges, pvid, untagged, self._self_entry, what)

    @guarded
    def vlan_del(self, vid: Any) -> None:
        """Leave VLAN ``vid`` (ranges as in :meth:`vlan_add`); a VLAN this is not a member of is
        a LabError. Leaving the PVID leaves untagged frames with no VLAN: they are dropped."""
        what = f"{self._vlan_what}: vlan_del({vid!r})"
        ranges = self._ranges(vid, f"vlan_del({vid!r})")
        self._check_filtering(f"vlan_del({vid!r})")
        have = self._vlan_entries()
        missing = [v for first, last in ranges for v in range(first, last + 1) if v not in have]
        if missing:
            # the kernel answers 0 to deleting a VLAN that is not there (bridge facts): say so
            raise LabError(
                f"{what}: not a member of VLAN {missing[0]}"
                + (f" (nor of {len(missing) - 1} more)" if len(missing) > 1 else "")
                + f"; its VLANs: {sorted(have) or 'none'}"
            )
        vlanlib.delete(self._rtnl, self._vlan_index, ranges, self._self_entry, what)

    @guarded
    def vlans(self) -> dict[int, VlanFlags]:
        """``{vid: {"pvid": bool, "untagged": bool}}`` as the kernel reports it now
        (``bridge vlan show dev PORT``), ranges expanded."""
        return {
            vid: {"pvid": e.pvid, "untagged": e.untagged} for vid, e in self._vlan_entries().items()
        }

    @guarded
    def vlan_states(self) -> dict[int, str]:
        """``{vid: STP state}``: the per-VLAN state of each VLAN (``bridge -d vlan show``)."""
        return {vid: e.state for vid, e in self._vlan_entries().items()}

    @guarded
    def vlan_set(self, vid: Any, state: Any) -> None:
        """The per-VLAN STP state of VLAN ``vid`` here (``bridge vlan set ... state``):
        ``"blocking"`` drops that VLAN's frames in and out of this port, others keep flowing.
        Refused (EBUSY) while STP runs; the VLAN must be one this is a member of."""
        what = f"{self._vlan_what}: vlan_set({vid!r}, state={state!r})"
        ranges = self._ranges(vid, f"vlan_set({vid!r})")
        raw = vlanlib.encode_state(state, what)
        self._check_filtering(f"vlan_set({vid!r})")
        vlanlib.set_state(self._rtnl, self._vlan_index, ranges, raw, what)

    def _vlan_entries(self) -> dict[int, vlanlib.VlanEntry]:
        return vlanlib.dump(self._rtnl, self._vlan_index).get(self._vlan_index, {})


class PortVlans(_VlanMember):
    """A port's VLANs: ``br.port(vm).vlan_add(10, pvid=True, untagged=True)``."""

    bridge: Bridge
    index: int
    name: str

    @property
    def _vlan_bridge(self) -> Bridge:
        return self.bridge

    @property
    def _vlan_index(self) -> int:
        return self.index

    @property
    def _vlan_what(self) -> str:
        return f"port {self.name} of {self.bridge.name}"


class BridgeVlans(_VlanMember):
    """The bridge device's own VLANs (``bridge vlan ... dev br0 self``): which VLANs the bridge's
    own stack (``br.local``, its addresses) is in, and the per-VLAN multicast options."""

    _self_entry = True
    index: int
    name: str

    @property
    def _vlan_bridge(self) -> Bridge:
        return self  # type: ignore[return-value]

    @property
    def _vlan_index(self) -> int:
        return self.index

    @property
    def _vlan_what(self) -> str:
        return f"bridge {self.name}"

    @guarded
    def vlan_global_set(self, vid: Any, **options: Any) -> None:
        """Per-VLAN multicast options (``bridge vlan global set``): ``multicast_snooping``,
        ``multicast_querier``, the versions, counts and intervals, in the bridge options'
        names and units. They act once the bridge has ``multicast_vlan_snooping=True``."""
        what = f"bridge {self.name}: vlan_global_set({vid!r})"
        ranges = self._ranges(vid, f"vlan_global_set({vid!r})")
        attrs = vlanlib.encode_global(options, what)
        self._check_filtering(f"vlan_global_set({vid!r})")
        vlanlib.set_global(self._rtnl, self.index, ranges, attrs, what)

    @guarded
    def vlan_global(self) -> dict[int, dict[str, Any]]:
        """``{vid: {option: value}}``: every VLAN's multicast options as the kernel has them."""
        return vlanlib.global_dump(self._rtnl, self.index)
