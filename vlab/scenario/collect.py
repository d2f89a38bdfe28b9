"""pytest collection of scenario files: one test item per file, run on the ``lab`` fixture.

Which files are scenarios is decided by :mod:`vlab.scenario.select` (the plugin's
``pytest_collect_file`` asks it before importing this module). Each item is a
``pytest.Function`` whose test function asks for the ``lab`` fixture, so a scenario gets its lab
exactly as a Python test does (same setup, teardown and artifacts), is marked ``vlab`` (skipped
without ``--vlab``), and carries xfail/skip markers computed from the running kernel.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _pytest._code.code import ExceptionInfo, TerminalRepr

from vlab.errors import LabError, Unsupported
from vlab.scenario.errors import ScenarioError
from vlab.scenario.features import missing
from vlab.scenario.kernel import matches
from vlab.scenario.load import load_scenario
from vlab.scenario.runner import run_scenario
from vlab.scenario.spec import Scenario


def scenario_test(scenario: Scenario) -> Callable[[Any], None]:
    """The test function of one scenario; its ``lab`` parameter is the vlab fixture."""

    def run(lab: Any) -> None:
        try:
            run_scenario(scenario, lab)
        except Unsupported as exc:
            # the kernel lacks what the scenario needs: a skip, reported at the scenario file
            raise pytest.skip.Exception(str(exc), _use_item_location=True) from None

    run.__doc__ = scenario.description or scenario.name
    return run


def markers(scenario: Scenario, release: str | None = None) -> list[pytest.MarkDecorator]:
    """``vlab`` plus the skip/xfail markers this scenario earns on kernel ``release``."""
    release = release or platform.release()
    marks = [pytest.mark.vlab]
    for entry in scenario.skip:
        if matches(entry.kernel, release):
            marks.append(pytest.mark.skip(reason=f"kernel {release}: {entry.reason}"))
    reason = missing(scenario.requires)
    if reason is not None:
        marks.append(pytest.mark.skip(reason=reason))
    for entry in scenario.xfail:
        if matches(entry.kernel, release):
            marks.append(pytest.mark.xfail(reason=f"kernel {release}: {entry.reason}", strict=True))
    return marks


class ScenarioFile(pytest.File):
    """A scenario YAML file; loading it validates everything before any lab is built."""

    def collect(self) -> Iterator[pytest.Item]:
        scenario = load_scenario(self.path)
        item = ScenarioItem.from_parent(self, name=self.path.stem, callobj=scenario_test(scenario))
        item.scenario = scenario
        for mark in markers(scenario):
            item.add_marker(mark)
        yield item

    def repr_failure(  # type: ignore[override]
        self, excinfo: ExceptionInfo[BaseException]
    ) -> str | TerminalRepr:
        if isinstance(excinfo.value, ScenarioError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class ScenarioItem(pytest.Function):
    """One scenario run; failures show the failing step and the lab's report, not a traceback."""

    scenario: Scenario

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"scenario {self.path.name}: {self.scenario.name}"

    def repr_failure(  # type: ignore[override]
        self, excinfo: ExceptionInfo[BaseException]
    ) -> str | TerminalRepr:
        error = excinfo.value
        if isinstance(error, AssertionError | LabError):
            notes = "".join(f"\n{n}" for n in getattr(error, "__notes__", ()))
            return f"{self.path}: {self.scenario.name}\n{error}{notes}"
        return super().repr_failure(excinfo)
