"""The option names a scenario may use and the kind of value each takes.

They are the lab's own option tables (``vlab.options``) seen from a file: the same friendly names
and units as ``lab.bridge(**options)`` and ``port.set(**options)``, the same ranges, and the same
kernel rules the lab knows (bridge mask bits 0-2, port mask bit 1, group_address), so a value the
lab would refuse is reported at its line when the file is loaded, unless the step says
``rejected: true``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from vlab.errors import LabError
from vlab.options import BRIDGE_OPTIONS as CORE_BRIDGE_OPTIONS
from vlab.options import PORT_OPTIONS as CORE_PORT_OPTIONS
from vlab.options import PORT_STATES, VLAN_PROTOCOLS, Option, encode_bridge, encode_port
from vlab.scenario.features import SYMBOLS
from vlab.scenario.spec import OptionValue


@dataclass(frozen=True)
class Kind:
    """The shape of an option's value."""

    type: Literal["bool", "seconds", "int", "mac", "choice"]
    lo: float = 0
    hi: float = 0
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        """What a user may write, for error messages."""
        if self.type == "bool":
            return "true or false"
        if self.type == "seconds":
            return f"seconds from {self.lo:g} to {self.hi:.0f}"
        if self.type == "int":
            return f"an integer from {int(self.lo)} to {int(self.hi)}"
        if self.type == "mac":
            return "a MAC address such as 01:80:c2:00:00:00"
        return "one of " + ", ".join(self.choices)


BOOL = Kind("bool")


def _kind(option: Option) -> Kind:
    """The scenario-side shape of one of the lab's options (same names, units and ranges)."""
    if option.kind == "state":
        return Kind("choice", choices=tuple(PORT_STATES))
    if option.kind == "tpid":
        return Kind("choice", choices=tuple(VLAN_PROTOCOLS))
    if option.kind in ("bool", "mac"):
        return Kind(option.kind)  # type: ignore[arg-type]
    if option.kind == "seconds":
        return Kind("seconds", option.lo, option.hi)
    return Kind("int", option.lo, option.hi)


BRIDGE_OPTIONS: dict[str, Kind] = {name: _kind(o) for name, o in CORE_BRIDGE_OPTIONS.items()}
PORT_OPTIONS: dict[str, Kind] = {name: _kind(o) for name, o in CORE_PORT_OPTIONS.items()}


def check_bridge(options: dict[str, OptionValue]) -> str | None:
    """The lab's own objection to a set of bridge options (a kernel rule it knows), if any."""
    return _check(encode_bridge, options)


def check_port(options: dict[str, OptionValue]) -> str | None:
    """The lab's own objection to a set of port options, if any."""
    return _check(encode_port, options)


def _check(encode: Callable[[dict[str, Any]], object], options: dict[str, Any]) -> str | None:
    try:
        encode(options)
    except LabError as exc:
        return str(exc)
    return None


FEATURES = tuple(SYMBOLS)
"""Kernel features a scenario may declare under ``requires``; absent ones make it a skip."""
