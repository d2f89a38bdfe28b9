"""Playing the VLAN parts of a scenario on a lab: memberships, the VLAN steps, the checks.

``vlans:`` in a topology means *exactly these*: listed memberships are added first (so a PVID
can move), then every other VLAN of the port (the default PVID, usually) is removed.
"""

from __future__ import annotations

from typing import Any

from vlab.scenario.spec import VlanAdd, VlanDel, VlanGlobal, VlanMember, Vlans, VlanSet


def apply_members(target: Any, members: tuple[VlanMember, ...]) -> None:
    """Make ``target`` (a port, or the bridge for its own VLANs) a member of exactly these."""
    wanted: set[int] = set()
    for m in members:
        target.vlan_add(m.vids, pvid=m.pvid, untagged=m.untagged)
        wanted.update(range(m.first, m.last + 1))
    extra = sorted(set(target.vlans()) - wanted)
    if extra:
        target.vlan_del(extra)


def expected(members: tuple[VlanMember, ...]) -> dict[int, dict[str, bool]]:
    """``vlans()``'s answer for these memberships."""
    return {
        vid: {"pvid": m.pvid, "untagged": m.untagged}
        for m in members
        for vid in range(m.first, m.last + 1)
    }


def vlan_add(target: Any, step: VlanAdd) -> None:
    """The ``vlan_add`` step."""
    m = step.member
    target.vlan_add(m.vids, pvid=m.pvid, untagged=m.untagged)


def vlan_del(target: Any, step: VlanDel) -> None:
    """The ``vlan_del`` step."""
    target.vlan_del(VlanMember(step.first, step.last).vids)


def vlan_set(target: Any, step: VlanSet) -> None:
    """The ``vlan_set`` step."""
    target.vlan_set(VlanMember(step.first, step.last).vids, state=step.state)


def vlan_global(bridge: Any, step: VlanGlobal) -> None:
    """The ``vlan_global`` step."""
    bridge.vlan_global_set(VlanMember(step.first, step.last).vids, **dict(step.options))


def check(target: Any, step: Vlans) -> None:
    """The ``vlans`` step: the kernel's answer equals the listed memberships."""
    got = target.vlans()
    want = expected(step.members)
    if got != want:

        def show(table: dict[int, dict[str, bool]]) -> str:
            return (
                ", ".join(
                    f"{vid}" + "".join(f" {k}" for k, v in flags.items() if v)
                    for vid, flags in sorted(table.items())
                )
                or "none"
            )

        raise AssertionError(f"{step.at}'s VLANs are {show(got)}, not {show(want)}")
