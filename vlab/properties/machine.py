"""A stateful property test of the bridge: the kernel and :class:`BridgeModel`, step by step.

:class:`ForwardingMachine` sends generated frames from generated endpoints into a real Linux bridge
and, after every send, checks that exactly the endpoints the reference model names received the
frame, each exactly once, and every other endpoint nothing. Between sends it reconfigures ports and
the bridge, edits the fdb and pulls cables, applying each change to both sides and comparing the
forwarding databases. ``TestBridge = ForwardingMachine.TestCase`` turns it into a test.

Speed is the design constraint (hundreds of steps per second), which decides most of the shape:

- one lab per test run, built by the first example and reset between examples (fdb flush, static
  entries deleted, changed ports and bridge options put back, queues drained), never rebuilt;
- a step is one frame write, one :meth:`Lab.settle` and a byte comparison of what the endpoints'
  queues hold, with no scapy parsing and no netlink beyond the settle; the fdb is dumped only
  after a reconfiguration or when the model says a send changed it;
- frames are generated as bytes around symbolic addresses (``vm1.mac``, ``h1.port_mac``), so the
  same draw means the same thing in every lab and in the saved reproducer.

Endpoint and bridge MACs are pinned (``vm1`` is 52:54:00:00:00:01...), which makes a failure
replayable on a fresh lab. On a failure, the final (shrunk) example is turned into a pytest test
and a scenario file; both state what the *model* expects, so against the kernel they fail at the
step where the machine failed. Not exercised: ageing (see :meth:`ForwardingMachine.fdb_flush`).
"""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import socket
import struct
import tempfile
import textwrap
import time
import unittest
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeAlias

import pytest
from hypothesis import note
from hypothesis import settings as Settings
from hypothesis import strategies as st
from hypothesis.control import current_build_context
from hypothesis.errors import InvalidArgument
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    rule,
    run_state_machine_as_test,
)
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Packet, Raw

from vlab import profiles
from vlab.bridge import Bridge
from vlab.endpoints import Endpoint
from vlab.errors import LabError
from vlab.frames import summary
from vlab.lab import Lab
from vlab.model import LINK_LOCAL, PARSED_ETHERTYPES, BridgeModel, OptionValue
from vlab.model import FdbEntry as ModelEntry
from vlab.scenario import dump_scenario
from vlab.scenario import model as sc
from vlab.scenario.from_frames import frame_spec
from vlab.strategies import TAG_ETHERTYPES, port_options

BRIDGE = "br0"
BRIDGE_MAC = "02:00:00:00:00:fe"
OTHER_MACS = ("02:00:00:00:aa:01", "02:00:00:00:aa:02", "02:00:00:00:aa:03")
"""Unicast MACs no endpoint owns: sources that roam between ports, destinations to learn."""
UNKNOWN_MAC = "02:00:00:00:bb:01"
"""Never a source: a destination that stays unknown unicast (flooded) whatever was learnt."""
MULTICAST_MACS = ("01:00:5e:00:00:01", "33:33:00:00:00:01", "01:80:c2:00:00:10")
BROADCAST = "ff:ff:ff:ff:ff:ff"
MTU_PAYLOAD = 1500
FDB_CHECK_EVERY = 8
DEFAULT_PORT: dict[str, OptionValue] = {
    "learning": True,
    "flood": True,
    "mcast_flood": True,
    "bcast_flood": True,
    "isolated": False,
    "hairpin": False,
    "locked": False,
    "mab": False,
    "proxy_arp": False,
    "group_fwd_mask": 0,
}
BRIDGE_DEFAULTS: dict[str, OptionValue] = {
    "group_fwd_mask": 0,
    "no_linklocal_learn": False,
    "fdb_max_learned": 0,
    "multicast_snooping": True,
}
"""Bridge options the machine changes at run time, with the values a reset restores."""

Options: TypeAlias = dict[str, OptionValue]


# --- what the machine does, as data (the reproducer is written from these) -----------------


@dataclass(frozen=True)
class FrameDraw:
    """A generated frame whose MACs may be references (``vm1.mac``, ``h1.port_mac``, ``br0.mac``).

    References keep draws meaningful across labs and readable in the printed steps; the payload
    is shown by length only, since the reproducer (not this repr) is what gets replayed.
    """

    src: str
    dst: str
    ethertype: int
    payload: bytes = b""
    vlan: int | None = None
    """The 802.1Q TCI (PCP, DEI and VID), or None for an untagged frame."""

    def to_bytes(self, resolve: Callable[[str], bytes]) -> bytes:
        tag = b"" if self.vlan is None else struct.pack("!HH", 0x8100, self.vlan)
        head = resolve(self.dst) + resolve(self.src) + tag
        return head + struct.pack("!H", self.ethertype) + self.payload

    def __repr__(self) -> str:
        # valid Python, so hypothesis prints it rather than the byte string it was decoded from
        vlan = "" if self.vlan is None else f", vlan={self.vlan:#06x}"
        payload = f", payload_len={len(self.payload)}" if self.payload else ""
        return (
            f"FrameDraw(src={self.src!r}, dst={self.dst!r}, ethertype={self.ethertype:#06x}"
            f"{vlan}{payload})"
        )


@dataclass(frozen=True)
class Sent:
    """A send as it happened: the exact bytes and the endpoints the model said receive them.

    These records (and the ones below) carry the model's verdicts, so a reproducer can assert
    the model's expectations without re-running the model.
    """

    sender: str
    data: bytes
    expected: frozenset[str]


@dataclass(frozen=True)
class PortChange:
    at: str
    options: tuple[tuple[str, OptionValue], ...]
    accepted: bool
    """The model's verdict: a change it refuses must be refused by the kernel too."""


