"""``vlab show``: the table the seed asked for, read from the kernel of a running lab.

VM / guest MAC / tap / tap MAC / bridge / port state / where the bridge learnt the MAC: the
configuration comes from the ``vlab up`` state file, everything else is asked of the kernel
through netlink inside the lab's namespaces at the moment ``show`` runs, so it shows what the
bridge really does (a MAC learnt on the wrong port, a port disabled by a lost carrier).
"""

from __future__ import annotations

import argparse
import struct
from dataclasses import dataclass

from vlab.cli.enter import enter, join_owner, open_namespaces
from vlab.cli.state import Node, RunningLab, find
from vlab.cli.table import table
from vlab.errors import LabError
from vlab.options import PORT_STATE_NAMES
from vlab.rtnl import (
    IFLA_ADDRESS,
    IFLA_IFNAME,
    IFLA_MASTER,
    IFLA_OPERSTATE,
    NTF_STICKY,
    NUD_NOARP,
    NUD_PERMANENT,
    RTM_GETLINK,
    LinkRequests,
    Rtnl,
    attrs,
    fdb_dump,
)

_IFINFO = struct.Struct("=BxHiII")
OPER = {0: "unknown", 1: "notpresent", 2: "down", 3: "lowerdown", 5: "dormant", 6: "up"}


@dataclass
class Link:
    index: int
    name: str
    mac: str
    master: int
    oper: str


def links(rtnl: Rtnl) -> dict[str, Link]:
    """Every link of the namespace by name, with its MAC, master and operational state."""
    out = {}
    for body in rtnl.dump(RTM_GETLINK, _IFINFO.pack(0, 0, 0, 0, 0)):
        (index,) = struct.unpack_from("=i", body, 4)
        a = attrs(body, _IFINFO.size)
        name = a.get(IFLA_IFNAME, b"\0").rstrip(b"\0").decode()
        mac = ":".join(f"{b:02x}" for b in a.get(IFLA_ADDRESS, b""))
        master = struct.unpack("=I", a[IFLA_MASTER])[0] if IFLA_MASTER in a else 0
        oper = OPER.get(a.get(IFLA_OPERSTATE, b"\0")[0], "?")
        out[name] = Link(index, name, mac, master, oper)
    return out


@dataclass
class Learnt:
    mac: str
    port: str
    how: str


def fdb(rtnl: Rtnl, by_index: dict[int, str]) -> dict[str, list[Learnt]]:
    """``{bridge name: entries}`` of every bridge in the namespace (own MACs left out)."""
    out: dict[str, list[Learnt]] = {}
    for mac, ifindex, master, nud, flags, _ext in fdb_dump(rtnl):
        if nud & NUD_PERMANENT or master not in by_index:
            continue
        how = "static" if nud & NUD_NOARP else "learnt"
        how += ", sticky" if flags & NTF_STICKY else ""
        out.setdefault(by_index[master], []).append(
            Learnt(mac, by_index.get(ifindex, str(ifindex)), how)
        )
    return out


def _learnt_at(node: Node, entries: list[Learnt], owner_of_port: dict[str, str]) -> str:
    for e in entries:
        if e.mac == node.mac:
            where = f"{e.port} ({owner_of_port.get(e.port, '?')}), {e.how}"
            return where if e.port == node.port else where + "  <- not its port"
    return "not learnt"


