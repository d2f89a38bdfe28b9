"""Session-wide guard: under ``--vlab`` the suite must leave the host's namespace untouched.

The snapshot is taken when the session starts (before any lab exists) and compared when it ends;
a difference turns the run red with the diff in the terminal summary. Under pytest-xdist only the
controller checks: workers come and go, the host is one.
"""

from __future__ import annotations

import pytest

from vlab import hostcheck

_REF = pytest.StashKey[hostcheck.Reference]()
_BEFORE = pytest.StashKey[hostcheck.Snapshot]()
_PROBLEM = pytest.StashKey[str]()


def _guards(config: pytest.Config) -> bool:
    return bool(config.getoption("--vlab", False)) and not hasattr(config, "workerinput")


def pytest_sessionstart(session: pytest.Session) -> None:
    if not _guards(session.config):
        return
    ref = hostcheck.Reference.current()
    session.stash[_REF] = ref
    session.stash[_BEFORE] = ref.snapshot()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    ref = session.stash.get(_REF, None)
    before = session.stash.get(_BEFORE, None)
    if ref is None or before is None:
        return
    try:
        problem = hostcheck.report(before, ref.snapshot(), ref.stray_threads())
    finally:
        ref.close()
    if problem is not None:
        session.config.stash[_PROBLEM] = problem
        if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    problem = terminalreporter.config.stash.get(_PROBLEM, None)
    if problem is None:
        return
    terminalreporter.section("vlab host check FAILED", sep="=", red=True, bold=True)
    terminalreporter.line(problem, red=True)
