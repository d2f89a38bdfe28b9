"""Reporting every mistake in a scenario file at once, not only the first.

Fixing a file one error per run is slow, so the loader keeps going after a mistake wherever the
rest of the file still makes sense without the broken piece: an option, a frame, a step, an fdb
entry or a top-level section is dropped and the reading goes on. The collector is kept in a
context variable, so the readers' signatures do not change and code that calls a reader outside
:func:`collecting` still gets the first error raised at once, as before.

One mistake is raised as itself (a :class:`ScenarioError`); several become one
:class:`ScenarioErrors`, one ``file:line:col: ...`` line each, in file order, up to
:data:`MAX_ERRORS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from vlab.scenario.errors import Position, ScenarioError

MAX_ERRORS = 20
"""Past this many, the rest of a file is probably the same mistake repeated; stop reading."""

T = TypeVar("T")
U = TypeVar("U")
_current: ContextVar[list[ScenarioError] | None] = ContextVar(
    "vlab_scenario_problems", default=None
)


class ScenarioErrors(ScenarioError):
    """Several mistakes in one scenario file; ``errors`` holds each, in file order."""

    def __init__(self, errors: list[ScenarioError], truncated: bool = False) -> None:
        first = errors[0]
        super().__init__(first.where, first.problem, first.fix)
        self.errors = errors
        lines = [str(e) for e in errors]
        if truncated:
            lines.append(f"{first.where.file}: stopped after {MAX_ERRORS} errors")
        self.args = ("\n".join(lines),)

    def __str__(self) -> str:
        return str(self.args[0])


def _order(error: ScenarioError) -> tuple[int, int]:
    return error.where.line, error.where.col


class _TooMany(Exception):
    """Raised inside the readers to stop at MAX_ERRORS; turned into ScenarioErrors outside."""


def record(error: ScenarioError) -> None:
    """Note ``error`` and carry on, or raise it when nothing is collecting."""
    found = _current.get()
    if found is None:
        raise error
    if isinstance(error, ScenarioErrors):
        found.extend(error.errors)
    else:
        found.append(error)
    if len(found) >= MAX_ERRORS:
        raise _TooMany


def attempt(read: Callable[[], T], instead: U) -> T | U:
    """``read()``, or ``instead`` after recording the ScenarioError it raised."""
    try:
        return read()
    except ScenarioError as exc:
        record(exc)
        return instead


def fail_later(where: Position, problem: str, fix: str) -> None:
    """Record a mistake found by a check that does not stop the reading."""
    record(ScenarioError(where, problem, fix))


@contextmanager
def collecting() -> Iterator[None]:
    """Collect mistakes in the block; on leaving, raise them (one, or all in one error)."""
    found: list[ScenarioError] = []
    token = _current.set(found)
    truncated = False
    try:
        yield
    except _TooMany:
        truncated = True
    except ScenarioError as exc:  # a mistake no reader could step over
        found.append(exc)
    finally:
        _current.reset(token)
    unique = list({str(e): e for e in found}.values())
    if len(unique) == 1 and not truncated:
        raise unique[0]
    if unique:
        raise ScenarioErrors(sorted(unique, key=_order)[:MAX_ERRORS], truncated)
