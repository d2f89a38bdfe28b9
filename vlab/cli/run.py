"""``vlab run PATH...``: scenario files (and lab tests) through pytest, reported for people.

pytest already knows how to collect scenarios, build a lab per test, skip what the kernel lacks
and save pcaps of failures; this is a front that prints one line per scenario as it finishes and a
summary naming each failure with the step that failed, instead of pytest's tracebacks. A YAML file
named on the command line, or lying under a directory named on it, runs as a scenario wherever
it is. The exit code is pytest's.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import pytest

from vlab.paths import kind_of

OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")


def _outcome(report: pytest.TestReport) -> str | None:
    """The test's result from one of its reports, or None when that phase says nothing new."""
    xfail = hasattr(report, "wasxfail")
    if report.when == "call":
        if xfail:
            return "xfailed" if report.skipped else "xpassed"
        return str(report.outcome)
    if report.failed:
        return "error"
    if report.skipped and report.when == "setup":
        return "xfailed" if xfail else "skipped"
    return None


def _reason(report: pytest.TestReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return getattr(report, "wasxfail", "") or ""


class Progress:
    """A pytest plugin printing ``[ 3/12] passed   scenarios/x.yaml  0.21 s`` per test."""

    def __init__(self, out: TextIO, explicit: set[Path]) -> None:
        self.out = out
        self.explicit = explicit
        self.total = 0
        self.done = 0
        self.counts = dict.fromkeys(OUTCOMES, 0)
        self.failures: list[tuple[str, str]] = []
        self.started = time.monotonic()

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.counts["error"] += 1
            self.failures.append((report.nodeid or "collection", str(report.longrepr)))
            print(f"cannot collect {report.nodeid}: {_first_line(report)}", file=self.out)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.total = len(session.items)
        print(f"running {self.total} test(s)", file=self.out, flush=True)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """Under ``-n``, workers collect: the first to finish tells the total."""
        if not self.total:
            self.total = len(ids)
            print(f"running {self.total} test(s) on workers", file=self.out, flush=True)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        outcome = _outcome(report)
        if outcome is None:
            return
        self.done += 1
        self.counts[outcome] += 1
        width = len(str(self.total))
        extra = ""
        if outcome in ("failed", "error", "xpassed"):
            self.failures.append((report.nodeid, report.longreprtext))
        elif outcome in ("skipped", "xfailed"):
            extra = f"  ({_reason(report)})"
        print(
            f"[{self.done:>{width}}/{self.total}] {outcome:<8} {report.nodeid}  "
            f"{report.duration:.2f} s{extra}",
            file=self.out,
            flush=True,
        )

    def summary(self) -> str:
        lines = []
        for nodeid, text in self.failures:
            lines += ["", f"FAILED {nodeid}"]
            lines += [f"  {line}" for line in _useful(text)]
        counts = ", ".join(f"{n} {k}" for k, n in self.counts.items() if n)
        elapsed = time.monotonic() - self.started
        lines += ["", f"{counts or 'no tests'} in {elapsed:.1f} s"]
        return "\n".join(lines)


def _first_line(report: pytest.CollectReport) -> str:
    text = str(report.longrepr).strip().splitlines()
    return text[-1] if text else "?"


def _useful(text: str, limit: int = 25) -> list[str]:
    """The assertion text of a failure without pytest's source listing."""
    lines = text.splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("E ")]
    if errors:
        lines = [line[2:].rstrip() for line in lines[errors[0] :] if line.startswith("E ")]
    lines = [line for line in lines if line.strip()]
    return lines[:limit] + (
        [f"... ({len(lines) - limit} more lines)"] if len(lines) > limit else []
    )


def run(
    paths: list[str],
    exitfirst: bool = False,
    keyword: str | None = None,
    workers: str | None = None,
    out: TextIO = sys.stdout,
    kernels: list[str] | None = None,
    markdown: str | None = None,
    json_path: str | None = None,
) -> int:
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        print(f"vlab: run: no such file or directory: {', '.join(missing)}", file=sys.stderr)
        return 4
    special = [p for p in paths if not (Path(p).is_file() or Path(p).is_dir())]
    if special:  # a FIFO or device would hang or flood the loader, and pytest ignores them
        kinds = ", ".join(f"{p} ({kind_of(os.stat(p).st_mode)})" for p in special)
        print(f"vlab: run: not a regular file or directory: {kinds}", file=sys.stderr)
        return 4
    args = ["--vlab", "-p", "no:terminal", "-p", "no:cacheprovider", *paths]
    # every YAML file under the paths asked for is a scenario, wherever they are
    args += [f"--vlab-scenarios={p}" for p in paths if Path(p).is_dir()]
    if exitfirst:
        args.append("-x")
    if keyword:
        args += ["-k", keyword]
    if workers:
        args += ["-n", workers]
    if kernels:  # one session per kernel, then a test x kernel table
        from vlab.kernel.matrix import run_matrix

        explicit = {Path(p).resolve() for p in paths}
        common = [a for a in args if a not in paths]
        return run_matrix(
            paths, kernels, common, lambda: Progress(out, explicit), out, markdown, json_path
        )
    if markdown or json_path:
        message = "--markdown/--json export the --kernel table: add --kernel"
        print(f"vlab: run: {message}", file=sys.stderr)
        return 4
    progress = Progress(out, {Path(p).resolve() for p in paths})
    code = pytest.main(args, plugins=[progress])
    print(progress.summary(), file=out, flush=True)
    return int(code)


# shared with the scenario x kernel table (vlab.kernel.matrix)
outcome = _outcome
reason = _reason
