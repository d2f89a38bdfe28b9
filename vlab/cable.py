"""Cables between bridges: one veth whose two ends are ports of two bridges of the lab.

A cable is the multi-switch building block: ``lab.cable(br0, br1)`` makes a veth in the switch
namespace, one end a port of ``br0`` and the other a port of ``br1`` (``cable.ports``), both with
the same port options. Frames cross it like any wire; each end keeps a capture of what its bridge
received from the cable, so the lab's pcaps show every frame that crossed, in either direction,
once (BPDUs included).

Loops. Two bridges already joined (directly or through others) and cabled once more close a
loop. Without STP a loop is a broadcast storm that never ends: the first flood circles at the
speed of the CPU and starves everything else on the machine. So a cable that closes a loop is
refused unless every bridge on that loop runs STP (``stp=True``), and so is turning STP off on a
bridge that sits on a loop. There is no opt-in: a storm cannot be bounded from inside the lab
without changing what the test measures, and a test of the storm itself has nothing to assert.
"""

from __future__ import annotations

import collections
import contextlib
from typing import TYPE_CHECKING, Any

from vlab import limits, validate
from vlab.bridge import Bridge, Port
from vlab.build import check_room
from vlab.capture import PacketPort, Record
from vlab.errors import LabError
from vlab.options import encode_port

if TYPE_CHECKING:
    from vlab.lab import Lab
    from vlab.stats import LinkStats
    from vlab.switch import Switch

PCAP_KEEP = 50_000  # frames kept per cable end for the failure pcap


class CablePort(Port):
    """A bridge port that is one end of a :class:`Cable`: ``port.cable``, ``port.peer``."""

    cable: Cable

    @property
    def peer(self) -> CablePort:
        """The other end of the cable: the port of the bridge this one is cabled to."""
        a, b = self.cable.ports
        return b if self is a else a

    def detach(self) -> Port:
        """Refused: a cable end stays on its bridge (moving it could close a loop unseen)."""
        raise LabError(
            f"port {self.name} is an end of cable {self.cable.name}: unplug the cable "
            "(cable.set_carrier(False)) or make another one instead of moving its end"
        )

    def attach(self, bridge: Bridge) -> Port:
        """Refused, as :meth:`detach`."""
        return self.detach()

    def describe(self) -> str:
        """One line for the lab's topology: which cable, to which bridge and port."""
        peer = self.peer
        state = "" if self.cable.carrier else " (unplugged)"
        return f"cable {self.cable.name} to {peer.bridge.name} port {peer.name}{state}"


class _Capture:
    """What one end's bridge received from the cable, kept for the pcaps."""

    def __init__(self, port: CablePort, io: PacketPort) -> None:
        self.port = port
        self.io = io
        self.log: collections.deque[tuple[int, bool, bytes]] = collections.deque(maxlen=PCAP_KEEP)

    def pull(self) -> int:
        records: list[Record] = self.io.drain()
        self.log.extend((ts, False, data) for ts, data in records)
        return len(records)


