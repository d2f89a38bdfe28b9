"""Checks of user input that must happen before the kernel sees it: one source of truth.

The library and the scenario loader both use these, so a name, MAC or MTU the kernel would refuse
half-way through a build (leaving a half-built lab, or an error in kernel terms such as "Exchange
full") is refused up front: by the library as a :class:`~vlab.errors.LabError`, by the scenario
loader with the file and line of the offending value.

The ``*_problem`` functions return what is wrong (``None`` when nothing is) so each caller can
attach its own location; the others raise ``LabError`` directly.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vlab.errors import LabError

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")
NAME_RULE = "1-15 characters, letters, digits, '_', '.', '-', starting with a letter or digit"
RESERVED_LINK_RE = re.compile(r"(vnet|veth|eth)[0-9]+|lo|port[0-9]+p?")  # portN: bare ports
"""Names vlab gives its own links in the switch namespace (taps, veths, uplink ports)."""

TAP_MAX_MTU = 65521  # tun.c: MAX_MTU (65535) minus the Ethernet header
VETH_MAX_MTU = 65535  # veth.c: ETH_MAX_MTU
MIN_MTU = 68
MAX_MTU = {"vm": TAP_MAX_MTU, "host": VETH_MAX_MTU, "uplink": VETH_MAX_MTU}
BRIDGE_MAX_PORTS = 1023  # BR_MAX_PORTS is 1 << 10 and port number 0 is reserved
MAX_TIMEOUT = 86_400.0  # a day: anything longer is a mistake, and select() overflows on 1e300


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a bridge or endpoint (a kernel link or namespace name)."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        return f"{name!r} is not usable: {NAME_RULE}"
    return None


def bridge_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a bridge: it would collide with the ports vlab creates."""
    problem = name_problem(name)
    if problem is not None:
        return problem
    if RESERVED_LINK_RE.fullmatch(name):
        return (
            f"{name!r} is a name vlab gives its own links in the switch namespace (vnetN taps, "
            "vethN and ethN veths, lo): pick another, such as br0"
        )
    return None


def endpoint_mac_problem(mac: str) -> str | None:
    """Why a canonical MAC cannot be a NIC's own address (the kernel refuses it at link up)."""
    fix = "a NIC needs a unicast MAC such as 52:54:00:12:34:56"
    if mac == "ff:ff:ff:ff:ff:ff":
        return f"{mac} is the broadcast address; {fix}"
    if mac == "00:00:00:00:00:00":
        return f"{mac} is the all-zero address; {fix}"
    if int(mac[:2], 16) & 1:
        return f"{mac} is a multicast address (lowest bit of the first octet set); {fix}"
    return None


def mtu_problem(kind: str, mtu: int) -> str | None:
    """Why ``mtu`` does not fit the link behind a ``kind`` endpoint (tap or veth limits)."""
    hi = MAX_MTU.get(kind, VETH_MAX_MTU)
    if not MIN_MTU <= mtu <= hi:
        link = "a tap" if kind == "vm" else "a veth"
        return f"mtu {mtu} is out of range for {link}: allowed {MIN_MTU}..{hi}"
    return None


def timeout(value: object, what: str, maximum: float = MAX_TIMEOUT) -> float:
    """A finite, non-negative number of seconds no longer than ``maximum``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 <= value <= maximum
    ):
        raise LabError(f"{what}(timeout={value!r}): give a number of seconds, 0 to {maximum:g}")
    return float(value)


def flag(value: object, what: str) -> bool:
    """A real boolean: ``"no"`` is truthy and ``None`` is not a choice."""
    if not isinstance(value, bool):
        raise LabError(f"{what}={value!r}: give True or False")
    return value


def argv(args: Sequence[Any], what: str) -> list[str]:
    """A program and its arguments as strings the kernel can take (no NUL bytes)."""
    if not args:
        raise LabError(f"nothing to run in {what}: give a program and its arguments")
    out = []
    for arg in args:
        if not isinstance(arg, str):
            raise LabError(
                f"cannot run in {what}: argument {arg!r} is a {type(arg).__name__}; give strings "
                "(str(value))"
            )
        if "\0" in arg:
            raise LabError(f"cannot run in {what}: argument {arg!r} contains a NUL byte")
        out.append(arg)
    return out


def lab_name(value: object) -> str:
    """A lab's name: shown in reports and used (sanitised) in artifact paths."""
    if (
        not isinstance(value, str)
        or not value
        or len(value) > 200
        or any(not ch.isprintable() for ch in value)
    ):
        raise LabError(f"Lab(name={value!r}): give a short printable string such as 'lab'")
    return value


def artifacts_dir(value: object) -> Path | None:
    """Where a lab writes its failure artifacts: a path, or None."""
    if value is None:
        return None
    if isinstance(value, str | os.PathLike) and not isinstance(value, bytes):
        path = os.fspath(value)
        if isinstance(path, str) and path and "\0" not in path:
            return Path(path)
    raise LabError(f"Lab(artifacts={value!r}): give a directory path (str or Path) or None")
