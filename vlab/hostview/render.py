"""Text for people: the one-line ``where`` answer, its ``--explain``, and ``show --host``.

The line reads like the question it answers — which VM NIC is behind which tap on which
bridge — and says what it could not find out instead of leaving a blank.
"""

from __future__ import annotations

from collections.abc import Sequence

from vlab.hostview.locate import Answer, Location
from vlab.hostview.netlink import FdbRecord, Link
from vlab.hostview.views import Holder, HostView, Tap

__all__ = ["explain", "not_found", "show", "where_line"]


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]], indent: str) -> str:
    cells = [list(headers)] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        (indent + "  ".join(c.ljust(widths[i]) for i, c in enumerate(row))).rstrip()
        for row in cells
    )


def age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def how_text(e: FdbRecord) -> str:
    flags = f" ({', '.join(e.flags)})" if e.flags else ""
    if e.how == "learnt":
        return f"learnt {age(e.updated)} ago{flags}"
    return e.how + flags


def holder_text(h: Holder) -> str:
    fd = f"fd {h.fd}" if h.fd >= 0 else "ifname= on its command line"
    if h.vm is not None:
        vm = h.vm.vm or "?"
        return f"VM {vm}'s NIC {h.vm.nic} ({h.vm.model}, QEMU pid {h.pid}, {fd})"
    kind = "QEMU" if h.qemu else h.comm
    return f"pid {h.pid} ({kind}, {fd})"


def _owner_clause(tap: Tap) -> str:
    """Who holds the tap, when that is not a VM NIC already named at the front of the line."""
    if tap.owner_unknown:
        return tap.owner_unknown
    return "held by " + ", ".join(holder_text(h) for h in tap.holders)


def _tap_part(tap: Tap, name_owner: bool) -> str:
    inner = f"tap MAC {tap.link.mac}"
    if tap.link.kind == "macvtap":
        inner = f"macvtap, MAC {tap.link.mac}"
    if name_owner:
        inner += f"; {_owner_clause(tap)}"
    kind = "macvtap" if tap.link.kind == "macvtap" else "tap"
    return f"{kind} {tap.link.name} ({inner})"


def _on_bridge(loc: Location) -> str:
    if loc.bridge is None:
        return "not on a bridge"
    vlan = f" vlan {loc.entry.vlan}" if loc.entry and loc.entry.vlan is not None else ""
    return f"on bridge {loc.bridge.name}{vlan}"


def _vm_front(mac: str, tap: Tap) -> tuple[str, bool]:
    """``is VM web1's NIC net0 (virtio-net, QEMU pid 4242)`` when a QEMU NIC is on the tap."""
    q = tap.qemu
    if q is None or q.vm is None:
        return "", True
    nic_mac = q.vm.mac
    how = "is" if nic_mac in (None, mac) else "is behind"
    other = f", NIC MAC {nic_mac}" if nic_mac not in (None, mac) else ""
    fd = f", fd {q.fd}" if q.fd >= 0 else ""
    vm = q.vm.vm or "?"
    return f"{how} VM {vm}'s NIC {q.vm.nic} ({q.vm.model}{other}, QEMU pid {q.pid}{fd})", False


def _macvtap_text(mac: str, loc: Location, tap: Tap) -> str:
    """A macvtap sits on a NIC, not on a bridge: its MAC is normally the guest's own."""
    front, name_owner = _vm_front(mac, tap)
    front = f"{front} on" if front else "is the MAC of" if tap.link.mac == mac else "is behind"
    mode = f"mode {tap.link.macvtap_mode}, " if tap.link.macvtap_mode else ""
    lower = f"on {loc.lower.name}" if loc.lower else "on no lower device here"
    owner = f"; {_owner_clause(tap)}" if name_owner else ""
    return f"{front} macvtap {tap.link.name} ({mode}MAC {tap.link.mac}{owner}) {lower}"


def location_text(mac: str, loc: Location) -> str:
    port = loc.port.name if loc.port else "?"
    if loc.tap is not None and loc.tap.link.kind == "macvtap" and loc.what in ("nic", "link"):
        return _macvtap_text(mac, loc, loc.tap)
    if loc.what in ("guest", "nic") and loc.tap is not None:
        front, name_owner = _vm_front(mac, loc.tap)
        front = f"{front} on" if front else "is behind"
        tail = how_text(loc.entry) if loc.entry else "not in its fdb (nothing heard from it lately)"
        return f"{front} {_tap_part(loc.tap, name_owner)} {_on_bridge(loc)}, {tail}"
    if loc.what == "port" and loc.entry is not None:
        kind = loc.port.kind if loc.port and loc.port.kind else "port"
        return f"is behind port {port} ({kind}) {_on_bridge(loc)}, {how_text(loc.entry)}"
    if loc.what == "tap" and loc.tap is not None:
        q = loc.tap.qemu
        guest = ""
        if q is not None and q.vm is not None:
            guest = f"; the guest behind it is VM {q.vm.vm or '?'}'s NIC {q.vm.nic}"
            guest += f", MAC {q.vm.mac}" if q.vm.mac else ""
        return f"is the own MAC of tap {port}, the host side {_on_bridge(loc)} (local{guest})"
    if loc.what == "bridge":
        return f"is the own MAC of bridge {port} (local)"
    if loc.what == "local":
        return f"is the own MAC of port {port} {_on_bridge(loc)} (local)"
    kind = loc.port.kind if loc.port and loc.port.kind else "link"
    return f"is the MAC of link {port} ({kind}), {_on_bridge(loc)}, in no fdb"


