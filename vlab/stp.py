"""Spanning tree, read from the kernel: a port's STP view, convergence, and BPDUs as noise.

The kernel's STP (802.1D, in ``net/bridge/br_stp*.c``) runs in every bridge with ``stp=True``
(inside a network namespace other than the initial one the kernel never hands STP to a
user-space helper). vlab does not model or drive it: it reads what the kernel decided.

**A port's view** (:func:`port_stp`, ``port.stp()``): the state (``IFLA_BRPORT_STATE``), the
designated root, designated bridge, designated port and designated cost the port has recorded
from the best BPDU it heard (``IFLA_BRPORT_ROOT_ID``, ``_BRIDGE_ID``, ``_DESIGNATED_PORT``,
``_DESIGNATED_COST``), its own id, number and path cost (``_ID``, ``_NO``, ``_COST``). Netlink
has no "role" attribute: the role is derived the way ``br_port_state_selection`` decides it —

    disabled     the port's state is disabled (no carrier, down, or bpdu_guard tripped)
    root         the bridge's ``IFLA_BR_ROOT_PORT`` is this port's number
    designated   the port's designated bridge and port are this bridge and this port
                 (``br_is_designated_port``): it forwards BPDUs and frames onto its segment
    alternate    another bridge is designated for the segment: the port blocks
    backup       this bridge is designated for the segment through another of its ports

**Convergence** (:func:`converge`, ``lab.converge()``): every port of an STP bridge that has
carrier is forwarding or blocking (none listening or learning), and the STP bridges that cables
join agree on one root, the lowest bridge id among them — so a bridge still claiming to be root
after losing its root port (until the stored information ages out, ``max_age``) is not taken
for settled. All of it is read from the kernel, polled every few milliseconds; nothing sleeps a
guessed time. A port walks listening -> learning -> forwarding in ``2 x forward_delay``: with
``forward_delay=2`` (the kernel's minimum) a fresh loop converges in about 4 s, and with the
default of 15 s in about 30 s. A failure whose repair needs stored information to age out first
(a bridge that lost its only path to the root and must wait to hear of another) adds
``max_age`` (6 s at least). :data:`FAST` holds the quickest timers the kernel accepts.

**BPDUs** the lab's bridges send reach every STP port, endpoints' included: they are kept in the
pcaps but out of endpoint queues (``expect``, ``frames()``, ``expect_none()``), as lab noise,
unless ``lab.keep_bpdus = True``. Frames a test sends itself are never noise, BPDU or not.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vlab.errors import LabError
from vlab.options import PORT_STATE_NAMES

if TYPE_CHECKING:
    from collections.abc import Callable

    from vlab.bridge import Bridge, Port
    from vlab.cable import Cable
    from vlab.lab import Lab
    from vlab.switch import Switch

FAST = {"stp": True, "forward_delay": 2, "hello_time": 1, "max_age": 6}
"""Bridge options for the quickest STP the kernel accepts: ``lab.bridge("br0", **FAST)``."""

STP_GROUP = bytes.fromhex("0180c2000000")
LLC_STP = b"\x42\x42\x03"

# IFLA_BRPORT_* (include/uapi/linux/if_link.h)
_STATE, _COST, _ROOT_ID, _BRIDGE_ID, _DESIGNATED_PORT, _DESIGNATED_COST, _ID, _NO = (
    1,
    3,
    13,
    14,
    15,
    16,
    17,
    18,
)
# IFLA_BR_*
_BR_ROOT_ID, _BR_BRIDGE_ID, _BR_ROOT_PORT, _BR_ROOT_PATH_COST = 10, 11, 12, 13
_BR_STP_STATE, _BR_FORWARD_DELAY, _BR_MAX_AGE = 5, 1, 3
LISTENING, LEARNING = 1, 2
USER_HZ = 100  # the unit of the kernel's STP timers over netlink (clock_t)


def bridge_id(raw: bytes) -> str:
    """``struct ifla_bridge_id`` (2 bytes priority, 6 bytes MAC) as ``bridge`` prints it:
    ``8000.02aabbccddee``."""
    if len(raw) < 8:
        return "?"
    return f"{raw[0]:02x}{raw[1]:02x}." + raw[2:8].hex()


def _u16(raw: bytes | None) -> int:
    return struct.unpack("=H", raw[:2])[0] if raw and len(raw) >= 2 else 0


def _u32(raw: bytes | None) -> int:
    return struct.unpack("=I", raw[:4])[0] if raw and len(raw) >= 4 else 0


@dataclass(frozen=True)
class StpPort:
    """What the kernel's STP holds for one port (``port.stp()``); see the module docstring for
    how ``role`` is derived, as netlink has no role attribute."""

    port: str
    bridge: str
    role: str  # root, designated, alternate, backup, disabled
    state: str  # disabled, listening, learning, forwarding, blocking
    designated_root: str  # the root bridge id this port has heard of
    designated_bridge: str  # the bridge id designated for this port's segment
    designated_port: int  # that bridge's port id on the segment
    designated_cost: int  # root path cost advertised on the segment
    port_id: int  # this port's own id (priority << 10 | number, as the kernel makes it)
    port_no: int
    cost: int  # this port's path cost
    bridge_id: str  # this port's bridge's own id
    root_port: int  # the bridge's root port number (0: the bridge believes it is root)

    def __str__(self) -> str:
        return (
            f"{self.bridge} {self.port}: {self.role} {self.state}, root {self.designated_root}, "
            f"designated {self.designated_bridge} port {self.designated_port:#x} "
            f"cost {self.designated_cost}, own cost {self.cost}"
        )


@dataclass(frozen=True)
class _BridgeStp:
    enabled: bool
    own_id: str
    root_id: str
    root_port: int
    forward_delay: float
    max_age: float


def _bridge_stp(br: Bridge) -> _BridgeStp:
    data = br.switch.rtnl.bridge_data(br.index)
    return _BridgeStp(
        enabled=_u32(data.get(_BR_STP_STATE)) != 0,
        own_id=bridge_id(data.get(_BR_BRIDGE_ID, b"")),
        root_id=bridge_id(data.get(_BR_ROOT_ID, b"")),
        root_port=_u16(data.get(_BR_ROOT_PORT)),
        forward_delay=_u32(data.get(_BR_FORWARD_DELAY)) / USER_HZ,
        max_age=_u32(data.get(_BR_MAX_AGE)) / USER_HZ,
    )


def role_of(state: int, port_no: int, port_id: int, own: str, designated: str, dport: int,
            root_port: int) -> str:  # fmt: skip
    """The role ``br_port_state_selection`` gave a port, from what netlink reports."""
    if state == 0:
        return "disabled"
    if root_port and port_no == root_port:
        return "root"
    if designated == own:
        return "designated" if dport == port_id else "backup"
    return "alternate"


def port_stp(port: Port) -> StpPort:
    """The kernel's STP view of ``port`` now (see :class:`StpPort`)."""
    br = port.bridge
    br.switch.guard.check()
    if not br.stp:
        raise LabError(
            f"port {port.name}: bridge {br.name} does not run STP; create it with stp=True "
            "(vlab.stp.FAST for the quickest timers)"
        )
    bridge = _bridge_stp(br)
    data = br.switch.rtnl.port_data(port.index)
    state = data.get(_STATE, b"\0")[0]
    port_no, port_id = _u16(data.get(_NO)), _u16(data.get(_ID))
    designated = bridge_id(data.get(_BRIDGE_ID, b""))
    dport = _u16(data.get(_DESIGNATED_PORT))
    return StpPort(
        port=port.name,
        bridge=br.name,
        role=role_of(state, port_no, port_id, bridge.own_id, designated, dport, bridge.root_port),
        state=str(PORT_STATE_NAMES.get(state, state)),
        designated_root=bridge_id(data.get(_ROOT_ID, b"")),
        designated_bridge=designated,
        designated_port=dport,
        designated_cost=_u32(data.get(_DESIGNATED_COST)),
        port_id=port_id,
        port_no=port_no,
        cost=_u32(data.get(_COST)),
        bridge_id=bridge.own_id,
        root_port=bridge.root_port,
    )


