"""``vlab run --kernel host --kernel PATH ... scenarios/``: every scenario on every kernel, a table.

Each kernel is one ordinary pytest session (``--vlab-kernel=...``), so a scenario's outcome in a
column is exactly what ``pytest --vlab --vlab-kernel`` says of it: pass, fail, error, xfail,
xpass or skip (with the reason: the kernel range, the missing feature). The table puts the rows
whose outcome differs between kernels first, because those are the point of running it: a bug
reproduced on one kernel and fixed on another, a feature one kernel lacks.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import pytest

from vlab.cli.table import table

SHORT = {"passed": "pass", "failed": "FAIL", "error": "ERROR", "skipped": "skip"}
SHORT |= {"xfailed": "xfail", "xpassed": "XPASS"}


@dataclass
class Column:
    """One kernel's session: its label and each test's (outcome, reason)."""

    kernel: str
    label: str
    exit_code: int = 0
    results: dict[str, tuple[str, str]] = field(default_factory=dict)


class Recorder:
    """A pytest plugin keeping the outcome of every test (on the controller, under xdist too)."""

    def __init__(self, column: Column) -> None:
        self.column = column

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        from vlab.cli.run import outcome as outcome_of
        from vlab.cli.run import reason

        outcome = outcome_of(report)
        if outcome is not None:
            self.column.results[report.nodeid] = (outcome, reason(report))


def cell(result: tuple[str, str] | None) -> str:
    if result is None:
        return "-"
    outcome, reason = result
    text = SHORT.get(outcome, outcome)
    return f"{text} ({reason})" if reason and outcome in ("skipped", "xfailed") else text


def rows(columns: list[Column]) -> tuple[list[list[str]], int]:
    """Table rows (differences first, then alphabetical) and how many rows differ."""
    names = sorted({n for c in columns for n in c.results})

    def outcomes(name: str) -> set[str]:
        return {c.results.get(name, ("-", ""))[0] for c in columns}

    differing = [n for n in names if len(outcomes(n)) > 1]
    same = [n for n in names if len(outcomes(n)) == 1]
    out = [[n, *(cell(c.results.get(n)) for c in columns)] for n in (*differing, *same)]
    return out, len(differing)


def as_json(columns: list[Column]) -> str:
    table_rows, differing = rows(columns)
    return json.dumps(
        {
            "kernels": [{"kernel": c.kernel, "release": c.label} for c in columns],
            "differences": differing,
            "tests": [
                {
                    "test": name,
                    "results": {
                        c.label: dict(
                            zip(("outcome", "reason"), c.results.get(name, ("-", "")), strict=True)
                        )
                        for c in columns
                    },
                    "differs": i < differing,
                }
                for i, (name, *_cells) in enumerate(table_rows)
            ],
        },
        indent=1,
    )


def as_markdown(columns: list[Column]) -> str:
    table_rows, differing = rows(columns)
    head = ["test", *(c.label for c in columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, row in enumerate(table_rows):
        row = [f"**{row[0]}**" if i < differing else row[0], *row[1:]]
        lines.append("| " + " | ".join(x.replace("|", "\\|") for x in row) + " |")
    lines.append("")
    lines.append(f"{differing} of {len(table_rows)} tests differ between kernels (bold, first).")
    return "\n".join(lines) + "\n"


def _write(path: str, text: str) -> None:
    if path == "-":
        sys.stdout.write(text)
    else:
        Path(path).write_text(text)


def run_matrix(
    paths: list[str],
    kernels: list[str],
    args: list[str],
    make_progress: Callable[[], Any],
    out: TextIO = sys.stdout,
    markdown: str | None = None,
    json_path: str | None = None,
) -> int:
    """One session per kernel, then the table; exit 1 if anything failed on any kernel."""
    import platform

    from vlab.errors import LabError
    from vlab.kernel.image import inspect_kernel

    columns = []
    for kernel in kernels:
        try:
            label = platform.release() if kernel == "host" else inspect_kernel(kernel).release
        except LabError as exc:
            print(f"vlab: run: --kernel {kernel}: {exc}", file=sys.stderr)
            return 4
        column = Column(kernel, label)
        print(f"== kernel {kernel}", file=out, flush=True)
        progress = make_progress()
        code = pytest.main(
            [*args, f"--vlab-kernel={kernel}", *paths], plugins=[progress, Recorder(column)]
        )
        print(progress.summary(), file=out, flush=True)
        column.exit_code = int(code)
        if code in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERNAL_ERROR):
            print(f"vlab: run: the session on kernel {kernel} could not run", file=sys.stderr)
            return int(code)
        columns.append(column)
    table_rows, differing = rows(columns)
    print("", file=out)
    print(table(("TEST", *(c.label for c in columns)), [tuple(r) for r in table_rows]), file=out)
    print(
        f"\n{differing} of {len(table_rows)} tests differ between kernels (listed first)", file=out
    )
    if markdown:
        _write(markdown, as_markdown(columns))
    if json_path:
        _write(json_path, as_json(columns) + "\n")
    failed = any(
        r[0] in ("failed", "error", "xpassed") for c in columns for r in c.results.values()
    )
    return 1 if failed else 0