def where_line(answer: Answer) -> str:
    first, *rest = answer.locations
    line = f"{answer.mac} {location_text(answer.mac, first)}"
    also = [
        f"{loc.port.name if loc.port else '?'} on {loc.bridge.name if loc.bridge else '-'}"
        for loc in rest
        if loc.entry is not None and loc.entry.how != "local"
    ]
    if also:
        line += f" (also in the fdb behind: {', '.join(also)})"
    return line


def not_found(view: HostView, mac: str) -> str:
    entries = sum(len(b.fdb) for b in view.bridges)
    return (
        f"{mac} is nowhere in network namespace {view.netns}: no fdb entry of its "
        f"{len(view.bridges)} bridge(s) ({entries} entries), no link and no VM NIC of its "
        f"{len(view.taps)} tap(s) has it"
    )


def explain(answer: Answer) -> str:
    """Why a tap has a MAC of its own that is not the VM's, and which one the bridge learns."""
    loc = next((x for x in answer.locations if x.tap is not None), None)
    if loc is None or loc.tap is None:
        return (
            "No tap is involved: the MAC was found on a port or link that is not a VM's tap, so "
            "there is no guest MAC / tap MAC pair to tell apart."
        )
    tap = loc.tap
    if tap.link.kind == "macvtap":
        return "\n".join(
            [
                f"{tap.link.name} is a macvtap: the VM's NIC is the macvtap itself, on the NIC",
                f"{loc.lower.name if loc.lower else 'below it'}, so there is no second MAC to",
                "tell apart: libvirt gives the macvtap the guest's own MAC, no bridge learns it,",
                "and the lower NIC delivers frames for that MAC to the macvtap (and so to QEMU).",
            ]
        )
    q = tap.qemu
    guest = q.vm.mac if q is not None and q.vm is not None and q.vm.mac else None
    guest = guest or (answer.mac if loc.what != "tap" else None) or "the guest's MAC"
    name = tap.link.name
    return "\n".join(
        [
            f"Two MACs meet at {name}:",
            f"  guest MAC {guest}: the VM's own NIC, inside the guest (QEMU's -device ...,mac=).",
            "    Every frame the VM sends carries it as source; the bridge learns it on port",
            f"    {name} because that is where those frames enter (a learnt fdb entry).",
            f"  tap MAC {tap.link.mac}: the host-side end of the cable, the {name} device itself.",
            "    The guest never uses it; the bridge lists it as a local entry of the port.",
            "Searching the fdb for the tap MAC finds the port but not the VM; searching for the",
            "guest MAC finds the VM. libvirt derives the tap MAC from the guest's with first octet",
            "fe, so that it never equals it and, being high, never becomes the bridge's own MAC",
            "(a bridge without a set MAC takes its lowest port MAC).",
        ]
    )


def _holders_cell(tap: Tap | None) -> str:
    if tap is None:
        return "-"
    if tap.owner_unknown:
        return tap.owner_unknown
    return "; ".join(
        f"QEMU pid {h.pid} fd {h.fd}" if h.qemu else f"pid {h.pid} ({h.comm}) fd {h.fd}"
        for h in tap.holders
    )


def _kind(view: HostView, index: int) -> str:
    link = view.links.get(index)
    if link is None:
        return "port"
    if link.kind == "tun":
        return link.tun_type or "tun"
    return link.kind or "port"


def _port_rows(view: HostView, ports: list[Link]) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for p in sorted(ports, key=lambda link: link.name):
        tap = view.taps.get(p.index)
        q = tap.qemu if tap else None
        vm = q.vm if q else None
        rows.append(
            (
                p.name,
                _kind(view, p.index),
                p.mac,
                p.port_state or p.oper,
                _holders_cell(tap),
                vm.vm if vm else None,
                vm.nic if vm else None,
                vm.mac if vm else None,
            )
        )
    return rows


def _behind(view: HostView, e: FdbRecord) -> str:
    tap = view.taps.get(e.port)
    if e.how == "local":
        return "the bridge itself" if e.port == e.bridge else f"the {_kind(view, e.port)} itself"
    q = tap.qemu if tap else None
    if q is not None and q.vm is not None:
        mine = q.vm.mac in (None, e.mac)
        return f"VM {q.vm.vm or '?'}'s NIC {q.vm.nic}" + ("" if mine else " (not its MAC)")
    return "-"


def show(view: HostView) -> str:
    out = [f"network namespace {view.netns} (net:[{view.inode}])"]
    port_headers = ("PORT", "KIND", "PORT MAC", "STATE", "HELD BY", "VM", "NIC", "GUEST MAC")
    for br in view.bridges:
        out += [
            "",
            f"bridge {br.link.name} (mac {br.link.mac}, {br.link.oper}), "
            f"{len(br.ports)} port(s), {len(br.fdb)} fdb entries",
        ]
        if br.ports:
            out.append(_table(port_headers, _port_rows(view, br.ports), "  "))
        rows = [
            (
                e.mac,
                view.link_name(e.port),
                e.vlan,
                e.how + (f" ({', '.join(e.flags)})" if e.flags else ""),
                age(e.updated) if e.how != "local" else None,
                _behind(view, e),
            )
            for e in sorted(br.fdb, key=lambda e: (view.link_name(e.port), e.how, e.mac))
        ]
        out += ["  fdb:", _table(("MAC", "PORT", "VLAN", "HOW", "AGE", "BEHIND"), rows, "    ")]
    loose = [t.link for t in view.taps.values() if not t.link.master]
    if loose:
        out += ["", "taps on no bridge:", _table(port_headers, _port_rows(view, loose), "  ")]
    if not view.bridges and not view.taps:
        out += ["", "no bridges and no taps here"]
    if view.notes:
        out += ["", "notes:"] + [f"  {n}" for n in view.notes]
    return "\n".join(out)
