"""Options a kernel accepted without knowing them: read back after every set.

A kernel ignores netlink attributes newer than itself (``fdb_max_learned`` before 6.8, a
port's ``mab`` before 6.2): the request succeeds and nothing happens, and a test then fails
for a reason it cannot see. vlab reads the bridge's (or port's) attributes back after setting
them, and an option the kernel does not report is :class:`vlab.errors.Unsupported` (a skip
that names it) instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vlab.errors import Unsupported
from vlab.options import Option


def check(
    table: Mapping[str, Option], encoded: Mapping[str, Any], raw: Mapping[int, bytes], what: str
) -> None:
    """Unsupported naming every option of ``encoded`` whose attribute ``raw`` (the kernel's
    answer after the set) lacks."""
    missing = [
        name
        for name in encoded
        if name in table and table[name].attr >= 0 and table[name].attr not in raw
    ]
    if missing:
        raise Unsupported(
            f"{what}: this kernel ignores {', '.join(missing)} (it does not report the option "
            "back: a kernel older than the option)"
        )
