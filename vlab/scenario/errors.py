"""Errors that point at the exact spot in a scenario file.

A reviewer reading a CI log should be able to jump straight to the offending line, so every
problem found while loading a scenario carries ``file:line:col`` (1-based, like compilers and
ruff) and a second half saying what would have been accepted.
"""

from __future__ import annotations

from dataclasses import dataclass

from vlab.errors import LabError


@dataclass(frozen=True)
class Position:
    """A position in a scenario file, kept on parsed objects so runtime failures can cite it."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class ScenarioError(LabError):
    """A scenario file is malformed; nothing has been built in the kernel yet.

    The text is ``<file>:<line>:<col>: <what is wrong>; <what is allowed / how to fix>``.
    """

    def __init__(self, where: Position, problem: str, fix: str) -> None:
        super().__init__(f"{where}: {problem}; {fix}")
        self.where = where
        self.problem = problem
        self.fix = fix
