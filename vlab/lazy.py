"""Names a package exports but imports only on first use (PEP 562).

``import vlab`` happens in every pytest run of a machine where vlab is installed (the plugin's
entry point), and the plugin asks :mod:`vlab.scenario` about files before any scenario runs;
neither may pay for scapy, YAML or the lab machinery up front. Both packages describe their
exports as ``{name: module}`` and take their ``__getattr__``/``__dir__`` from here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def exports(
    package: str, homes: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module ``__getattr__`` that imports ``homes[name]`` on first use and keeps the value
    in ``namespace`` (the package's globals), and the matching ``__dir__``."""

    def getattr_(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted([*namespace, *homes])

    return getattr_, dir_
