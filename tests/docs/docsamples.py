"""Reading the samples out of the documentation, and comparing real output with them.

A ```` ```console ```` block is a transcript: each ``$ command`` line is run from the project's
root, and the lines after it (up to the next ``$``) are the output it must print. Text that
changes from run to run is normalised on both sides: MAC addresses, pids, state-file paths,
timings, column padding. A line ``...`` in a sample stands for any number of lines, and a sample
line ending in ``...`` matches any line that starts with the rest. Other fenced blocks are
illustrations and are not run, except ```` ```python ```` blocks that define a ``test_``
function (or a ``ForwardingMachine.TestCase``): those are test modules, run under
``pytest --vlab``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)
MAC = re.compile(r"\b[0-9a-f]{2}(:[0-9a-f]{2}){5}\b")
PID = re.compile(r"\bpid \d+")
STATE = re.compile(r"\S*/\d+\.json")
TIMING = re.compile(r"\b\d+(\.\d+)? s\b")
CHECKOUT = "/src/vlab/"
"""Where the documentation pretends the project is checked out; stands for the real checkout."""
VERSIONS = re.compile(r"^vlab \S+ on kernel .*$")


@dataclass
class Command:
    """One ``$ command`` of a transcript and the output the documentation shows for it."""

    line: int
    argv: str
    expected: list[str] = field(default_factory=list)


def blocks(path: Path, language: str) -> list[tuple[int, str]]:
    """(line number, body) of every fenced block of ``language`` in a markdown file."""
    text = path.read_text()
    return [
        (text.count("\n", 0, m.start()) + 2, m.group(2))
        for m in FENCE.finditer(text)
        if m.group(1) == language
    ]


def transcript(first_line: int, body: str) -> list[Command]:
    """The commands of a console block with their expected output."""
    commands: list[Command] = []
    for offset, line in enumerate(body.splitlines()):
        if line.startswith("$ "):
            commands.append(Command(first_line + offset, line[2:]))
        elif commands:
            commands[-1].expected.append(line)
    return commands


def normalise(line: str, root: Path) -> str:
    line = line.replace(str(root) + "/", "").replace(CHECKOUT, "")
    line = VERSIONS.sub("vlab VERSION on kernel RELEASE", line)
    line = STATE.sub("STATE", PID.sub("pid N", MAC.sub("MAC", line)))
    return " ".join(TIMING.sub("T s", line).split())


def mismatch(expected: list[str], actual: list[str], root: Path) -> str | None:
    """None when ``actual`` output fits the sample, else where it first differs."""
    want = [normalise(x, root) for x in expected]
    got = [normalise(x, root) for x in actual]
    while want and not want[-1]:
        want.pop()
    while got and not got[-1]:
        got.pop()

    def fits(i: int, j: int) -> bool:
        if i == len(want):
            return j == len(got)
        if want[i] == "...":
            return any(fits(i + 1, k) for k in range(j, len(got) + 1))
        if j == len(got):
            return False
        line = want[i]
        ok = got[j].startswith(line[:-3].rstrip()) if line.endswith("...") else got[j] == line
        return ok and fits(i + 1, j + 1)

    if fits(0, 0):
        return None
    shown = "\n".join(f"  {x}" for x in got)
    return f"the documented output does not match; real output (normalised):\n{shown}"
