"""No module of vlab reaches into another module's underscore names.

The core contract (:mod:`vlab.switch`, the endpoint hooks of :mod:`vlab.endpoints`) is what
bridges, ports, endpoints, links, guests and reports use of each other; a private name used
across a module boundary is a hidden contract that the next endpoint or link kind would have to
discover. The check reads the source: ``x._name`` where ``x`` is not ``self``/``cls`` and
``_name`` is defined nowhere in the same module, and ``from vlab.m import _name``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import vlab

ROOT = Path(vlab.__file__).parent
NOT_OURS = {"_exit", "_SubParsersAction", "_tmp_path_factory"}  # os, argparse, pytest


def reach_ins(source: str) -> list[str]:
    """Every private name ``source`` uses that it does not define itself."""
    tree = ast.parse(source)
    own = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            own.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            own.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            own.add(node.id)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            name = node.attr
            if not name.startswith("_") or name.startswith("__"):
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            if name not in own and name not in NOT_OURS:
                found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vlab"):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if a.name[0] == "_"]
    return sorted(found, key=lambda hit: int(hit.split(":")[0]))


def test_no_module_reaches_into_another_modules_private_names() -> None:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        hits = reach_ins(path.read_text())
        if hits:
            found[str(path.relative_to(ROOT))] = hits
    assert found == {}


def test_the_check_sees_a_reach_in() -> None:
    """The positive case: each form the check looks for is reported, and an own name is not."""
    source = (
        "from vlab.lab import _Namespace\n"
        "def f(lab, ep):\n"
        "    lab._switch_rtnl.request()\n"
        "    return ep._pending\n"
        "class A:\n"
        "    def __init__(self):\n"
        "        self._mine = 1\n"
        "    def g(self, other):\n"
        "        return other._mine\n"
    )
    assert reach_ins(source) == [
        "1: import _Namespace",
        "3: lab._switch_rtnl",
        "4: ep._pending",
    ]
