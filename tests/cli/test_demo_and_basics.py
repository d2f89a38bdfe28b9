"""``vlab demo`` and the command line's behaviour on mistakes (one line, an exit code)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import DATA, Runner

from vlab.cli.table import table


@pytest.mark.vlab
def test_demo_frames_go_where_the_bridge_puts_them(vlab: Runner) -> None:
    done = vlab("demo")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    steps = [line for line in out.splitlines() if line[:2] in ("1 ", "2 ", "3 ", "4 ")]
    assert len(steps) == 4 and all(line.endswith(" ok") for line in steps)
    flood, reply, known, broadcast = (line.split()[-5:] for line in steps)
    assert flood == ["sent", "got", "got", "got", "ok"]  # vm1 vm2 h1 uplink
    assert reply == ["got", "-", "-", "sent", "ok"]
    assert known == ["sent", "-", "-", "got", "ok"]
    assert broadcast == ["got", "sent", "got", "got", "ok"]
    assert "52:54:00:00:00:01 (vm1's NIC) is behind port vnet0 (vm1) on bridge br0" in out
    assert "02:00:00:00:00:fe is behind port eth0 (uplink)" in out
    assert out.rstrip().endswith("every frame arrived where the bridge should put it")


def test_help_lists_every_command(vlab: Runner) -> None:
    done = vlab("--help")
    assert done.returncode == 0
    for command in ("demo", "doctor", "up", "exec", "show", "run"):
        assert command in done.stdout


def test_console_script_is_declared() -> None:
    text = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert 'vlab = "vlab.cli:main"' in text


def test_no_command_or_unknown_command_is_a_usage_error(vlab: Runner) -> None:
    assert vlab().returncode == 2
    assert vlab("frobnicate").returncode == 2


@pytest.mark.vlab
def test_up_with_a_broken_file_is_one_located_line(vlab: Runner) -> None:
    done = vlab("up", str(DATA / "broken.yaml"))
    assert done.returncode == 1
    assert done.stdout == ""
    line = done.stderr.strip()
    assert "\n" not in line
    assert line.startswith("vlab: ") and "broken.yaml:7:" in line and "'vm9'" in line


@pytest.mark.vlab
def test_up_with_a_missing_file(vlab: Runner) -> None:
    done = vlab("up", "no/such/file.yaml")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "no/such/file.yaml" in done.stderr


def test_exec_and_show_without_a_lab(vlab: Runner) -> None:
    for args in (("show",), ("exec", "br0", "--", "true")):
        done = vlab(*args)
        assert done.returncode == 1
        assert done.stderr.startswith("vlab: no running lab") and done.stderr.count("\n") == 1
        assert "vlab up FILE" in done.stderr


def test_stale_state_files_are_ignored_and_removed(vlab: Runner, state_dir: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs
    state_dir.mkdir(parents=True)
    stale = state_dir / f"{dead.pid}.json"
    state = {"format": 1, "pid": dead.pid, "start": 1, "name": "old", "source": "x.yaml"}
    stale.write_text(json.dumps({**state, "rootless": False, "namespaces": {}, "nodes": []}))
    reused = state_dir / f"{os.getpid()}.json"  # a live pid, but not the process that wrote it
    reused.write_text(stale.read_text().replace(f'"pid": {dead.pid}', f'"pid": {os.getpid()}'))
    done = vlab("show")
    assert done.returncode == 1 and "no running lab" in done.stderr
    assert not stale.exists() and not reused.exists()


@pytest.mark.vlab
def test_run_reports_progress_and_summary(vlab: Runner, tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text((DATA / "lab.yaml").read_text())
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (DATA / "lab.yaml").read_text().replace("only: true", "only: true}\n  - expect: {at: h1")
    )
    done = vlab("run", str(good), str(bad))
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "running 2 test(s)"
    assert lines[1].startswith("[1/2] passed   ") and "good.yaml" in lines[1]
    assert lines[2].startswith("[2/2] failed   ") and "bad.yaml" in lines[2]
    failure = done.stdout[done.stdout.index("FAILED") :]
    assert "step 3 (expect at h1" in failure  # the scenario's own words, not a traceback
    assert lines[-1].startswith("1 passed, 1 failed in ")


def test_run_of_a_missing_path(vlab: Runner) -> None:
    done = vlab("run", "nowhere.yaml")
    assert done.returncode == 4 and "nowhere.yaml" in done.stderr


def test_table_aligns_columns_without_trailing_blanks() -> None:
    text = table(("A", "LONGER", "C"), [("x", 1, None), ("wide cell", "", "z")])
    assert text.splitlines() == [
        "A          LONGER  C",
        "x          1       -",
        "wide cell          z",
    ]


def test_python_m_vlab_cli_works_too() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "vlab.cli", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and "vlab doctor" in done.stdout