@dataclass(frozen=True)
class BridgeChange:
    options: tuple[tuple[str, OptionValue], ...]


@dataclass(frozen=True)
class FdbAdd:
    mac: str
    at: str
    static: bool
    sticky: bool
    accepted: bool


@dataclass(frozen=True)
class FdbDel:
    mac: str
    at: str
    accepted: bool


@dataclass(frozen=True)
class FdbFlush:
    pass


@dataclass(frozen=True)
class Carrier:
    at: str
    up: bool


Op: TypeAlias = Sent | PortChange | BridgeChange | FdbAdd | FdbDel | FdbFlush | Carrier


@dataclass(frozen=True)
class MachineTopology:
    """The lab a machine runs on: endpoint counts and bridge options (STP is switched on last,
    once every port forwards, as the model assumes)."""

    vms: int = 3
    hosts: int = 1
    uplink: bool = True
    bridge: tuple[tuple[str, OptionValue], ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.vms <= 16 or not 0 <= self.hosts <= 16:
            raise LabError("a forwarding machine takes 0-16 VMs and 0-16 hosts")
        if len(self.names()) < 2:
            raise LabError("a forwarding machine needs at least two endpoints to forward between")

    @property
    def stp(self) -> bool:
        return bool(dict(self.bridge).get("stp", False))

    def names(self) -> tuple[str, ...]:
        vms = tuple(f"vm{i}" for i in range(1, self.vms + 1))
        hosts = tuple(f"h{i}" for i in range(1, self.hosts + 1))
        return vms + hosts + (("uplink",) if self.uplink else ())

    def kind(self, name: str) -> str:
        return "vm" if name.startswith("vm") else "host" if name.startswith("h") else "uplink"

    def mac(self, name: str) -> str:
        """The pinned MAC of an endpoint: replays on a fresh lab see the same addresses."""
        kind = self.kind(name)
        if kind == "vm":
            return f"52:54:00:00:00:{int(name[2:]):02x}"
        if kind == "host":
            return f"02:00:00:00:01:{int(name[1:]):02x}"
        return "02:00:00:00:02:01"


@dataclass(frozen=True)
class Failure:
    """The final, shrunk failing example: what went wrong and how to replay it."""

    message: str
    ops: tuple[Op, ...]
    test_source: str
    scenario: sc.Scenario
    scenario_path: Path | None

    @property
    def steps(self) -> int:
        return len(self.ops)


# --- the live lab, kept across examples ------------------------------------------------------


def _mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


class LiveLab:
    """A lab built once per test run and reset, not rebuilt, between examples.

    Resetting costs a few netlink requests; building costs tens of milliseconds and would
    otherwise dominate shrinking, which replays hundreds of short examples.
    """

    def __init__(self, topology: MachineTopology) -> None:
        self.topology = topology
        self.lab = Lab(name="forwarding-machine")
        try:
            self._build()
        except BaseException:
            self.lab.close()
            raise

    def _build(self) -> None:
        options = dict(self.topology.bridge)
        stp = bool(options.pop("stp", False))
        self.br: Bridge = self.lab.bridge(BRIDGE, mac=BRIDGE_MAC, **options)
        self.endpoints: dict[str, Endpoint] = {}
        for name in self.topology.names():
            mac = self.topology.mac(name)
            kind = self.topology.kind(name)
            if kind == "vm":
                ep: Endpoint = self.lab.vm(name, bridge=self.br, mac=mac)
            elif kind == "host":
                ep = self.lab.host(name, bridge=self.br, mac=mac)
            else:
                ep = self.lab.uplink(self.br, mac=mac, name=name)
            self.endpoints[name] = ep
        self.lab._ready()
        if stp:  # after every port forwards: they stay forwarding (fact 10)
            self.br.set(stp=True)
        by_port = {ep.port: name for name, ep in self.endpoints.items()}
        self.port_macs = {name: self.br.port(ep).mac for name, ep in self.endpoints.items()}
        self.refs: dict[str, str] = {f"{BRIDGE}.mac": BRIDGE_MAC}
        for name, ep in self.endpoints.items():
            self.refs[f"{name}.mac"] = ep.mac
            self.refs[f"{name}.port_mac"] = self.port_macs[name]
        self._bytes = {ref: _mac_bytes(mac) for ref, mac in self.refs.items()}
        self.names_of = {mac: ref for ref, mac in self.refs.items()}
        self.local_macs = frozenset(_mac_bytes(m) for m in (BRIDGE_MAC, *self.port_macs.values()))
        self.port_of = by_port
        self.bridge_options = {
            k: dict(self.topology.bridge).get(k, v) for k, v in BRIDGE_DEFAULTS.items()
        }
        self.dirty_ports: set[str] = set()
        self.dirty_bridge = False
        self.down: set[str] = set()

    def resolve(self, ref: str) -> bytes:
        found = self._bytes.get(ref)
        if found is None:
            found = self._bytes[ref] = _mac_bytes(ref)
        return found

    def kernel_emitted(self, data: bytes) -> bool:
        """An LLC frame from the bridge's own MACs: a BPDU the bridge sent, not test traffic.

        Generated frames always carry an ethertype (>= 0x0600), so this never hides one.
        """
        return data[12:14] < b"\x06\x00" and data[6:12] in self.local_macs

    def set_carrier(self, name: str, up: bool) -> None:
        """Change a cable; the lab returns once the bridge port has acted on it."""
        ep = self.endpoints[name]
        ep.set_carrier(up)
        if up:
            self.down.discard(name)
            return
        self.down.add(name)
        # a packet socket whose link goes down gets ENETDOWN queued as its error, which the next
        # drain would raise; reading SO_ERROR clears it without touching queued frames
        sock = getattr(ep._io, "sock", None)
        if sock is not None:
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)

    def reset(self) -> None:
        """Back to the state every example starts from; the model is simply made anew."""
        for name in sorted(self.down):
            self.set_carrier(name, True)
        for name in sorted(self.dirty_ports):
            defaults = dict(DEFAULT_PORT)
            if not self.topology.stp:
                defaults["state"] = "forwarding"
            self.br.port(self.endpoints[name]).set(**defaults)
        self.dirty_ports.clear()
        if self.dirty_bridge:
            self.br.set(**self.bridge_options)
            self.dirty_bridge = False
        self.br.fdb_flush()
        for entry in self.br.fdb_entries():
            if not entry.local:
                self.br.fdb_del(entry.mac, entry.port)
        self.lab.settle()
        for ep in self.endpoints.values():
            ep.clear()

    def fdb(self) -> dict[str, tuple[str, str]]:
        """``{mac: (endpoint, how)}`` of the kernel's non-local entries."""
        return {
            e.mac: (self.port_of[e.port], e.how)
            for e in self.br.fdb_entries()
            if not e.local and e.port in self.port_of
        }

    def close(self) -> None:
        self.lab.close()


