"""Typed readers for YAML nodes: each returns a plain value or raises a located ScenarioError.

Values are read from the scalar's source text rather than from PyYAML's YAML 1.1 guesses, which
would turn ``52:54:00:00:00:01`` into a base-60 integer and ``no`` into ``False``. A quoted number
is refused rather than coerced, so what a reviewer sees is what runs.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
from collections.abc import Iterable, Sequence
from typing import NoReturn

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from vlab import validate
from vlab.scenario.errors import ScenarioError
from vlab.scenario.source import where

MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,14}$")
INT_RE = re.compile(r"^(0|[1-9][0-9_]*|0x[0-9a-fA-F_]+|0b[01_]+)$")
FLOAT_RE = re.compile(r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$")
NULL_TAG = "tag:yaml.org,2002:null"
MAX_NUMBER_TEXT = 24
"""No legitimate number in a scenario needs more characters; longer ones are refused unparsed."""


def fail(node: Node, problem: str, fix: str) -> NoReturn:
    """Raise the located error for ``node``."""
    raise ScenarioError(where(node), problem, fix)


def kind_of(node: Node) -> str:
    """How a node reads to a user, for "expected X, got Y" messages."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == NULL_TAG:
        return "nothing (null)"
    return f"'{node.value}'"


def suggest(word: str, allowed: Iterable[str]) -> str:
    """``did you mean 'x'? allowed: ...`` with the closest allowed word first, if any is close."""
    allowed = list(allowed)
    close = difflib.get_close_matches(word, allowed, n=1, cutoff=0.6)
    listing = "allowed: " + ", ".join(allowed)
    return f"did you mean '{close[0]}'? {listing}" if close else listing


def mapping(node: Node, what: str) -> MappingNode:
    """``node`` as a mapping, or an error naming what was expected."""
    if not isinstance(node, MappingNode):
        fail(node, f"{what} must be a mapping, got {kind_of(node)}", "write `key: value` pairs")
    return node


def keys(
    node: Node, what: str, allowed: Sequence[str], required: Sequence[str] = ()
) -> dict[str, Node]:
    """The values of a mapping by key, after refusing unknown keys and reporting missing ones."""
    found: dict[str, Node] = {}
    for key, value in mapping(node, what).value:
        if key.value not in allowed:
            fail(key, f"unknown key '{key.value}' in {what}", suggest(key.value, allowed))
        found[key.value] = value
    for name in required:
        if name not in found:
            fail(
                node,
                f"{what} has no '{name}'",
                f"add '{name}:'; allowed keys: {', '.join(allowed)}",
            )
    return found


def sequence(node: Node, what: str) -> list[Node]:
    """``node`` as a list of nodes."""
    if not isinstance(node, SequenceNode):
        fail(node, f"{what} must be a list, got {kind_of(node)}", "write `[a, b]` or `- a` lines")
    return list(node.value)


def scalar(node: Node, what: str) -> ScalarNode:
    """``node`` as a non-null scalar."""
    if not isinstance(node, ScalarNode) or node.tag == NULL_TAG:
        fail(node, f"{what} must be a single value, got {kind_of(node)}", "write a plain value")
    return node


def text(node: Node, what: str, max_len: int = 10_000) -> str:
    """A string, exactly as written (numbers and booleans are kept as their text)."""
    value = str(scalar(node, what).value)
    if len(value) > max_len:
        fail(node, f"{what} is {len(value)} characters long", f"keep it under {max_len}")
    return value


def boolean(node: Node, what: str) -> bool:
    """``true`` or ``false``; YAML 1.1's yes/no/on/off are refused as too easy to misread."""
    value = scalar(node, what)
    word = str(value.value).lower()
    if value.style is None and word in ("true", "false"):
        return word == "true"
    fail(node, f"{what} must be true or false, got {kind_of(node)}", "write true or false")


def _number_text(node: Node, what: str, expected: str) -> str:
    value = scalar(node, what)
    raw = str(value.value)
    if value.style is not None:
        fail(node, f"{what} must be {expected}, got the quoted string '{raw}'", "remove the quotes")
    if len(raw) > MAX_NUMBER_TEXT:
        fail(node, f"{what} is a {len(raw)}-character number", f"{what} must be {expected}")
    return raw.lstrip("+")


def integer(node: Node, what: str, lo: int, hi: int) -> int:
    """An integer in [lo, hi], written in decimal, 0x hex or 0b binary."""
    expected = f"an integer from {lo} to {hi}"
    raw = _number_text(node, what, expected)
    negative = raw.startswith("-")
    digits = raw[1:] if negative else raw
    if not INT_RE.match(digits):
        fail(node, f"{what} must be {expected}, got '{raw}'", "write decimal, 0x hex or 0b binary")
    number = int(digits.replace("_", ""), 0) * (-1 if negative else 1)
    if not lo <= number <= hi:
        fail(node, f"{what} {raw} is out of range", f"{what} must be {expected}")
    return number


