"""The scenario x kernel table: differences first, the same in text, markdown and JSON."""

from __future__ import annotations

import json

from vlab.kernel.matrix import Column, as_json, as_markdown, cell, rows


def _columns() -> list[Column]:
    a = Column("host", "6.18.0")
    a.results = {
        "s/a.yaml::a": ("passed", ""),
        "s/b.yaml::b": ("skipped", "this kernel lacks vlan_filtering"),
        "s/c.yaml::c": ("xfailed", "kernel 6.18.0: bug"),
    }
    b = Column("/boot/vmlinuz-6.1", "6.1.0")
    b.results = {
        "s/a.yaml::a": ("passed", ""),
        "s/b.yaml::b": ("passed", ""),
        "s/c.yaml::c": ("failed", ""),
    }
    return [a, b]


def test_differences_come_first() -> None:
    table, differing = rows(_columns())
    assert differing == 2
    assert [r[0] for r in table] == ["s/b.yaml::b", "s/c.yaml::c", "s/a.yaml::a"]
    assert table[0][1:] == ["skip (this kernel lacks vlan_filtering)", "pass"]
    assert table[1][1:] == ["xfail (kernel 6.18.0: bug)", "FAIL"]


def test_identical_kernels_differ_nowhere() -> None:
    a, _ = _columns()
    twin = Column("again", "6.18.0", results=dict(a.results))
    assert rows([a, twin])[1] == 0


def test_exports() -> None:
    columns = _columns()
    data = json.loads(as_json(columns))
    assert data["differences"] == 2
    assert [t["differs"] for t in data["tests"]] == [True, True, False]
    assert data["tests"][0]["results"]["6.1.0"] == {"outcome": "passed", "reason": ""}
    md = as_markdown(columns).splitlines()
    assert md[0] == "| test | 6.18.0 | 6.1.0 |"
    assert md[2].startswith("| **s/b.yaml::b** |") and md[4].startswith("| s/a.yaml::a |")
    assert cell(None) == "-"