def _model_how(entry: ModelEntry) -> str:
    if entry.locked:
        return "locked"
    return ("static" if entry.static else "learnt") + (", sticky" if entry.sticky else "")


# --- drawing steps ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """One drawn step: a machine method and its arguments; prints as that call would read."""

    method: str
    args: tuple[tuple[str, Any], ...]

    def __repr__(self) -> str:
        return f"{self.method}({', '.join(f'{k}={v!r}' for k, v in self.args)})"


def _port_changes(stp: bool) -> list[dict[str, OptionValue]]:
    """Port-option changes, one flag each; a step merges two (hairpin + isolated...)."""
    changes: list[dict[str, OptionValue]] = [{}]
    for flag in ("hairpin", "isolated", "learning", "flood", "mcast_flood", "bcast_flood",
                 "locked", "proxy_arp"):  # fmt: skip
        changes += [{flag: not DEFAULT_PORT[flag]}, {flag: DEFAULT_PORT[flag]}]
    changes += [{"locked": True, "mab": True}, {"mab": False}]
    changes += [{"group_fwd_mask": m} for m in (0x1, 0x4, 0x8, 0x4000, 0xFFFD, 0)]
    if not stp:
        states = ("disabled", "learning", "listening", "blocking", "forwarding")
        changes += [{"state": s} for s in states]
    return changes


BRIDGE_CHANGES: list[dict[str, OptionValue]] = [
    *({"group_fwd_mask": m} for m in (0x8, 0x4000, 0x4008, 0xFFF8, 0)),  # type: ignore[list-item]
    {"no_linklocal_learn": True},
    {"no_linklocal_learn": False},
    *({"fdb_max_learned": n} for n in (1, 2, 4, 0)),  # type: ignore[list-item]
    {"multicast_snooping": False},
    {"multicast_snooping": True},
]
_UNMODELLED = frozenset({*TAG_ETHERTYPES, *PARSED_ETHERTYPES})
STEP_KINDS = (
    (160, "send"),
    (192, "set_port"),
    (204, "set_bridge"),
    (222, "fdb_add"),
    (234, "fdb_del"),
    (242, "fdb_flush"),
    (256, "carrier"),
)
"""What the first byte of a step chooses (below each bound): 5 steps in 8 send."""


def _weighted(*groups: tuple[int, list[str]]) -> list[str]:
    """A lookup table where each item of a group appears ``weight`` times, simplest first."""
    return [item for weight, items in groups for item in items for _ in range(weight)]


class StepDecoder:
    """Turns one drawn byte string into one step.

    Hypothesis charges tens of microseconds per primitive draw and ~150 us per ``one_of``,
    while the kernel needs ~0.4 ms per checked send: a frame drawn field by field (or with
    :func:`vlab.strategies.frames`, ~2 ms) would cost more than the bridge. So a step is a single
    ``binary`` draw: a 10-byte header choosing the operation and its arguments from tables, and
    the rest as payload. Shrinking bytes towards zero and the string towards short moves every
    choice towards the front of its table (a send, between VMs, untagged, empty payload).
    """

    HEADER = 10

    def __init__(self, topology: MachineTopology) -> None:
        names = list(topology.names())
        own = [f"{n}.mac" for n in names]
        ports = [f"{BRIDGE}.mac", *(f"{n}.port_mac" for n in names)]
        self.names = names
        self.stp = topology.stp
        self.sources = _weighted((4, own), (3, list(OTHER_MACS)), (1, ports))
        self.targets = _weighted(
            (4, own),
            (3, list(OTHER_MACS)),
            (3, [UNKNOWN_MAC]),
            (6, [BROADCAST]),
            (1, list(MULTICAST_MACS)),
            (1, list(LINK_LOCAL)),
            (1, ports),
        )
        self.fdb_macs = own + list(OTHER_MACS)
        self.port_changes = _port_changes(topology.stp)

    def __call__(self, blob: bytes) -> Action:
        kind = next(name for bound, name in STEP_KINDS if blob[0] < bound)
        if kind == "carrier" and self.stp:
            kind = "send"
        a, b, c = blob[1:4]
        if kind == "send":
            return self._send(blob)
        if kind == "set_port":
            changes = self.port_changes
            options = {**changes[b % len(changes)], **changes[c % len(changes)]}
            return Action(kind, (("at", self._pick(self.names, a)), ("options", options)))
        if kind == "set_bridge":
            return Action(kind, (("options", dict(self._pick(BRIDGE_CHANGES, a))),))
        if kind == "fdb_add":
            mac, at = self._pick(self.fdb_macs, a), self._pick(self.names, b)
            flags = (("static", not c & 1), ("sticky", bool(c & 2)))
            return Action(kind, (("mac", mac), ("at", at), *flags))
        if kind == "fdb_del":
            at = None if b < 128 else self._pick(self.names, b)
            return Action(kind, (("mac", self._pick(self.fdb_macs, a)), ("at", at)))
        if kind == "fdb_flush":
            return Action(kind, ())
        return Action(kind, (("at", self._pick(self.names, a)), ("up", bool(b & 1))))

    def _send(self, blob: bytes) -> Action:
        _kind, a, b, c, d, e, f, g, h = blob[:9]
        ethertype = 0x0600 + ((d << 8 | e) % 0xFA00)
        frame = FrameDraw(
            src=self._pick(self.sources, b),
            dst=self._pick(self.targets, c),
            ethertype=0x88B5 if ethertype in _UNMODELLED else ethertype,
            payload=blob[self.HEADER :],
            vlan=(g << 8 | h) if f >= 128 else None,
        )
        return Action("send", (("sender", self._pick(self.names, a)), ("frame", frame)))

    @staticmethod
    def _pick(table: list[Any], byte: int) -> Any:
        return table[byte % len(table)]