def seconds(node: Node, what: str, lo: float, hi: float) -> int | float:
    """A non-negative duration in seconds, integer or decimal, within [lo, hi]."""
    expected = f"seconds from {lo:g} to {hi:.0f}"
    raw = _number_text(node, what, expected)
    if raw.startswith("-"):
        fail(node, f"{what} {raw} is negative", f"{what} must be {expected}")
    if not FLOAT_RE.match(raw):
        fail(node, f"{what} must be {expected}, got '{raw}'", "write a number such as 2 or 0.5")
    number: int | float = int(raw) if raw.isdigit() else float(raw)
    if not math.isfinite(number) or not lo <= number <= hi:
        fail(node, f"{what} {raw} is out of range", f"{what} must be {expected}")
    return number


def mac(node: Node, what: str) -> str:
    """A literal MAC address, normalised to lower case."""
    value = text(node, what)
    if not MAC_RE.fullmatch(value):  # not match: "$" would accept a final newline
        fail(
            node,
            f"{what} '{value}' is not a MAC address",
            "write six hex pairs separated by colons, e.g. 52:54:00:00:00:01",
        )
    return value.lower()


def ipv4(node: Node, what: str) -> str:
    """A dotted-quad IPv4 address."""
    value = text(node, what)
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        fail(node, f"{what} '{value}' is not an IPv4 address", "write it like 192.0.2.1")


def ip(node: Node, what: str) -> str:
    """An IPv4 or IPv6 address, normalised."""
    value = text(node, what)
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        fail(node, f"{what} '{value}' is not an IP address", "write 192.0.2.1 or 2001:db8::1")


def ipv4_multicast(node: Node, what: str) -> str:
    """An IPv4 multicast group (224.0.0.0/4)."""
    value = ipv4(node, what)
    if not ipaddress.IPv4Address(value).is_multicast:
        fail(node, f"{what} {value} is not a multicast group", "use an address in 224.0.0.0/4")
    return value


def ipv6(node: Node, what: str) -> str:
    """An IPv6 address in its compressed form."""
    value = text(node, what)
    try:
        return str(ipaddress.IPv6Address(value))
    except ValueError:
        fail(node, f"{what} '{value}' is not an IPv6 address", "write it like 2001:db8::1")


def hexbytes(node: Node, what: str, max_bytes: int) -> bytes:
    """Bytes written as hex digits; spaces, colons and a 0x prefix are allowed for readability."""
    raw = text(node, what, max_len=4 * max_bytes)
    digits = re.sub(r"[\s:]", "", raw.removeprefix("0x"))
    try:
        data = bytes.fromhex(digits)
    except ValueError:
        fail(node, f"{what} is not hex", "write pairs of hex digits such as 'de ad be ef'")
    if len(data) > max_bytes:
        fail(node, f"{what} is {len(data)} bytes", f"at most {max_bytes} bytes are allowed")
    return data


def choice(node: Node, what: str, choices: Sequence[str]) -> str:
    """One word out of ``choices``."""
    value = text(node, what)
    if value not in choices:
        fail(node, f"{what} '{value}' is not known", suggest(value, choices))
    return value


def name(node: Node, what: str) -> str:
    """A bridge or endpoint name: it becomes an interface name, so at most 15 characters."""
    value = text(node, what)
    if not NAME_RE.fullmatch(value):  # not match: "$" would accept a final newline
        fail(
            node,
            f"{what} {value!r} is not a valid name",
            "use a letter then up to 14 letters, digits, '_' or '-'",
        )
    return value


def bridge_name(node: Node, what: str) -> str:
    """A bridge name that is also not one of the names vlab gives its own links."""
    value = name(node, what)
    problem = validate.bridge_name_problem(value)
    if problem is not None:
        head, _, fix = problem.partition(": ")
        fail(node, f"{what} {head}", fix)
    return value


def endpoint_mac(node: Node, what: str) -> str:
    """A NIC's own MAC: a literal unicast address (the kernel refuses others at link up)."""
    value = mac(node, what)
    problem = validate.endpoint_mac_problem(value)
    if problem is not None:
        head, _, fix = problem.partition("; ")
        fail(node, f"{what} {head}", fix)
    return value


def endpoint_mtu(node: Node, what: str, kind: str) -> int:
    """An endpoint's MTU within what its link (tap or veth) takes."""
    return integer(node, what, validate.MIN_MTU, validate.MAX_MTU[kind])


def names(node: Node, what: str) -> list[tuple[Node, str]]:
    """One name or a list of names, each with its node for later reference checks."""
    items = node.value if isinstance(node, SequenceNode) else [node]
    if isinstance(node, SequenceNode) and not items:
        fail(node, f"{what} is an empty list", "name at least one endpoint")
    return [(item, text(item, what)) for item in items]
