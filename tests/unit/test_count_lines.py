"""The line counter behind docs/selftest-ports.md counts code, not comments or skipped parts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SPEC = importlib.util.spec_from_file_location(
    "count_lines", Path(__file__).parents[1] / "selftests" / "count_lines.py"
)
assert SPEC is not None and SPEC.loader is not None
count_lines = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(count_lines)

SCRIPT = """#!/bin/bash
# comment
vids=(1 2)
ported()
{
\tip link add br0 type bridge

\tfor vid in "${vids[@]}"; do
\t\tvlan_create $h1 $vid
\tdone
}

not_ported()
{
\tbridge vlan add dev swp1 vid 2
}
tests_run
"""


def test_shell_lines_skip_comments_blank_skipped_functions_and_vlan_loops() -> None:
    assert count_lines.shell_lines(SCRIPT, {"not_ported"}) == 5  # ported(){ ip } tests_run
    assert count_lines.shell_lines(SCRIPT, set()) == 9


def test_python_lines_skip_docstrings_and_comments() -> None:
    text = (
        '"""Module doc\nover two lines."""\n\nimport os  # code\n\n\n'
        'def f():\n    """Doc."""\n    # note\n    return os\n'
    )
    assert count_lines.python_lines(text) == 3