def render(lab: RunningLab, sockets: dict[str, Rtnl]) -> str:
    # every switch namespace (the lab's, and each hypervisor's) has its bridges' ports and fdb
    ns_of_bridge = {n.name: n.ns for n in lab.nodes if n.kind == "bridge"}
    spaces = sorted(set(ns_of_bridge.values()) | {"switch"})
    sw_links_of = {ns: links(sockets[ns]) for ns in spaces if ns in sockets}
    states: dict[str, int] = {}
    table_of: dict[str, list[Learnt]] = {}
    for ns, ns_links in sw_links_of.items():
        by_index = {link.index: name for name, link in ns_links.items()}
        states.update(LinkRequests(sockets[ns]).port_states())
        table_of.update(fdb(sockets[ns], by_index))
    owner_of_port = {n.port: n.name for n in lab.nodes if n.port}
    owner_of_port.update({n.peer_port: n.name for n in lab.nodes if n.peer_port})
    rows = []
    for n in lab.nodes:
        if n.kind in ("bridge", "cable"):
            continue
        sw_links = sw_links_of.get(ns_of_bridge.get(n.bridge or "", "switch"), {})
        port = sw_links.get(n.port or "")
        mac = n.mac
        if n.ifname and n.ns in sockets:  # hosts and uplinks: their NIC's MAC as it is now
            own = links(sockets[n.ns]).get(n.ifname)
            mac = own.mac if own else mac
        if port is None and n.ns in sockets and n.port in links(sockets[n.ns]):
            state = f"no port: {n.port} in {n.ns}"  # a macvtap VM, a bond, an underlay watch
        elif port is None:
            state = "gone"
        else:
            state = PORT_STATE_NAMES.get(states.get(port.name, -1), "not a port")
            if port.oper not in ("up", "unknown"):
                state += f" (link {port.oper})"
        learnt = _learnt_at(n, table_of.get(n.bridge or "", []), owner_of_port)
        rows.append(
            (n.name, n.kind, mac, n.port, port.mac if port else "-", n.bridge or "-", state, learnt)
        )
    headers = ("NODE", "KIND", "MAC", "PORT", "PORT MAC", "BRIDGE", "PORT STATE", "LEARNT AT")
    out = [f"lab {lab.name} (pid {lab.pid}, {lab.source})", "", table(headers, rows)]
    cables = [n for n in lab.nodes if n.kind == "cable"]
    if cables:
        out += ["", "cables between bridges:"]
        for n in cables:
            ends = [(n.bridge, n.port), (n.peer_bridge, n.peer_port)]
            shown = []
            for end_bridge, end_port in ends:
                end_link = sw_links.get(end_port or "")
                state = PORT_STATE_NAMES.get(states.get(end_port or "", -1), "gone")
                if end_link is not None and end_link.oper not in ("up", "unknown"):
                    state += f", link {end_link.oper}"
                shown.append(f"{end_bridge} [{end_port} {state}]")
            out.append(f"  {shown[0]} ==={n.name}=== {shown[1]}")
    for n in lab.nodes:
        if n.kind != "bridge":
            continue
        entries = sorted(table_of.get(n.name, []), key=lambda e: (e.port, e.mac))
        link = sw_links_of.get(n.ns, {}).get(n.name)
        out += ["", f"fdb of {n.name} (bridge mac {link.mac if link else n.mac}):"]
        if entries:
            rows2 = [(e.mac, e.port, owner_of_port.get(e.port, "-"), e.how) for e in entries]
            out.append(table(("MAC", "PORT", "NODE", "HOW"), rows2, indent="  "))
        else:
            out.append("  (empty: nothing learnt yet)")
    return "\n".join(out)


def add_host_options(parser: argparse.ArgumentParser) -> None:
    """``--host``/``--netns``/``--json``: inspect a real host's namespace instead of a lab."""
    from vlab.cli.where import add_show_options

    add_show_options(parser)


def show(
    pid: int | None,
    name: str | None,
    host: bool = False,
    netns: str | None = None,
    as_json: bool = False,
) -> int:
    if host or netns is not None:
        if pid is not None or name is not None:
            raise LabError("show --host inspects a namespace, not a vlab up lab: drop --pid/--lab")
        from vlab.cli.where import show_host

        return show_host(netns, as_json)
    if as_json:
        raise LabError("show --json needs --host (a running lab's table is text only)")
    lab = find(pid, name)
    fds = open_namespaces(lab)
    join_owner(lab)
    sockets = {}
    for ns, fd in fds.items():
        enter(fd, f"namespace {ns} of lab {lab.name}")
        sockets[ns] = Rtnl()  # stays bound to the namespace it was opened in
    print(render(lab, sockets))
    return 0
