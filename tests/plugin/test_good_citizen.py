"""With vlab installed, someone else's project runs exactly as before.

Each test builds an unrelated project in a temporary directory (its own pyproject, its own tests,
YAML that is not a scenario — an Ansible playbook under ``deploy/scenarios/``) and runs pytest on
it in a subprocess, with vlab's plugin loaded from its entry point as it would be for any user.
Every "not collected" assertion is paired with the same file being collected when the project
does ask for it, so the check is shown able to see the file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SCENARIO = (ROOT / "scenarios" / "forwarding" / "broadcast.yaml").read_text()
PLAYBOOK = """\
- hosts: all
  become: true
  tasks:
    - name: install nginx
      apt: {name: nginx, state: present}
"""
MODULES_SEEN = """\
import sys

def pytest_collection_finish(session):
    # what was imported by the time collection ends (hypothesis's own plugin imports hypothesis
    # later, in its terminal summary, in every pytest run: not vlab's doing)
    with open("modules.txt", "w") as out:
        out.write("\\n".join(sorted(sys.modules)))
"""
HEAVY = ("scapy", "pyroute2", "hypothesis", "yaml", "vlab.lab", "vlab.scenario.load")


def project(tmp_path: Path, ini: str = "") -> Path:
    """An unrelated project: one passing test, a playbook, YAML under scenarios/ and elsewhere."""
    (tmp_path / "pyproject.toml").write_text(
        f'[project]\nname = "shop"\nversion = "1"\n\n[tool.pytest.ini_options]\n{ini}\n'
    )
    for rel, text in {
        "tests/test_shop.py": "def test_price():\n    assert 2 + 2 == 4\n",
        "conftest.py": MODULES_SEEN,
        "deploy/scenarios/site.yaml": PLAYBOOK,
        "scenarios/flood.yaml": SCENARIO,
        "elsewhere/mine.yaml": SCENARIO,
        ".github/workflows/ci.yml": "on: push\njobs: {}\n",
    }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


def pytest_in(where: Path, *args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHON"))}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", *args],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, done.stdout + done.stderr


def test_plain_pytest_is_unchanged(tmp_path: Path) -> None:
    code, out = pytest_in(project(tmp_path))
    assert code == 0, out
    assert "1 passed" in out and "error" not in out.lower(), out


@pytest.mark.vlab
def test_pytest_vlab_is_unchanged_too(tmp_path: Path) -> None:
    code, out = pytest_in(project(tmp_path), "--vlab")
    assert code == 0, out
    assert "1 passed" in out and "error" not in out.lower(), out


def test_the_playbook_would_be_seen_if_named(tmp_path: Path) -> None:
    """The positive case of the two tests above: named, the playbook is collected (and refused)."""
    code, out = pytest_in(project(tmp_path), "deploy/scenarios/site.yaml")
    assert code != 0
    assert "site.yaml:1:1: the document is not a mapping" in out, out


def test_a_named_yaml_outside_scenarios_is_collected(tmp_path: Path) -> None:
    code, out = pytest_in(project(tmp_path), "--collect-only", "elsewhere/mine.yaml")
    assert code == 0, out
    assert "elsewhere/mine.yaml::mine" in out, out


@pytest.mark.vlab
def test_a_named_yaml_outside_scenarios_runs(tmp_path: Path) -> None:
    code, out = pytest_in(project(tmp_path), "--vlab", "elsewhere/mine.yaml")
    assert code == 0, out
    assert "1 passed" in out, out


def test_the_ini_option_names_the_scenario_paths(tmp_path: Path) -> None:
    code, out = pytest_in(project(tmp_path, 'vlab_scenarios = ["scenarios"]'), "--collect-only")
    assert code == 0, out
    assert "scenarios/flood.yaml::flood" in out, out
    assert "site.yaml" not in out and "mine.yaml" not in out and "ci.yml" not in out, out


def test_the_command_line_option_adds_scenario_paths(tmp_path: Path) -> None:
    code, out = pytest_in(project(tmp_path), "--collect-only", "--vlab-scenarios=elsewhere")
    assert code == 0, out
    assert "elsewhere/mine.yaml::mine" in out and "flood.yaml" not in out, out


def _imported(where: Path) -> set[str]:
    return set((where / "modules.txt").read_text().split())


@pytest.mark.parametrize("flags", [(), ("--vlab",)], ids=["plain", "vlab"])
def test_the_plugin_imports_nothing_heavy(tmp_path: Path, flags: tuple[str, ...]) -> None:
    """Neither plain pytest nor ``--vlab`` of a suite without lab or property tests loads them."""
    if flags and os.geteuid() != 0:
        pytest.skip("--vlab in a subprocess needs root here")
    where = project(tmp_path)
    code, out = pytest_in(where, "--collect-only", *flags)
    assert code == 0, out
    loaded = _imported(where)
    assert "vlab.plugin" in loaded  # the observation works: the plugin is there ...
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY or m in HEAVY)
    assert heavy == []  # ... and nothing it does not need


def test_the_import_check_sees_heavy_modules(tmp_path: Path) -> None:
    """The positive case: collecting a scenario does load the YAML reader and the lab."""
    where = project(tmp_path)
    code, out = pytest_in(where, "--collect-only", "elsewhere/mine.yaml")
    assert code == 0, out
    assert {"yaml", "vlab.scenario.load"} <= _imported(where)


@pytest.mark.vlab
def test_vlab_run_takes_any_directory(tmp_path: Path) -> None:
    """``vlab run DIR`` treats every YAML under DIR as a scenario, wherever DIR is."""
    where = project(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "vlab.cli", "run", "elsewhere"],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed   elsewhere/mine.yaml::mine" in done.stdout, done.stdout