def _steps(machine: ForwardingMachine) -> st.SearchStrategy[Action]:
    return machine.strategies()[0]


def _initial_ports(machine: ForwardingMachine) -> st.SearchStrategy[dict[str, Any]]:
    return machine.strategies()[1]


_STEP = st.runner().flatmap(_steps)
_INITIAL_PORTS = st.runner().flatmap(_initial_ports)


def _pin_to_one_cpu() -> set[int] | None:
    """Keep this thread on the CPU it is on; return the affinity to restore afterwards.

    A frame written to a tap or a packet socket is forwarded in softirq context on the writing
    CPU (RPS is off in lab namespaces), synchronously or by that CPU's ksoftirqd, which cannot
    be mid-frame while this thread runs there. Pinned, :meth:`Lab.settle`'s cross-CPU barrier
    becomes a yield: measured 0.11-0.17 ms instead of 0.7 ms per step with the two CPUs busy
    with other work, where migrating onto a busy CPU waits for a time slice.
    """
    allowed = os.sched_getaffinity(0)
    if len(allowed) == 1:
        return None
    try:
        with open("/proc/thread-self/stat", "rb") as fh:
            cpu = int(fh.read().rsplit(b")", 1)[1].split()[36])
    except (OSError, IndexError, ValueError):
        cpu = min(allowed)
    os.sched_setaffinity(0, {cpu if cpu in allowed else min(allowed)})
    return allowed


def _is_final() -> bool:
    """Whether hypothesis is replaying the final, shrunk example (or no test is running)."""
    try:
        return bool(current_build_context().is_final)
    except InvalidArgument:
        return True


# --- the machine -----------------------------------------------------------------------------


class _TestCaseProperty:
    """``Machine.TestCase``: a unittest case using the ``--vlab-profile`` settings, marked
    ``vlab`` (skipped without ``--vlab``), that closes the machine's lab when it ends."""

    def __get__(self, obj: object, owner: type[ForwardingMachine]) -> type[unittest.TestCase]:
        cached = owner.__dict__.get("_test_case")
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        machine = owner

        class MachineTestCase(unittest.TestCase):
            settings = profiles.active()
            pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.vlab]

            def runTest(self) -> None:
                run_machine(machine, settings=self.settings)

        MachineTestCase.runTest.is_hypothesis_test = True  # type: ignore[attr-defined]
        MachineTestCase.__name__ = owner.__name__ + ".TestCase"
        MachineTestCase.__qualname__ = owner.__qualname__ + ".TestCase"
        type.__setattr__(owner, "_test_case", MachineTestCase)
        return MachineTestCase