class Cable:
    """A link between two bridges of one lab, made by :meth:`vlab.Lab.cable`.

    ``ports`` are the two bridge ports (``Port`` objects with ``set``/``options``/``stats``/
    ``stp``); ``set_carrier(False)`` pulls the cable out (both ends lose carrier and their
    bridges disable the ports, flushing what was learnt there) and ``set_carrier(True)`` plugs
    it back in.
    """

    kind = "cable"

    def __init__(self, switch: Switch, name: str, ports: tuple[CablePort, CablePort]) -> None:
        self.switch = switch
        self.lab = switch.lab
        self.name = name
        self.ports = ports
        self.carrier = True
        self._captures: list[_Capture] = []

    @property
    def bridges(self) -> tuple[Bridge, Bridge]:
        """The two bridges the cable joins, in the order given to ``lab.cable``."""
        return self.ports[0].bridge, self.ports[1].bridge

    def port(self, bridge: Bridge | str) -> CablePort:
        """The end of this cable on ``bridge``."""
        name = bridge.name if isinstance(bridge, Bridge) else bridge
        for port in self.ports:
            if port.bridge.name == name:
                return port
        raise LabError(
            f"cable {self.name} joins {self.ports[0].bridge.name} and "
            f"{self.ports[1].bridge.name}, not {name}"
        )

    def set_carrier(self, up: bool) -> None:
        """Unplug (False) or plug back (True) the cable; returns once both bridges acted.

        Both ends go administratively down, which drops carrier on both at once (a veth's
        close takes its peer's carrier too): each bridge disables its port synchronously and
        STP bridges start re-forming the tree (``lab.converge()`` waits for it).
        """
        switch = self.switch
        switch.guard.check()
        up = validate.flag(up, f"cable {self.name}: set_carrier(up)")
        with switch.guard.lock:
            for port in self.ports:
                switch.links.set_link(port.index, up=up)
                port.admin_down = not up
            self.carrier = up
            for port in self.ports:
                switch.sync_link(port.index, port.name, up)
            switch.topology_changed()

    def stats(self) -> tuple[LinkStats, LinkStats]:
        """Kernel counters of both ends (``tx_dropped`` there is a frame lost on the cable)."""
        return self.ports[0].stats(), self.ports[1].stats()

    def describe(self) -> str:
        """One line: the cable, its two ends and whether it is plugged in."""
        a, b = self.ports
        state = "" if self.carrier else ", unplugged"
        missed = self.capture_drops()
        if missed:
            state += f", its pcaps miss {missed} frame(s) the kernel dropped before vlab read them"
        return f"cable {self.name}: {a.bridge.name} {a.name} <-> {b.bridge.name} {b.name}{state}"

    def capture_drops(self) -> int:
        """Frames the cable's captures lost (their socket was full): the pcaps lack them, no
        verdict depends on them (endpoints' losses are :mod:`vlab.loss`'s)."""
        total = 0
        for c in self._captures:
            with contextlib.suppress(OSError):  # the lab is closed: nothing more to count
                total += c.io.kernel_drops()
        return total

    def capture(self, port: CablePort, io: PacketPort) -> None:
        """Keep what ``port``'s bridge receives from the cable, read from ``io``, for the pcaps."""
        self._captures.append(_Capture(port, io))

    def pull(self) -> int:
        """Read both ends' captures now (a settle does, as for endpoints); how many frames."""
        return sum(c.pull() for c in self._captures)

    def fds(self) -> list[int]:
        """The captures' fds, which a settle waits on with the endpoints'."""
        return [c.io.fileno() for c in self._captures]

    def logs(self) -> list[tuple[str, str, str, collections.deque[tuple[int, bool, bytes]]]]:
        """``(file stem, interface name, description, log)`` of each end, for the pcaps."""
        out = []
        for c in self._captures:
            peer = c.port.peer
            out.append(
                (
                    f"{self.name}-{c.port.name}",
                    f"{self.name} at {c.port.bridge.name} ({c.port.name})",
                    f"cable {self.name}: what {c.port.bridge.name} received from "
                    f"{peer.bridge.name}",
                    c.log,
                )
            )
        return out

    def __repr__(self) -> str:
        a, b = self.ports
        return f"<Cable {self.name} {a.bridge.name}:{a.name} <-> {b.bridge.name}:{b.name}>"


# --- loops --------------------------------------------------------------------------------


def _neighbours(lab: Lab, skip: str | None = None) -> dict[str, list[tuple[str, str]]]:
    """``{bridge: [(other bridge, cable name)]}`` over every cable (but ``skip``), plugged in
    or not."""
    out: dict[str, list[tuple[str, str]]] = {name: [] for name in lab.bridges}
    for cable in lab.cables.values():
        if cable.name == skip:
            continue
        a, b = (p.bridge.name for p in cable.ports)
        out[a].append((b, cable.name))
        out[b].append((a, cable.name))
    return out