# --- convergence --------------------------------------------------------------------------


def _plugged(port: Port) -> bool:
    if port.admin_down:
        return False
    cable = getattr(port, "cable", None)
    if cable is not None:
        return bool(cable.carrier)
    return port.endpoint is None or bool(port.endpoint.carrier)


def _root_held(port: Port, state: int | None, info: dict[str, _BridgeStp]) -> bool:
    """A port ``root_block`` keeps from becoming root: the kernel puts it back to listening
    on every superior BPDU (``br_root_port_block``), so it never forwards and never blocks.
    Recognised by its option and, on a cable, by the far bridge knowing a better root."""
    if state not in (LISTENING, LEARNING) or not port.options().get("root_block"):
        return False
    cable = getattr(port, "cable", None)
    if cable is None:
        return True
    far = info.get(port.peer.bridge.name)  # type: ignore[attr-defined]
    own = info.get(port.bridge.name)
    return far is not None and own is not None and far.root_id < own.root_id


def _components(lab: Lab, joined: Callable[[Cable], bool]) -> list[list[Bridge]]:
    """Bridges joined by cables that carry BPDUs (BPDUs cross STP-less bridges too: fact 7)."""
    seen: set[str] = set()
    out = []
    for start in lab.bridges:
        if start in seen:
            continue
        group, todo = [], [start]
        seen.add(start)
        while todo:
            name = todo.pop()
            group.append(lab.bridges[name])
            for cable in lab.cables.values():
                ends = [p.bridge.name for p in cable.ports]
                if name not in ends or not joined(cable):
                    continue
                other = ends[1] if ends[0] == name else ends[0]
                if other not in seen:
                    seen.add(other)
                    todo.append(other)
        out.append(group)
    return out


