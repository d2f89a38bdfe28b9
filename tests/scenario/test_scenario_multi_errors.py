"""A file with several mistakes reports all of them in one run, each located, in file order.

Pairs as in errors/: NAME.yaml beside NAME.txt, the whole expected message, one line per
mistake. The cases are chosen so that a mistake does not drag in follow-on errors (a bad option
still declares its endpoint, a dropped step does not leave a "nothing was sent" behind).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vlab.scenario import ScenarioError, loads_scenario
from vlab.scenario.problems import MAX_ERRORS, ScenarioErrors

CASES_DIR = Path(__file__).parent / "multi_errors"
CASES = sorted(CASES_DIR.glob("*.yaml"))


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_every_mistake_is_reported(case: Path) -> None:
    expected = case.with_suffix(".txt").read_text().strip()
    with pytest.raises(ScenarioErrors) as caught:
        loads_scenario(case.read_bytes(), case.name)
    assert str(caught.value) == expected
    lines = expected.splitlines()
    assert len(lines) >= 3
    located = [line for line in lines if line.startswith(f"{case.name}:") and "; " in line]
    positions = [tuple(int(n) for n in line.split(":")[1:3]) for line in located]
    assert positions == sorted(positions)  # file order, so a reader can go top to bottom


def test_the_limit_stops_the_reading() -> None:
    text = "name: t\ntopology: {br0: {vms: [vm1]}}\nsteps:\n" + "  - wait: -1\n" * 50
    with pytest.raises(ScenarioErrors) as caught:
        loads_scenario(text, "many.yaml")
    assert len(caught.value.errors) == MAX_ERRORS
    assert str(caught.value).endswith(f"many.yaml: stopped after {MAX_ERRORS} errors")


def test_one_mistake_is_still_one_plain_error() -> None:
    """The single-error messages of errors/ are unchanged: one mistake is not a list of one."""
    with pytest.raises(ScenarioError) as caught:
        loads_scenario("name: t\ntopology: {br0: {vms: [vm1]}}\nsteps:\n  - wait: -1\n", "one.yaml")
    assert not isinstance(caught.value, ScenarioErrors)
    assert (
        str(caught.value)
        == "one.yaml:4:11: wait -1 is negative; wait must be seconds from 0 to 120"
    )


def test_the_same_files_without_the_mistakes_load() -> None:
    """The positive case: fixing what was reported is enough, nothing else was hiding."""
    fixed = (CASES_DIR / "several_sections.yaml").read_text()
    for wrong, right in [
        ("ageing:", "ageing_time:"),
        ('"52:54:00:00:00:zz"', '"52:54:00:00:00:01"'),
        ("paylod", "payload"),
        ("at: vm3", "at: vm2"),
        ("wiat", "wait"),
    ]:
        fixed = fixed.replace(wrong, right)
    assert loads_scenario(fixed, "fixed.yaml").name == "five mistakes, one run"
