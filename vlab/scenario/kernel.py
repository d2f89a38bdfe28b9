"""Kernel version ranges such as ``">=5.18,<6.20"``, for xfail entries keyed on the running kernel.

A range is comma-separated clauses that must all hold; each is an operator and a dotted version
of one to three numbers. Versions compare numerically with missing parts as zero, so ``6.18``
matches ``6.18.44-fc-v595``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable

OPERATORS: dict[str, Callable[[tuple[int, ...], tuple[int, ...]], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
CLAUSE_RE = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*([0-9]{1,4}(?:\.[0-9]{1,4}){0,2})\s*$")
RELEASE_RE = re.compile(r"^([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?")


def parse_release(release: str) -> tuple[int, int, int]:
    """The numeric (major, minor, patch) of a ``platform.release()`` string."""
    match = RELEASE_RE.match(release)
    if match is None:
        raise ValueError(f"cannot read a version from kernel release {release!r}")
    major, minor, patch = (int(part) if part else 0 for part in match.groups())
    return major, minor, patch


def _version(text: str) -> tuple[int, int, int]:
    parts = [int(p) for p in text.split(".")] + [0, 0]
    return parts[0], parts[1], parts[2]


def check_range(spec: str) -> str | None:
    """None if ``spec`` is a valid range, else the first clause that is not."""
    for clause in spec.split(","):
        if not CLAUSE_RE.match(clause):
            return clause.strip()
    return None


def matches(spec: str, release: str) -> bool:
    """Whether the kernel ``release`` lies in the range ``spec``."""
    running = parse_release(release)
    for clause in spec.split(","):
        match = CLAUSE_RE.match(clause)
        if match is None:
            raise ValueError(f"bad kernel range clause {clause!r}")
        if not OPERATORS[match.group(1)](running, _version(match.group(2))):
            return False
    return True
