"""Every bad scenario in errors/ fails to load with exactly the message beside it.

The pairs pin both halves of each message (where, and how to fix) so wording regressions show up
in review as a diff of the .txt file. To add a case, drop NAME.yaml here and write NAME.txt with
the message you want users to see.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vlab.errors import LabError
from vlab.scenario import ScenarioError, loads_scenario

ERRORS = Path(__file__).parent / "errors"
CASES = sorted(ERRORS.glob("*.yaml"))


def test_there_are_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_bad_file_gives_its_message(case: Path) -> None:
    expected = case.with_suffix(".txt").read_text().strip()
    with pytest.raises(ScenarioError) as caught:
        loads_scenario(case.read_bytes(), case.name)
    assert str(caught.value) == expected


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_message_has_location_and_fix(case: Path) -> None:
    with pytest.raises(LabError) as caught:
        loads_scenario(case.read_bytes(), case.name)
    location, _, rest = str(caught.value).partition(": ")
    file, line, col = location.split(":")
    assert file == case.name and int(line) >= 1 and int(col) >= 1
    assert "; " in rest, "the message must say what is allowed or how to fix it"


def test_every_message_file_has_its_scenario() -> None:
    orphans = [t.name for t in ERRORS.glob("*.txt") if not t.with_suffix(".yaml").exists()]
    assert orphans == []