def unsettled(lab: Lab) -> list[str]:
    """Why STP is not settled in ``lab`` now (empty when it is): ports still listening or
    learning (but those ``root_block`` holds), and groups of cabled STP bridges that do not
    agree on the lowest id among them as root."""
    problems = []
    states: dict[str, int] = {}
    for switch in {id(br.switch): br.switch for br in lab.bridges.values() if br.stp}.values():
        states.update(switch.links.port_states())
    info = {br.name: _bridge_stp(br) for br in lab.bridges.values() if br.stp}
    held: set[str] = set()
    for br in lab.bridges.values():
        if not br.stp:
            continue
        for port in br.ports.values():
            if not _plugged(port):
                continue
            state = states.get(port.name)
            if _root_held(port, state, info):
                held.add(port.name)
            elif state in (LISTENING, LEARNING):
                problems.append(f"{br.name} {port.name} is {PORT_STATE_NAMES[state]}")

    def joined(cable: Cable) -> bool:
        return cable.carrier and all(
            states.get(p.name, 0) != 0 and p.name not in held for p in cable.ports
        )

    for group in _components(lab, joined):
        stp = [info[br.name] for br in group if br.name in info]
        if len(stp) < 2:
            continue
        lowest = min(b.own_id for b in stp)
        for br in group:
            b = info.get(br.name)
            if b is not None and b.root_id != lowest:
                problems.append(f"{br.name} takes {b.root_id} for root, not {lowest}")
    return problems


def default_timeout(lab: Lab) -> float:
    """Long enough for the slowest STP bridge of the lab: max_age + 2 x forward_delay + 5 s."""
    worst = 0.0
    for br in lab.bridges.values():
        if br.stp:
            b = _bridge_stp(br)
            worst = max(worst, b.max_age + 2 * b.forward_delay)
    return worst + 5.0


def converge(lab: Lab, timeout: float | None) -> float:
    """Wait until STP has settled in ``lab`` (see :func:`unsettled`); returns the seconds it
    took. Raises a LabError naming what is still moving after ``timeout``."""
    start = time.monotonic()
    if timeout is None:
        timeout = default_timeout(lab)
    deadline = start + timeout
    while True:
        problems = unsettled(lab)
        if not problems:
            return time.monotonic() - start
        if time.monotonic() > deadline:
            raise LabError(
                f"STP did not converge within {timeout:g} s: {'; '.join(problems)} "
                "(a port walks listening and learning for forward_delay each; lower it to 2 s "
                "with vlab.stp.FAST, or give converge() a longer timeout)"
            )
        time.sleep(0.01)  # a poll of the kernel's state, not a guess of how long it takes


# --- BPDUs --------------------------------------------------------------------------------


def is_bpdu(frame: bytes) -> bool:
    """An 802.1D BPDU: to the STP group address, LLC DSAP/SSAP 0x42, UI frame."""
    return frame[:6] == STP_GROUP and frame[14:17] == LLC_STP


def filter_bpdus(switch: Switch) -> None:
    """Make the BPDUs of ``switch``'s bridges noise, once: called when a bridge turns STP on,
    so a lab without STP pays nothing per frame."""
    if not any(getattr(f, "bpdu_filter", False) for f in switch.noise):
        switch.noise.append(bridge_bpdu_filter(switch))


def bridge_bpdu_filter(switch: Switch) -> Callable[[bytes], bool]:
    """The noise predicate of a lab: a BPDU sent by one of its bridges' ports (its source is a
    port's own MAC), unless ``lab.keep_bpdus``. Cheap for every other frame: one compare."""

    def noise(frame: bytes) -> bool:
        if frame[:6] != STP_GROUP or switch.lab.keep_bpdus or not is_bpdu(frame):
            return False
        src = ":".join(f"{b:02x}" for b in frame[6:12])
        return any(src == p.mac for br in switch.bridges() for p in br.ports.values())

    noise.bpdu_filter = True  # type: ignore[attr-defined]
    return noise
