"""Parallel and distributed runs: identically named labs in several workers never collide.

Labs are anonymous namespaces held by fds, so two workers can both have a ``br0`` with a ``vm1``
on ``vnet0`` at the same moment. The suite below proves it rather than assuming it: each of its
tests holds a lab with the same names and MACs for a while, and the check here is that two
workers ran such tests with overlapping lifetimes and all passed.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import DATA, ROOT

pytestmark = [
    pytest.mark.vlab,
    pytest.mark.skipif(importlib.util.find_spec("xdist") is None, reason="needs pytest-xdist"),
]
SCENARIOS = [
    "forwarding/broadcast.yaml",
    "forwarding/known_unicast.yaml",
    "forwarding/learning.yaml",
]


SUITE_TESTS = 7


def passed(suite: Path, stdout: str) -> bool:
    """Every suite test and every copied scenario passed (none skipped, none failed)."""
    expected = SUITE_TESTS + len(list((suite / "scenarios").rglob("*.yaml")))
    return f"{expected} passed" in stdout and "failed" not in stdout and "error" not in stdout


def make_suite(directory: Path) -> Path:
    """The lab suite plus a few scenario files, as a project of their own."""
    directory.mkdir()
    shutil.copy(DATA / "lab_suite.py", directory / "test_lab_suite.py")
    for name in SCENARIOS:
        source = ROOT / "scenarios" / name
        if source.exists():
            target = directory / "scenarios" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    (directory / "log").mkdir()
    # a project says where its scenarios are; vlab collects no other YAML
    (directory / "pytest.ini").write_text("[pytest]\nvlab_scenarios = scenarios\n")
    return directory


def run_suite(suite: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--vlab", "-p", "no:cacheprovider", "-q", *args, "."],
        cwd=suite,
        env={**os.environ, "VLAB_SUITE_LOG": str(suite / "log")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def overlapping_workers(suite: Path) -> set[str]:
    """Workers whose same-named labs were alive at the same time as another worker's."""
    records = []
    for log in (suite / "log").glob("*.log"):
        for line in log.read_text().splitlines():
            _name, worker, start, end = line.split()
            records.append((worker, float(start), float(end)))
    both = set()
    for w1, s1, e1 in records:
        for w2, s2, e2 in records:
            if w1 != w2 and s1 < e2 and s2 < e1:
                both |= {w1, w2}
    return both


def test_two_workers_with_identical_labs(tmp_path: Path) -> None:
    suite = make_suite(tmp_path / "suite")
    done = run_suite(suite, "-n", "2")
    assert passed(suite, done.stdout), done.stdout[-2000:]
    assert overlapping_workers(suite) == {"gw0", "gw1"}


def test_distributed_over_popen_gateways(tmp_path: Path) -> None:
    """The path ``--tx ssh=...`` takes, on loopback: execnet gateways, explicit interpreter."""
    suite = make_suite(tmp_path / "suite")
    tx = f"2*popen//python={sys.executable}"
    done = run_suite(suite, "--dist", "load", "--tx", tx)
    assert passed(suite, done.stdout), done.stdout[-2000:]
    assert overlapping_workers(suite) == {"gw0", "gw1"}