class ForwardingMachine(RuleBasedStateMachine):
    """Frames through a real bridge against :attr:`model_class`, checked after every send.

    Customise by subclassing (``model_class = MyModel``) or with :meth:`with_topology`.
    """

    model_class: ClassVar[type[BridgeModel]] = BridgeModel
    topology: ClassVar[MachineTopology] = MachineTopology()
    generated_port_options: ClassVar[bool] = False
    """Start every example with port options drawn from :func:`vlab.strategies.port_options`."""
    repro_dir: ClassVar[Path | None] = None
    """Where reproducer scenarios go; ``$VLAB_REPRO_DIR`` wins, else a fresh temp directory."""
    last_failure: ClassVar[Failure | None] = None
    stats: ClassVar[dict[str, float]] = {"sends": 0, "send_s": 0.0, "settle_s": 0.0}
    """Checked sends since the process started, and the seconds spent in them and in settling
    (what a benchmark needs to tell the kernel's share of a step from hypothesis's)."""

    _labs: ClassVar[dict[MachineTopology, LiveLab]] = {}
    _strategy_cache: ClassVar[dict[tuple[MachineTopology, bool], tuple[Any, Any]]] = {}
    TestCase = _TestCaseProperty()  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.failure: Failure | None = None  # set on the final example only
        self._affinity = _pin_to_one_cpu()
        try:
            self.live = self.live_lab()
            self.live.reset()
        except BaseException:
            self.teardown()
            raise
        self.model = self.model_class(BRIDGE_MAC, self.live.port_macs, **dict(self.topology.bridge))
        self.initial: dict[str, Options] = {}
        self.ops: list[Op] = []
        self._fdb_seen = self.model.fdb()

    def teardown(self) -> None:
        """Give the thread its CPUs back (hypothesis calls this after every example), and print
        the reproducer of a final failing example here, after hypothesis has listed its steps."""
        if self._affinity is not None:
            os.sched_setaffinity(0, self._affinity)
        failure = self.failure
        if failure is not None:
            where = f"\nscenario file: {failure.scenario_path}" if failure.scenario_path else ""
            note(f"reproducer ({failure.steps} steps):\n\n{failure.test_source}{where}")

    # --- class-level plumbing ----------------------------------------------------------------

    @classmethod
    def live_lab(cls) -> LiveLab:
        """This topology's lab, built on first use and kept until :meth:`close_labs`."""
        live = ForwardingMachine._labs.get(cls.topology)
        if live is None:
            live = ForwardingMachine._labs[cls.topology] = LiveLab(cls.topology)
        return live

    @classmethod
    def close_labs(cls) -> None:
        """Close every cached lab (their namespaces vanish with the fds)."""
        labs = ForwardingMachine._labs
        while labs:
            labs.popitem()[1].close()

    @classmethod
    def strategies(
        cls,
    ) -> tuple[st.SearchStrategy[Action], st.SearchStrategy[dict[str, dict[str, object]]]]:
        """Steps and starting port options for this class's topology (built once per class)."""
        key = (cls.topology, cls.generated_port_options)
        found = ForwardingMachine._strategy_cache.get(key)
        if found is None:
            decoder = StepDecoder(cls.topology)
            size = StepDecoder.HEADER
            steps = st.binary(min_size=size, max_size=size + MTU_PAYLOAD).map(decoder)
            initial: st.SearchStrategy[dict[str, dict[str, object]]] = st.just({})
            if cls.generated_port_options:
                options = port_options(state=not cls.topology.stp)
                initial = st.fixed_dictionaries({n: options for n in cls.topology.names()})
            found = ForwardingMachine._strategy_cache[key] = (steps, initial)
        return found  # type: ignore[no-any-return]

    @classmethod
    def with_topology(
        cls,
        vms: int = 3,
        hosts: int = 1,
        uplink: bool = True,
        bridge_options: Mapping[str, OptionValue] | None = None,
        port_options: bool = False,
        model_class: type[BridgeModel] | None = None,
        name: str | None = None,
    ) -> type[ForwardingMachine]:
        """A subclass on another lab: ``ForwardingMachine.with_topology(port_options=True)``.

        ``port_options=True`` starts each example from generated port options (hairpin,
        isolated, locked...) instead of the defaults.
        """
        options = tuple(sorted((bridge_options or {}).items()))
        topology = MachineTopology(vms, hosts, uplink, options)
        attrs: dict[str, Any] = {
            "topology": topology,
            "generated_port_options": port_options,
            "model_class": model_class or cls.model_class,
            "__module__": cls.__module__,
        }
        return type(name or f"{cls.__name__}Variant", (cls,), attrs)

    # --- steps ---------------------------------------------------------------------------

    @initialize(options=_INITIAL_PORTS)
    def configure_ports(self, options: dict[str, dict[str, object]]) -> None:
        """Generated starting port options (a no-op unless ``generated_port_options``)."""
        for name, opts in options.items():
            if opts:
                self.initial[name] = dict(opts)  # type: ignore[arg-type]
                self._set_port(name, self.initial[name], initial=True)

    @rule(action=_STEP)
    def step(self, action: Action) -> None:
        """The machine's one rule: a send (5 in 8) or a reconfiguration, see :class:`StepDecoder`.

        One rule rather than one per operation: hypothesis's swarm testing switches rules off
        per example, which with a separate send rule left about half the examples without a
        single send, and costs a draw per rule considered on every step.
        """
        getattr(self, action.method)(**dict(action.args))

    def send(self, sender: str, frame: FrameDraw) -> None:
        """A frame in at ``sender``: exactly the model's receivers get it, each exactly once."""
        live = self.live
        if sender in live.down and live.topology.kind(sender) != "vm":
            return  # a host with its link down cannot transmit at all (ENETDOWN)
        started = time.perf_counter()
        data = frame.to_bytes(live.resolve)
        expected = frozenset(self.model.deliver(sender, data))
        self._record(Sent(sender, data, expected))
        live.endpoints[sender].send(data)
        settling = time.perf_counter()
        live.lab.settle()
        stats = ForwardingMachine.stats
        stats["settle_s"] += time.perf_counter() - settling
        wrong = []
        for name, ep in live.endpoints.items():
            pending = ep._pending
            if not pending:
                if name in expected:
                    wrong.append(f"{name}: nothing arrived, the model expects the frame")
                continue
            frames = [d for _ts, d in pending if not live.kernel_emitted(d)]
            pending.clear()
            copies = frames.count(data)
            others = len(frames) - copies
            want = 1 if name in expected else 0
            if copies != want or others:
                extra = f" and {others} other frame(s)" if others else ""
                wrong.append(f"{name}: got {copies} cop{'y' if copies == 1 else 'ies'}{extra}, "
                             f"the model expects {want}")  # fmt: skip
        stats["sends"] += 1
        stats["send_s"] += time.perf_counter() - started
        if wrong:
            self._fail(
                f"{sender} sent {summary(data)}; model receivers: "
                f"{', '.join(sorted(expected)) or 'none'}\n  " + "\n  ".join(wrong)
            )
        # the fdb is dumped when the model says this send changed it, and every few sends for
        # what the kernel learnt on its own (a dump costs about half a settle)
        if len(self.ops) % FDB_CHECK_EVERY == 0 or self.model.fdb() != self._fdb_seen:
            self._check_fdb()

    def set_port(self, at: str, options: Options) -> None:
        """Port flags and manual states (STP off), applied to both or refused by both."""
        self._set_port(at, options)

    def set_bridge(self, options: Options) -> None:
        """Bridge options that change forwarding of non-IP frames without needing time."""
        self._record(BridgeChange(tuple(options.items())))
        self.live.dirty_bridge = True
        self.model.set(**options)
        self._kernel(lambda: self.live.br.set(**options))
        self._check_fdb()

    def fdb_add(self, mac: str, at: str, static: bool, sticky: bool) -> None:
        """A user entry (static, sticky or dynamic), replacing any entry for the MAC."""
        address = self.live.refs.get(mac, mac)
        accepted = self._model_accepts(lambda: self.model.fdb_add(address, at, static, sticky))
        self._record(FdbAdd(mac, at, static, sticky, accepted))
        self._both(
            accepted,
            lambda: self.live.br.fdb_add(address, self.live.endpoints[at], static, sticky),
            f"fdb_add {address} at {at} (static={static}, sticky={sticky})",
        )
        self._check_fdb()

    def fdb_del(self, mac: str, at: str | None) -> None:
        """Delete at the port the model has the MAC on (``at=None``) or at a drawn one; the
        kernel deletes only at the entry's own port (ENOENT elsewhere)."""
        address = self.live.refs.get(mac, mac)
        entry = self.model.entries().get(address)
        if at is None:
            if entry is None:
                return
            at = entry.port
        where = at
        accepted = entry is not None and entry.port == at
        self._record(FdbDel(mac, at, accepted))
        if accepted:
            self.model.fdb_del(address)
        self._both(
            accepted,
            lambda: self.live.br.fdb_del(address, self.live.endpoints[where]),
            f"fdb_del {address} at {at}",
        )
        self._check_fdb()

    def fdb_flush(self) -> None:
        """Forget dynamic entries. This is the machine's only way of forgetting: ageing needs
        wall-clock time (the kernel's gc runs ageing_time after the last frame, with jitter), so
        an ageing step would either sleep for a large share of a run or race the gc at the
        boundary; ageing is covered by scenarios with short timers instead."""
        self._record(FdbFlush())
        self.model.fdb_flush()
        self._kernel(self.live.br.fdb_flush)
        self._check_fdb()

    def carrier(self, at: str, up: bool) -> None:
        """Pull or plug an endpoint's cable (never drawn with STP on: a returning port then walks
        listening -> learning for seconds, which the machine cannot wait for cheaply)."""
        if (at in self.live.down) != up:
            return
        self._record(Carrier(at, up))
        self.model.set_carrier(at, up)
        self._kernel(lambda: self.live.set_carrier(at, up))
        self._check_fdb()

    # --- helpers ---------------------------------------------------------------------------

    def _set_port(self, at: str, opts: Options, initial: bool = False) -> None:
        accepted = self._model_accepts(lambda: self.model.set_port(at, **opts))
        if not initial:
            self._record(PortChange(at, tuple(opts.items()), accepted))
        self.live.dirty_ports.add(at)
        port = self.live.br.port(self.live.endpoints[at])
        self._both(accepted, lambda: port.set(**opts), f"set port {at} {opts}")

    def _record(self, op: Op) -> None:
        self.ops.append(op)

    @staticmethod
    def _model_accepts(change: Callable[[], None]) -> bool:
        try:
            change()
        except LabError:
            return False
        return True

    def _kernel(self, change: Callable[[], object]) -> None:
        try:
            change()
        except LabError as exc:
            self._fail(f"the kernel refused what the model accepts: {exc}", "acceptance")

    def _both(self, accepted: bool, change: Callable[[], object], what: str) -> None:
        """Apply ``change`` to the kernel, which must agree with the model's verdict."""
        if accepted:
            self._kernel(change)
            return
        try:
            change()
        except LabError:
            return
        self._fail(f"{what}: the kernel accepted what the model refuses", "acceptance")

    def _check_fdb(self) -> None:
        model = {mac: (e.port, _model_how(e)) for mac, e in self.model.entries().items()}
        kernel = self.live.fdb()
        self._fdb_seen = self.model.fdb()
        if model == kernel:
            return
        lines = []
        for mac in sorted(model.keys() | kernel.keys()):
            m, k = model.get(mac), kernel.get(mac)
            if m != k:
                lines.append(f"{mac}: model {m or 'absent'}, kernel {k or 'absent'}")
        self._fail("fdb differs from the model's at " + "; ".join(lines), "fdb")

    def _fail(self, message: str, kind: str = "delivery") -> None:
        """Raise the failure; on the final example also print and save its reproducer."""
        if self.failure is None and _is_final():
            self.failure = reproduce(self, message, kind)
            type(self).last_failure = self.failure
        raise AssertionError(message)


