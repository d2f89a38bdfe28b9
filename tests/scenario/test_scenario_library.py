"""Every library scenario survives load -> dump -> load and then runs on a real lab.

Running the re-loaded copy (not the original) proves the writer keeps everything a failure needs
to reproduce. The scenarios are also collected from ``scenarios/`` directly; this test adds the
round trip through the writer and the checks that the runner can fail at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vlab.scenario import load_scenario, loads_scenario
from vlab.scenario.collect import markers
from vlab.scenario.runner import run_scenario
from vlab.scenario.spec import (
    BridgeSpec,
    EndpointSpec,
    Expect,
    FrameSpec,
    Scenario,
    Send,
    TextPayload,
)
from vlab.scenario.writer import dump_scenario

pytestmark = pytest.mark.vlab

LIBRARY = Path(__file__).parents[2] / "scenarios"
FILES = sorted(LIBRARY.rglob("*.yaml"))


def _case(path: Path) -> Any:
    scenario = load_scenario(path)
    return pytest.param(path, marks=markers(scenario)[1:], id=str(path.relative_to(LIBRARY)))


@pytest.mark.parametrize("path", [_case(p) for p in FILES])
def test_library_scenario_round_trips_and_runs(path: Path, lab: Any) -> None:
    scenario = loads_scenario(dump_scenario(load_scenario(path)), path.name)
    run_scenario(scenario, lab)


def test_library_has_behaviours_and_bugs() -> None:
    bugs = list((LIBRARY / "bugs").glob("*.yaml"))
    assert len(FILES) - len(bugs) >= 25
    assert len(bugs) >= 5
    assert all(load_scenario(b).references for b in bugs)


def _known_unicast(expect_at: tuple[str, ...]) -> Scenario:
    hello = FrameSpec(src="vm2.mac", dst="ff:ff:ff:ff:ff:ff", payload=TextPayload("hello"))
    probe = FrameSpec(src="vm1.mac", dst="vm2.mac", payload=TextPayload("probe"))
    return Scenario(
        name="known unicast",
        bridges=(
            BridgeSpec(
                "br0", vms=(EndpointSpec("vm1"), EndpointSpec("vm2")), uplink=EndpointSpec("up")
            ),
        ),
        steps=(
            Send("vm2", hello),
            Expect(("vm1", "up"), only=True),
            Send("vm1", probe),
            Expect(expect_at, only=True, note="where the probe must arrive"),
        ),
    )


def test_correct_expectation_passes(lab: Any) -> None:
    run_scenario(_known_unicast(("vm2",)), lab)


def test_wrong_expectation_fails_naming_the_step(lab: Any) -> None:
    with pytest.raises(AssertionError) as caught:
        run_scenario(_known_unicast(("vm2", "up")), lab)
    text = str(caught.value)
    assert text.startswith("step 4 (expect at vm2, up only) failed: where the probe must arrive")
    assert "up" in text and "did not receive the expected frame" in text
