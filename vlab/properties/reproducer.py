"""A failing example as a pytest test and a scenario file, both asserting the model's verdicts.

Both are written from the machine's recorded operations, so they replay on a fresh lab without
the model and fail against the kernel at the step where the machine failed.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import tempfile
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Packet, Raw

from vlab.errors import LabError
from vlab.properties.livelab import model_how
from vlab.properties.ops import (
    BridgeChange,
    Carrier,
    FdbAdd,
    FdbDel,
    FdbFlush,
    Op,
    PortChange,
    Sent,
)
from vlab.properties.topology import BRIDGE, BRIDGE_MAC, Options
from vlab.reference.bridge import OptionValue
from vlab.scenario import dump_scenario
from vlab.scenario import spec as sc
from vlab.scenario.from_frames import frame_spec

if TYPE_CHECKING:
    from vlab.properties.machine import ForwardingMachine


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
        """How many operations the shrunk failing example has."""
        return len(self.ops)


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
        self.code.extend(_wrap("    " + line))

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
                f'({self.mac_code(mac)}, {e.port}.port, "{model_how(e)}")'
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
                "sticky" if e.sticky else kinds[model_how(e)],  # type: ignore[arg-type]
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


LINE_LENGTH = 100  # the reproducer must pass ruff's E501 like the project's own tests


def _wrap(line: str) -> list[str]:
    """A long call (``br.port(vm1).set(a=1, b=2, ...)``) with one keyword argument a line."""
    head, paren, args = line.rpartition("(")
    if len(line) <= LINE_LENGTH or not paren or not args.endswith(")") or "#" in args:
        return [line]
    indent = line[: len(line) - len(line.lstrip())]
    parts = [a.strip() for a in args[:-1].split(",") if a.strip()]
    return [head + "(", *(f"{indent}    {a}," for a in parts), indent + ")"]


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