def run_machine(machine: type[ForwardingMachine], settings: Settings | None = None) -> None:
    """Run ``machine`` as one test (``--vlab-profile`` settings by default); close its lab after."""
    chosen = settings or getattr(machine.TestCase, "settings", None) or profiles.active()
    try:
        run_state_machine_as_test(machine, settings=chosen)  # type: ignore[no-untyped-call]
    finally:
        machine.close_labs()


atexit.register(ForwardingMachine.close_labs)


# --- reproducers -----------------------------------------------------------------------------


class _Writer:
    """Turns a failing example's operations into a pytest test and a scenario, side by side."""

    def __init__(self, machine: ForwardingMachine, message: str, kind: str) -> None:
        self.machine = machine
        self.live = machine.live
        self.topology = machine.topology
        self.message = message
        self.kind = kind
        self.names = dict(self.live.names_of)  # MAC -> reference, e.g. "vm1.mac"
        self.code: list[str] = []
        self.needs: set[str] = set()

    # pytest -------------------------------------------------------------------------------

    def mac_code(self, mac: str) -> str:
        ref = self.names.get(mac)
        if ref is None:
            return f'"{mac}"'
        owner, _, attribute = ref.partition(".")
        if owner == BRIDGE:
            return "br.mac"
        return f"{owner}.mac" if attribute == "mac" else f"br.port({owner}).mac"

    def frame_code(self, data: bytes) -> str:
        """``Ether(...) / Dot1Q(...) / Raw(...)`` when that rebuilds ``data`` exactly, else hex."""
        if len(data) < 14:
            return _bytes_code(data, "", "")
        dst, src = _mac_str(data[0:6]), _mac_str(data[6:12])
        etype = int.from_bytes(data[12:14], "big")
        head = f"Ether(dst={self.mac_code(dst)}, src={self.mac_code(src)}"
        used = {"Ether"}
        built: Packet
        if etype == 0x8100 and len(data) >= 18:
            tci, inner = struct.unpack("!HH", data[14:18])
            prio, dei, vid = tci >> 13, (tci >> 12) & 1, tci & 0xFFF
            built = Ether(dst=dst, src=src) / Dot1Q(prio=prio, dei=dei, vlan=vid, type=inner)
            text = f"{head}) / Dot1Q(prio={prio}, dei={dei}, vlan={vid}, type={inner:#06x})"
            used.add("Dot1Q")
            payload = data[18:]
        else:
            built = Ether(dst=dst, src=src, type=etype)
            text = f"{head}, type={etype:#06x})"
            payload = data[14:]
        if payload:
            built = built / Raw(payload)
            text += " / " + _bytes_code(payload, "Raw(", ")")
            used.add("Raw")
        if bytes(built) != data:
            return _bytes_code(data, "", "")
        self.needs |= used
        return text

    def emit(self, line: str) -> None:
        self.code.append("    " + line)

    def pytest_source(self, ops: tuple[Op, ...]) -> str:
        names = self.topology.names()
        options = dict(self.topology.bridge)
        stp = options.pop("stp", False)
        if stp:
            self.emit("br.set(stp=True)  # once every port forwards, as the machine does")
        for name, opts in self.machine.initial.items():
            self.emit(f"br.port({name}).set({_kwargs(opts)})")
        frames = 0
        for op in ops:
            if isinstance(op, Sent):
                frames += 1
                self.emit(f"f{frames} = {self.frame_code(op.data)}")
                self.emit(f"{op.sender}.send(f{frames})")
                for name in sorted(op.expected):
                    self.emit(f"{name}.expect(f{frames})")
                self.emit("for ep in everyone:  # nothing else, and no second copy")
                self.emit(f"    ep.expect_none(f{frames})")
            elif isinstance(op, PortChange):
                self.refusable(op.accepted, f"br.port({op.at}).set({_kwargs(dict(op.options))})")
            elif isinstance(op, BridgeChange):
                self.emit(f"br.set({_kwargs(dict(op.options))})")
            elif isinstance(op, FdbAdd):
                mac = self.mac_code(self.live.refs.get(op.mac, op.mac))
                call = f"br.fdb_add({mac}, {op.at}, static={op.static}, sticky={op.sticky})"
                self.refusable(op.accepted, call)
            elif isinstance(op, FdbDel):
                mac = self.mac_code(self.live.refs.get(op.mac, op.mac))
                self.refusable(op.accepted, f"br.fdb_del({mac}, {op.at})")
            elif isinstance(op, FdbFlush):
                self.emit("br.fdb_flush()")
            else:
                self.emit(f"{op.at}.set_carrier({op.up})")
        if self.kind == "fdb":
            self.emit("fdb = {(e.mac, e.port, e.how) for e in br.fdb_entries() if not e.local}")
            rows = [
                f'({self.mac_code(mac)}, {e.port}.port, "{_model_how(e)}")'
                for mac, e in sorted(self.machine.model.entries().items())
            ]
            self.emit("assert fdb == {" + ", ".join(rows) + "}" if rows else "assert fdb == set()")
        self.code[:0] = self.topology_code(names, options, any(isinstance(o, Sent) for o in ops))
        imports = ["import pytest"] if "raises" in self.needs else []
        layers = ", ".join(sorted(self.needs & {"Dot1Q", "Ether"}))
        imports += [f"from scapy.layers.l2 import {layers}"] if layers else []
        imports += ["from scapy.packet import Raw"] if "Raw" in self.needs else []
        imports += [
            "",
            "from vlab import Lab, LabError" if "raises" in self.needs else "from vlab import Lab",
        ]
        machine = type(self.machine).__name__
        model = self.machine.model_class.__name__
        found = [
            f"    # {part}"
            for line in self.message.splitlines()
            for part in textwrap.wrap(line, 92, subsequent_indent="    ")
        ]
        head = [
            *imports,
            "",
            "",
            "def test_reproducer(lab: Lab) -> None:",
            '    """A shrunk property-test failure: kernel and model differ at the last step."""',
            f"    # machine {machine}, model {model}",
            *found,
        ]
        return "\n".join(head + self.code) + "\n"

    def topology_code(self, names: tuple[str, ...], options: Options, sends: bool) -> list[str]:
        """The lab, with a variable only for endpoints the steps use (the file stays lint-clean)."""
        body = "\n".join(self.code)
        shown = "".join(f", {k}={_py(v)}" for k, v in options.items())
        lines = [f'br = lab.bridge("{BRIDGE}", mac="{BRIDGE_MAC}"{shown})']
        for name in names:
            mac = self.topology.mac(name)
            kind = self.topology.kind(name)
            if kind == "uplink":
                call = f'lab.uplink(br, mac="{mac}", name="{name}")'
            else:
                call = f'lab.{kind}("{name}", bridge=br, mac="{mac}")'
            used = sends or re.search(rf"\b{name}\b", body)
            lines.append(f"{name} = {call}" if used else call)
        if sends:
            lines.append(f"everyone = ({', '.join(names)})")
        return ["    " + line for line in lines]

    def refusable(self, accepted: bool, call: str) -> None:
        if accepted:
            self.emit(call)
            return
        self.needs.add("raises")
        self.emit("with pytest.raises(LabError):  # the model refuses this change")
        self.emit("    " + call)

    # scenario -----------------------------------------------------------------------------

    def scenario(self, ops: tuple[Op, ...]) -> sc.Scenario:
        options = dict(self.topology.bridge)
        stp = options.pop("stp", False)
        initial = self.machine.initial

        def endpoint(name: str) -> sc.EndpointSpec:
            port = tuple(initial.get(name, {}).items())
            return sc.EndpointSpec(name, mac=self.topology.mac(name), port=port)

        names = self.topology.names()
        bridge = sc.BridgeSpec(
            BRIDGE,
            options=(("mac", BRIDGE_MAC), *options.items()),
            vms=tuple(endpoint(n) for n in names if self.topology.kind(n) == "vm"),
            hosts=tuple(endpoint(n) for n in names if self.topology.kind(n) == "host"),
            uplink=endpoint("uplink") if "uplink" in names else None,
        )
        steps: list[sc.Step] = []
        frames: list[tuple[str, sc.FrameSpec]] = []
        if stp:
            steps.append(sc.SetBridge(BRIDGE, (("stp", True),), note="once every port forwards"))
        for op in ops:
            if isinstance(op, Sent):
                name = f"f{len(frames) + 1}"
                frames.append((name, frame_spec(op.data, self.names)))
                steps.append(sc.Send(op.sender, name))
                if op.expected:
                    receivers = tuple(sorted(op.expected))
                    steps.append(sc.Expect(receivers, note="the model's receivers"))
                steps.append(sc.ExpectNone((), name, note="nowhere else, and no second copy"))
            elif isinstance(op, PortChange):
                steps.append(sc.SetPort(op.at, op.options, rejected=not op.accepted))
            elif isinstance(op, BridgeChange):
                steps.append(sc.SetBridge(BRIDGE, op.options))
            elif isinstance(op, FdbAdd) and op.accepted:
                entry = sc.FdbEntrySpec(op.mac, op.at, sticky=op.sticky, static=op.static)
                steps.append(sc.FdbAdd(entry))
            elif isinstance(op, FdbDel) and op.accepted:
                steps.append(sc.FdbDel(op.mac, op.at))
            elif isinstance(op, FdbFlush):
                steps.append(sc.FdbFlush(BRIDGE))
            elif isinstance(op, Carrier):
                steps.append(sc.Carrier(op.at, op.up))
        check = self.fdb_step()
        if self.kind != "delivery" and (check.contains or check.lacks):
            # also what carries a refusal the file cannot state (an fdb change the model refuses)
            steps.append(check)
        first = self.message.splitlines()[0]
        return sc.Scenario(
            name=f"{type(self.machine).__name__}: {first}"[:200],
            description=(
                f"Shrunk failing example of {type(self.machine).__name__} "
                f"(model {self.machine.model_class.__name__}). Every expectation is the model's, "
                f"so on a kernel that disagrees this scenario fails where the machine did.\n\n"
                f"{self.message}\n"
            ),
            bridges=(bridge,),
            frames=tuple(frames),
            steps=tuple(steps),
        )

    def fdb_step(self) -> sc.Fdb:
        model = self.machine.model.entries()
        kinds = {"learnt": "learnt", "static": "static", "locked": "locked"}
        contains = tuple(
            sc.FdbCheckEntry(
                self.names.get(mac, mac),
                e.port,
                "sticky" if e.sticky else kinds[_model_how(e)],  # type: ignore[arg-type]
            )
            for mac, e in sorted(model.items())
        )
        lacks = tuple(
            sc.FdbCheckEntry(self.names.get(mac, mac))
            for mac in sorted(self.live.fdb())
            if mac not in model
        )
        return sc.Fdb(BRIDGE, contains, lacks, note="the model's fdb")