def path_between(lab: Lab, a: str, b: str, skip: str | None = None) -> list[str] | None:
    """The bridges on a path of cables (but ``skip``) from ``a`` to ``b`` (both included),
    None if there is none."""
    if a == b:
        return [a]
    graph = _neighbours(lab, skip)
    came: dict[str, str] = {a: a}
    queue = collections.deque([a])
    while queue:
        here = queue.popleft()
        for other, _cable in graph.get(here, []):
            if other not in came:
                came[other] = here
                if other == b:
                    path = [b]
                    while path[-1] != a:
                        path.append(came[path[-1]])
                    return path[::-1]
                queue.append(other)
    return None


def on_loop(lab: Lab, bridge: str) -> list[str] | None:
    """A loop of bridges through ``bridge`` (first and last the same), None if it is on none.

    A cable lies on a loop when its two bridges stay joined without it.
    """
    for cable in lab.cables.values():
        a, b = (p.bridge.name for p in cable.ports)
        if bridge not in (a, b):
            continue
        if a == b:
            return [a, a]
        path = path_between(lab, b, a, skip=cable.name)
        if path is not None:
            return [a, *path]
    return None


def _loop_problem(loop: list[str], lab: Lab, what: str, off: str | None = None) -> str | None:
    """Why a loop may not be made: the bridges on it without STP (``off``: as if its STP were
    off already), or None when STP runs on every one of them."""
    without = [n for n in dict.fromkeys(loop) if n == off or not lab.bridges[n].stp]
    if not without:
        return None
    return (
        f"{what} would make a loop {' - '.join(loop)} with STP off on {', '.join(without)}: "
        "without STP a loop is a broadcast storm that never ends. Create the bridges of the "
        "loop with stp=True (then lab.converge() before sending), or leave this cable out"
    )


def check_loop(lab: Lab, a: Bridge, b: Bridge, what: str) -> None:
    """Refuse a new link between ``a`` and ``b`` (``what`` names it in the message) that would
    close a loop of links among bridges not all running STP: every link kind checks this
    before it builds anything."""
    path = path_between(lab, a.name, b.name)
    if path is None:
        return
    problem = _loop_problem([*path, a.name], lab, what)
    if problem:
        raise LabError(problem)


def check_stp_off(bridge: Bridge) -> None:
    """Refuse ``bridge.set(stp=False)`` on a bridge that sits on a loop of cables."""
    lab = bridge.lab
    loop = on_loop(lab, bridge.name)
    if loop is None:
        return
    problem = _loop_problem(loop, lab, f"stp=False on {bridge.name}", off=bridge.name)
    if problem:
        raise LabError(problem)


# --- building -----------------------------------------------------------------------------


