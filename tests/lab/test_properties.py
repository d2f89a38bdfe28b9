"""ForwardingMachine against the kernel: it passes with the real model and catches wrong ones.

A property machine that always passes proves nothing, so most of this file runs it with
deliberately wrong models and checks the failure: found, shrunk to a couple of steps, printed
as a pytest test and saved as a scenario — and both reproducers fail on a fresh lab, because
they assert what the wrong model expected where the kernel does something else.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

from vlab import Lab
from vlab import properties as props
from vlab.properties import ForwardingMachine, run_machine
from vlab.reference.bridge import PAUSE, BridgeModel, LearnedEntry
from vlab.scenario import load_scenario, run_scenario
from vlab.scenario.spec import Send

pytestmark = pytest.mark.vlab

# What users write; collected as tests and run with the --vlab-profile settings.
TestDefaultTopology = ForwardingMachine.TestCase
TestGeneratedPortOptions = ForwardingMachine.with_topology(
    port_options=True, name="GeneratedPortsMachine"
).TestCase

HUNT = settings(
    max_examples=300,
    stateful_step_count=30,
    deadline=None,
    database=None,
    derandomize=True,  # the same search on every CI run
    report_multiple_bugs=False,
    phases=[Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)


class ForgetsHairpin(BridgeModel):
    """Never reflects a frame back out of its ingress port."""

    def hairpin_reflects(self, port: str) -> bool:
        return False


class FloodsPause(BridgeModel):
    """Floods 01:80:c2:00:00:01 like any other group instead of dropping it."""

    def link_local_forwarded(self, ingress: str, dst: str) -> bool:
        return dst == PAUSE or super().link_local_forwarded(ingress, dst)


class StickyRoams(BridgeModel):
    """Lets sticky entries move like any other."""

    def entry_roams(self, entry: LearnedEntry, port: str) -> bool:
        return entry.port != port


@pytest.fixture
def repro_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VLAB_REPRO_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def reproductions(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Names of the machines a reproducer was built for, one entry per build."""
    built: list[str] = []
    original = props.reproduce

    def counting(machine: ForwardingMachine, message: str, kind: str) -> props.Failure:
        built.append(type(machine).__name__)
        return original(machine, message, kind)

    monkeypatch.setattr(props, "reproduce", counting)
    yield built


def hunt(machine: type[ForwardingMachine]) -> props.Failure:
    machine.last_failure = None
    with pytest.raises(AssertionError):
        run_machine(machine, settings=HUNT)
    assert machine.last_failure is not None, "the machine failed without a reproducer"
    return machine.last_failure


def _artifacts() -> Path:
    """Failure pcaps of replays go beside the reproducers (the test's tmp dir), not to /tmp."""
    return Path(os.environ["VLAB_REPRO_DIR"]) / "replay"


def replay_test(source: str) -> None:
    """Run the printed reproducer as pytest would, on a fresh lab."""
    namespace: dict[str, object] = {}
    exec(compile(source, "test_reproducer.py", "exec"), namespace)
    test = namespace["test_reproducer"]
    with Lab(name="replay", artifacts=_artifacts()) as lab:
        test(lab)  # type: ignore[operator]


def assert_lint_clean(source: str, directory: Path) -> None:
    """The printed test is meant to be pasted into a suite: it must pass the project's linter."""
    ruff = shutil.which("ruff")
    if ruff is None:
        return
    path = directory / "test_reproducer.py"
    path.write_text(source)
    checked = subprocess.run(
        [ruff, "check", "--isolated", "--line-length", "100", "--select", "E,F,W,I", str(path)],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + source


def replay_scenario(path: Path) -> str:
    scenario = load_scenario(path)
    with Lab(name="replay", artifacts=_artifacts()) as lab, pytest.raises(AssertionError) as failed:
        run_scenario(scenario, lab)
    return str(failed.value)


def assert_fails_after_last_send(failure: props.Failure) -> None:
    """The saved scenario passes every step the machine saw pass and fails at the check of the
    step that failed in the machine (its last)."""
    assert failure.scenario_path is not None
    text = replay_scenario(failure.scenario_path)
    steps = failure.scenario.steps
    last_send = max(i for i, step in enumerate(steps, 1) if isinstance(step, Send))
    failed = re.match(r"step (\d+) \((expect|fdb)", text)
    assert failed is not None and int(failed.group(1)) > last_send, text


@pytest.mark.parametrize(
    ("model", "port_options", "sends", "receiver_text"),
    [
        (ForgetsHairpin, True, 1, r"^(\w+) sent .*\n  \1: got 1 copy, the model expects 0"),
        (FloodsPause, False, 1, r"^\w+ sent \S+ > 01:80:c2:00:00:01 .*nothing arrived"),
    ],
)
def test_wrong_model_fails_and_shrinks_to_a_replayable_example(
    model: type[BridgeModel],
    port_options: bool,
    sends: int,
    receiver_text: str,
    repro_dir: Path,
    reproductions: list[str],
) -> None:
    machine = ForwardingMachine.with_topology(
        port_options=port_options, model_class=model, name=f"{model.__name__}Machine"
    )
    failure = hunt(machine)

    assert failure.steps <= 2, failure.test_source
    assert sum(isinstance(op, props.Sent) for op in failure.ops) == sends
    assert re.search(receiver_text, failure.message, re.S), failure.message
    assert reproductions == [machine.__name__], "a reproducer for anything but the final example"

    assert failure.scenario_path is not None and failure.scenario_path.parent == repro_dir
    assert load_scenario(failure.scenario_path) == failure.scenario
    assert_fails_after_last_send(failure)
    with pytest.raises(AssertionError):
        replay_test(failure.test_source)
    assert_lint_clean(failure.test_source, repro_dir)


def test_fdb_disagreement_is_reproduced_with_the_models_table(repro_dir: Path) -> None:
    failure = hunt(ForwardingMachine.with_topology(model_class=StickyRoams, name="StickyRoams"))

    assert failure.message.startswith("fdb differs"), failure.message
    assert failure.steps <= 3, failure.test_source
    assert "assert fdb ==" in failure.test_source
    assert_fails_after_last_send(failure)
    with pytest.raises(AssertionError):
        replay_test(failure.test_source)
    assert_lint_clean(failure.test_source, repro_dir)


def test_testcase_uses_the_vlab_profile_and_is_marked() -> None:
    case = ForwardingMachine.TestCase
    assert case.settings.max_examples == 25  # type: ignore[attr-defined]  # ci profile
    assert [m.name for m in case.pytestmark] == ["vlab"]  # type: ignore[attr-defined]
    assert ForwardingMachine.TestCase is case


def test_lab_is_built_once_per_run_and_closed_after(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[props.LiveLab] = []
    original = props.LiveLab.__init__

    def counting(self: props.LiveLab, topology: props.MachineTopology) -> None:
        original(self, topology)
        built.append(self)

    monkeypatch.setattr(props.LiveLab, "__init__", counting)
    quick = settings(HUNT, max_examples=10, phases=[Phase.generate])
    run_machine(ForwardingMachine, settings=quick)
    assert len(built) == 1
    assert built[0].lab._closed
    assert not ForwardingMachine._labs
