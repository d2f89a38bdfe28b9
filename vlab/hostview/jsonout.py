"""The machine-readable form of an inspection, as described by ``schema.json`` (same package).

The documents are versioned by their ``schema`` field; the JSON Schema and its prose are in
docs/host-inspection.md. Everything here is built from plain values: no kernel access.
"""

from __future__ import annotations

from typing import Any

from vlab.hostview.locate import Answer, Location
from vlab.hostview.netlink import FdbRecord, Link
from vlab.hostview.views import Holder, HostView, Tap

__all__ = ["SHOW_SCHEMA", "WHERE_SCHEMA", "show_doc", "where_doc"]

SHOW_SCHEMA = "vlab.hostview.show/1"
WHERE_SCHEMA = "vlab.hostview.where/1"
Doc = dict[str, Any]


def _secs(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def fdb_doc(view: HostView, e: FdbRecord) -> Doc:
    return {
        "mac": e.mac,
        "port": view.link_name(e.port),
        "vlan": e.vlan,
        "how": e.how,
        "flags": list(e.flags),
        "updated_s": _secs(e.updated),
        "used_s": _secs(e.used),
    }


def port_doc(view: HostView, p: Link) -> Doc:
    return {
        "name": p.name,
        "index": p.index,
        "kind": p.kind or None,
        "mac": p.mac,
        "state": p.port_state,
        "oper": p.oper,
        "tap": p.index in view.taps,
    }


def holder_doc(h: Holder) -> Doc:
    vm = None
    if h.vm is not None:
        vm = {
            "vm": h.vm.vm,
            "nic": h.vm.nic,
            "model": h.vm.model,
            "mac": h.vm.mac,
            "netdev": h.vm.netdev,
        }
    return {
        "pid": h.pid,
        "fd": h.fd if h.fd >= 0 else None,
        "comm": h.comm,
        "uid": h.uid if h.uid >= 0 else None,
        "qemu": h.qemu,
        "verified": h.verified,
        "source": h.source,
        "vm": vm,
    }


def tap_doc(view: HostView, t: Tap) -> Doc:
    master = view.links.get(t.link.master) if t.link.master else None
    return {
        "name": t.link.name,
        "index": t.link.index,
        "kind": "macvtap" if t.link.kind == "macvtap" else "tap",
        "mac": t.link.mac,
        "bridge": master.name if master else None,
        "queues": t.link.tun_queues,
        "holders": [holder_doc(h) for h in t.holders],
        "owner_unknown": t.owner_unknown,
    }


def _netns(view: HostView) -> Doc:
    return {"spec": view.netns, "inode": view.inode}


def show_doc(view: HostView) -> Doc:
    return {
        "schema": SHOW_SCHEMA,
        "netns": _netns(view),
        "uid": view.uid,
        "bridges": [
            {
                "name": br.link.name,
                "index": br.link.index,
                "mac": br.link.mac,
                "oper": br.link.oper,
                "ports": [port_doc(view, p) for p in br.ports],
                "fdb": [fdb_doc(view, e) for e in br.fdb],
            }
            for br in view.bridges
        ],
        "taps": [tap_doc(view, t) for t in view.taps.values()],
        "notes": list(view.notes),
    }


def location_doc(view: HostView, loc: Location) -> Doc:
    return {
        "what": loc.what,
        "bridge": loc.bridge.name if loc.bridge else None,
        "port": loc.port.name if loc.port else None,
        "port_kind": (loc.port.kind or None) if loc.port else None,
        "fdb": fdb_doc(view, loc.entry) if loc.entry else None,
        "tap": tap_doc(view, loc.tap) if loc.tap else None,
    }


def where_doc(view: HostView, answer: Answer, line: str) -> Doc:
    return {
        "schema": WHERE_SCHEMA,
        "mac": answer.mac,
        "found": answer.found,
        "netns": _netns(view),
        "answer": line,
        "locations": [location_doc(view, loc) for loc in answer.locations],
        "notes": list(view.notes),
    }