def add_cable(lab: Lab, a: Bridge, b: Bridge, name: str | None, options: dict[str, Any]) -> Cable:
    """Build a cable (the body of :meth:`vlab.Lab.cable`); everything is checked first."""
    encode_port(options)  # validated before anything is built
    if name is None:
        n = len(lab.cables)
        while f"cable{n}" in lab.cables:
            n += 1
        name = f"cable{n}"
    problem = validate.name_problem(name)
    if problem is not None:
        raise LabError(f"cable name {problem}")
    if name in lab.cables or name in lab.endpoints or name in lab.bridges:
        raise LabError(f"cable name {name!r} is already used in this lab; pick another")
    if a is b:
        raise LabError(
            f"cable from {a.name} to itself: a bridge cabled to itself is a loop on one bridge; "
            "cable two different bridges"
        )
    check_loop(lab, a, b, f"cable {name} between {a.name} and {b.name}")
    switch = a.switch
    if b.switch is not switch:
        raise LabError(
            f"cable {name}: {a.name} and {b.name} are in different switch namespaces; a cable "
            "joins bridges of one namespace (join hypervisors with lab.vxlan)"
        )
    for br in (a, b):
        check_room(br, f"cable {name}")
    names = _port_names(lab, len(lab.cables))
    macs = (lab_mac(), lab_mac())
    with switch.rollback():
        try:
            switch.links.add_veth(names[0], 0, macs[0], a.index, names[1], macs[1], switch.ns.fd, 0)
            switch.on_undo(lambda: switch.links.delete(switch.links.index_of(names[0])))
            ia, ib = switch.links.index_of(names[0]), switch.links.index_of(names[1])
            switch.space.claim(max(ia, ib))
            switch.links.set_link(ib, master=b.index)
        except OSError as exc:
            if exc.errno in limits.FD_ERRNOS:
                raise
            raise LabError(f"cable {name} between {a.name} and {b.name}: {exc.strerror}") from None
        pa = CablePort(a, names[0], ia, None, macs[0])
        pb = CablePort(b, names[1], ib, None, macs[1])
        cable = Cable(switch, name, (pa, pb))
        pa.cable = pb.cable = cable
        a.ports[pa.name] = pa
        b.ports[pb.name] = pb
        switch.on_undo(lambda: _unregister(pa, pb))
        with switch.ns.entered():
            for port in (pa, pb):
                io = PacketPort(port.name)
                switch.own_socket(io)
                cable.capture(port, io)
        if options:
            for port in (pa, pb):
                port.set(**options)
        lab.cables[name] = cable
        switch.topology_changed()
    return cable


def _unregister(*ports: CablePort) -> None:
    for port in ports:
        port.bridge.ports.pop(port.name, None)


def _port_names(lab: Lab, start: int) -> tuple[str, str]:
    """``cabNa``/``cabNb``: the first N whose names no port of the lab has yet."""
    taken = {p for br in lab.bridges.values() for p in br.ports}
    n = start
    while f"cab{n}a" in taken or f"cab{n}b" in taken:
        n += 1
    return f"cab{n}a", f"cab{n}b"


def lab_mac() -> str:
    """A cable end's own MAC: locally administered, never an endpoint's (``fe:`` prefix)."""
    import os

    return "fe" + "".join(f":{b:02x}" for b in os.urandom(5))


# --- views --------------------------------------------------------------------------------


def drawing(lab: Lab) -> list[str]:
    """The bridges and the cables between them, as text lines (empty without cables).

    One line per cable, ``br0 [cab0a] ===cable0=== [cab0b] br1``; an unplugged cable is drawn
    ``=/ /=``. Bridges without cables are listed on their own line.
    """
    if not lab.cables:
        return []
    lines = ["cables between bridges:"]
    joined: set[str] = set()
    for cable in lab.cables.values():
        a, b = cable.ports
        wire = f"==={cable.name}===" if cable.carrier else f"=/ {cable.name} /="
        stp = ""
        if a.bridge.stp or b.bridge.stp:
            stp = "  (stp: " + ", ".join(_state(p) for p in (a, b)) + ")"
        missed = 0 if lab.closed else cable.capture_drops()
        if missed:
            stp += f"  (its pcaps miss {missed} frame(s))"
        lines.append(f"  {a.bridge.name} [{a.name}] {wire} [{b.name}] {b.bridge.name}{stp}")
        joined.update((a.bridge.name, b.bridge.name))
    alone = [name for name in lab.bridges if name not in joined]
    if alone:
        lines.append(f"  not cabled: {', '.join(alone)}")
    return lines


def _state(port: CablePort) -> str:
    """The STP state of a cable port as the kernel has it now, for the drawing."""
    from vlab.options import PORT_STATE_NAMES

    if port.bridge.lab.closed:
        return f"{port.name} ?"
    try:
        data = port.bridge.switch.rtnl.port_data(port.index)
    except (OSError, ValueError):
        return f"{port.name} ?"
    raw = data.get(1)
    return f"{port.name} {PORT_STATE_NAMES.get(raw[0], '?') if raw else '?'}"