def _mac_str(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _py(value: OptionValue) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _kwargs(options: Mapping[str, OptionValue]) -> str:
    return ", ".join(
        f"{k}={v:#x}" if k == "group_fwd_mask" and isinstance(v, int) else f"{k}={_py(v)}"
        for k, v in options.items()
    )


def _bytes_code(data: bytes, before: str, after: str) -> str:
    """Bytes as Python source: a literal when short or readable, else wrapped hex."""
    if len(data) <= 16 or (len(data) <= 60 and all(0x20 <= b < 0x7F for b in data)):
        return f"{before}{data!r}{after}"
    hexed = data.hex()
    if len(hexed) <= 64:
        return f'{before}bytes.fromhex("{hexed}"){after}'
    chunks = [hexed[i : i + 64] for i in range(0, len(hexed), 64)]
    inner = "\n".join(f'        "{c}"' for c in chunks)
    return f"{before}bytes.fromhex(\n{inner}\n    ){after}"


def _repro_dir(machine: type[ForwardingMachine]) -> Path:
    chosen = os.environ.get("VLAB_REPRO_DIR") or machine.repro_dir
    if chosen:
        path = Path(chosen)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return Path(tempfile.mkdtemp(prefix="vlab-repro-"))


def reproduce(machine: ForwardingMachine, message: str, kind: str) -> Failure:
    """The failure of ``machine``'s current example as a pytest test and a saved scenario."""
    ops = tuple(machine.ops)
    source = _Writer(machine, message, kind).pytest_source(ops)
    scenario = _Writer(machine, message, kind).scenario(ops)
    path: Path | None = None
    try:
        text = dump_scenario(scenario)
        digest = hashlib.sha1(text.encode()).hexdigest()[:10]
        path = _repro_dir(type(machine)) / f"{type(machine).__name__}-{digest}.yaml"
        path.write_text(text)
    except (OSError, ValueError, LabError) as exc:
        source += f"\n# (the scenario file could not be written: {exc})\n"
    return Failure(message, ops, source, scenario, path)
