"""``where MAC``: the fdb entry, the port, the tap behind it and the VM NIC behind the tap.

A guest's MAC is learnt by the bridge on the tap port (the guest's frames enter there); the
tap's own MAC is a different one, a "local" entry of the same port. Both are answered: the guest
MAC with the VM behind it, the tap MAC as the host side of that VM's cable. A MAC no fdb has but
a QEMU NIC is configured with is answered from the command line (the guest was quiet longer
than the ageing time). Every place it is found is a :class:`Location`, best first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vlab.hostview.netlink import FdbRecord, Link
from vlab.hostview.views import BridgeView, HostView, Tap

__all__ = ["Answer", "Location", "locate"]


@dataclass(frozen=True)
class Location:
    #: guest (behind a tap, in a fdb), port (behind a non-tap port), tap (a tap's own MAC),
    #: bridge (the bridge's own MAC), nic (a QEMU NIC not in any fdb), link (a link's own MAC)
    what: str
    bridge: Link | None
    port: Link | None
    entry: FdbRecord | None
    tap: Tap | None
    lower: Link | None = None  # a macvtap's lower device (the NIC it sits on)


@dataclass
class Answer:
    mac: str
    locations: list[Location] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return bool(self.locations)


def _tap_of(view: HostView, port: Link | None) -> Tap | None:
    return view.taps.get(port.index) if port is not None else None


def _from_fdb(view: HostView, br: BridgeView, e: FdbRecord) -> Location:
    port = view.links.get(e.port)
    if e.how == "local":
        what = "bridge" if e.port == br.link.index else "tap" if _tap_of(view, port) else "local"
    else:
        what = "guest" if _tap_of(view, port) else "port"
    return Location(what, br.link, port, e, _tap_of(view, port))


def locate(view: HostView, mac: str, vlan: int | None = None) -> Answer:
    """Every place ``mac`` is: fdb entries first (learnt before local), then configured NICs
    and links' own addresses that no fdb mentions."""
    answer = Answer(mac)
    rank = {"guest": 0, "port": 1, "tap": 2, "bridge": 3, "local": 4}
    for br in view.bridges:
        for e in br.fdb:
            if e.mac == mac and (vlan is None or e.vlan == vlan):
                answer.locations.append(_from_fdb(view, br, e))
    answer.locations.sort(key=lambda loc: rank.get(loc.what, 9))
    seen_ports = {loc.port.index for loc in answer.locations if loc.port is not None}
    bridges = {br.link.index: br.link for br in view.bridges}
    for tap in view.taps.values():
        if tap.link.index in seen_ports:
            continue
        if any(h.vm is not None and h.vm.mac == mac for h in tap.holders):
            master = bridges.get(tap.link.master)
            lower = view.links.get(tap.link.lower)
            answer.locations.append(Location("nic", master, tap.link, None, tap, lower))
            seen_ports.add(tap.link.index)
    own = seen_ports | {loc.bridge.index for loc in answer.locations if loc.bridge is not None}
    for link in view.links.values():
        if link.mac == mac and link.index not in own and vlan is None:
            master = bridges.get(link.master)
            lower = view.links.get(link.lower) if link.kind == "macvtap" else None
            answer.locations.append(
                Location("link", master, link, None, _tap_of(view, link), lower)
            )
    return answer
