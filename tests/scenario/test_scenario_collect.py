"""Scenario files become pytest items with the right markers for the running kernel."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from vlab.scenario import loads_scenario
from vlab.scenario.collect import markers
from vlab.scenario.features import missing
from vlab.scenario.select import is_scenario_path

ROOT = Path(__file__).parents[2]

SCENARIO = """
name: t
xfail: {kernel: ">=5.18", reason: still broken}
skip: {kernel: "<4.0", reason: hangs}
requires: [vlan_filtering]
topology: {br0: {vms: [vm1]}}
steps:
  - wait: 0
"""


def names(release: str) -> list[tuple[str, str]]:
    scenario = loads_scenario(SCENARIO)
    return [(m.name, str(m.kwargs.get("reason", ""))) for m in markers(scenario, release)]


def test_only_configured_or_named_files_are_collected() -> None:
    roots = [Path("/x/scenarios")]
    named = [Path("/y/mine.yaml")]
    assert is_scenario_path(Path("/x/scenarios/bugs/a.yaml"), named, roots)
    assert is_scenario_path(Path("/x/scenarios/a.yml"), named, roots)
    assert is_scenario_path(Path("/y/mine.yaml"), named, roots)
    assert not is_scenario_path(Path("/y/other.yaml"), named, roots)
    assert not is_scenario_path(Path("/x/deploy/scenarios/site.yaml"), named, roots)
    assert not is_scenario_path(Path("/x/scenarios/readme.md"), named, roots)


def test_markers_follow_the_kernel_release() -> None:
    on_618 = names("6.18.44-fc")
    assert on_618[0] == ("vlab", "")
    assert ("xfail", "kernel 6.18.44-fc: still broken") in on_618
    assert not any(name == "skip" and "hangs" in why for name, why in on_618)
    on_old = names("3.10.0")
    assert ("skip", "kernel 3.10.0: hangs") in on_old
    assert not any(name == "xfail" for name, _ in on_old)


def test_missing_features_come_from_the_kernel_config() -> None:
    config = {"CONFIG_BRIDGE": "y", "CONFIG_STP": "y", "CONFIG_NET_SCH_NETEM": "m"}
    assert missing(("stp", "netem"), config) is None
    assert missing(("vlan_filtering",), config) == (
        "this kernel lacks vlan_filtering (CONFIG_BRIDGE_VLAN_FILTERING is not set)"
    )


def test_collection_and_bad_file_report(tmp_path: Path) -> None:
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "good.yaml").write_text(SCENARIO)
    (tmp_path / "scenarios" / "bad.yaml").write_text("name: t\ntopolgy: {}\nsteps: []\n")
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent(
            """
            import pytest

            @pytest.fixture
            def lab():
                raise AssertionError("collection only")
            """
        )
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "--vlab-scenarios",
            str(tmp_path / "scenarios"),
            "--rootdir",
            str(tmp_path),
            str(tmp_path / "scenarios"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    out = result.stdout + result.stderr
    assert "scenarios/good.yaml::good" in out
    assert "bad.yaml:2:1: unknown key 'topolgy' in a scenario; did you mean 'topology'?" in out
    assert "Traceback" not in out
