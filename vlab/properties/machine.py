"""The state machine: one rule that draws a step, applies it to kernel and model, and compares."""

from __future__ import annotations

import atexit
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from hypothesis import note
from hypothesis import strategies as st
from hypothesis.control import current_build_context
from hypothesis.errors import InvalidArgument
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from vlab.errors import LabError
from vlab.frames import summary
from vlab.properties.affinity import pin_to_one_cpu
from vlab.properties.livelab import LiveLab, model_how
from vlab.properties.ops import (
    BridgeChange,
    Carrier,
    FdbAdd,
    FdbDel,
    FdbFlush,
    FrameDraw,
    Op,
    PortChange,
    Sent,
)
from vlab.properties.reproducer import Failure
from vlab.properties.runner import TestCaseProperty
from vlab.properties.steps import MTU_PAYLOAD, Action, StepDecoder
from vlab.properties.topology import BRIDGE_MAC, MachineTopology, Options
from vlab.reference.bridge import BridgeModel, OptionValue
from vlab.strategies import port_options

FDB_CHECK_EVERY = 8


def _steps(machine: ForwardingMachine) -> st.SearchStrategy[Action]:
    return machine.strategies()[0]


def _initial_ports(machine: ForwardingMachine) -> st.SearchStrategy[dict[str, Any]]:
    return machine.strategies()[1]


_STEP = st.runner().flatmap(_steps)
_INITIAL_PORTS = st.runner().flatmap(_initial_ports)


def _is_final() -> bool:
    """Whether hypothesis is replaying the final, shrunk example (or no test is running)."""
    try:
        return bool(current_build_context().is_final)
    except InvalidArgument:
        return True


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
    TestCase = TestCaseProperty()  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.failure: Failure | None = None  # set on the final example only
        self._affinity = pin_to_one_cpu()
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
            pending = ep.pending
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
        model = {mac: (e.port, model_how(e)) for mac, e in self.model.entries().items()}
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
            # looked up on the package, where ``reproduce`` is public (and may be patched)
            from vlab import properties

            self.failure = properties.reproduce(self, message, kind)
            type(self).last_failure = self.failure
        raise AssertionError(message)


atexit.register(ForwardingMachine.close_labs)
