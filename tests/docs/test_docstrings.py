"""Every public class, function, method and property of vlab's API has a docstring.

The API reference (docs/reference/) is generated from them, so a missing one is a hole in the
documentation; this names each hole rather than leaving it to a reader to find.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator

PUBLIC = (
    "vlab",
    "vlab.lab",
    "vlab.endpoints",
    "vlab.bridge",
    "vlab.frames",
    "vlab.errors",
    "vlab.qemu",
    "vlab.options",
    "vlab.reference.bridge",
    "vlab.strategies",
    "vlab.properties",
    "vlab.profiles",
    "vlab.plugin",
    "vlab.rootless",
    "vlab.scenario",
    "vlab.scenario.select",
    "vlab.vlan",
    "vlab.bridge_vlans",
    "vlab.vlanif",
    "vlab.reference.vlan",
    "vlab.vlan_strategies",
    "vlab.properties.vlan_machine",
    "vlab.macvtap",
    "vlab.hypervisor",
    "vlab.vxlan",
    "vlab.nics",
)
INHERITED_OK = frozenset(dir(object)) | {"__init__", "__enter__", "__exit__"}


def _members(module_name: str) -> Iterator[tuple[str, object]]:
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None) or [
        n for n, v in vars(module).items() if getattr(v, "__module__", None) == module_name
    ]
    for name in names:
        if name.startswith("_"):
            continue
        value = getattr(module, name)
        if not (inspect.isclass(value) or inspect.isfunction(value)):
            continue
        yield f"{module_name}.{name}", value
        if inspect.isclass(value):
            for attr, member in vars(value).items():
                if attr.startswith("_") or attr in INHERITED_OK:
                    continue
                if isinstance(member, property | staticmethod | classmethod) or inspect.isfunction(
                    member
                ):
                    yield f"{module_name}.{name}.{attr}", member


def _undocumented() -> list[str]:
    missing = set()
    for module in PUBLIC:
        for where, value in _members(module):
            target = value.fget if isinstance(value, property) else value
            target = getattr(target, "__func__", target)
            if not (inspect.getdoc(target) or "").strip():
                missing.add(where)
    return sorted(missing)


def test_every_public_name_has_a_docstring() -> None:
    assert _undocumented() == []


def test_the_check_sees_a_missing_docstring() -> None:
    """The positive case: an undocumented public function is reported."""
    import vlab.profiles as profiles

    def undocumented() -> None:
        pass

    undocumented.__module__ = "vlab.profiles"
    profiles.undocumented = undocumented  # type: ignore[attr-defined]
    try:
        assert "vlab.profiles.undocumented" in _undocumented()
    finally:
        del profiles.undocumented  # type: ignore[attr-defined]
