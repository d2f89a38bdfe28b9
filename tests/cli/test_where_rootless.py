"""``vlab show --host`` / ``vlab where`` as an unprivileged user on the namespaces of that user's
own rootless lab (``vlab up`` as nobody): joining the lab's user namespace makes its taps, their
holder and the device check all readable, where another user's lab is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cli_helpers import DATA
from test_rootless import as_nobody, run_as_nobody
from test_rootless import nobody_dir as nobody_dir
from test_rootless import venv as venv

from vlab.cli.state import RunningLab
from vlab.hostview import schema

pytestmark = pytest.mark.vlab
VM1 = "52:54:00:00:00:01"  # vm1 of tests/cli/data/lab.yaml


def test_own_rootless_lab_is_inspected_with_holders(venv: Path, nobody_dir: Path) -> None:
    (nobody_dir / "lab.yaml").write_text((DATA / "lab.yaml").read_text())
    up = subprocess.Popen(
        as_nobody(venv, nobody_dir, "vlab", "up", "lab.yaml"),
        cwd=nobody_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    owner: int | None = None  # the vlab up process itself: runuser forwards no signal
    try:
        deadline = time.monotonic() + 20
        while not list((nobody_dir / "state").glob("*.json")):
            assert up.poll() is None, up.communicate()
            assert time.monotonic() < deadline, "vlab up did not publish its lab"
            time.sleep(0.05)
        (state,) = (nobody_dir / "state").glob("*.json")
        lab = RunningLab.from_json(state.read_text())
        owner = lab.pid
        path = lab.ns_path("switch")
        shown = run_as_nobody(venv, nobody_dir, "vlab", "show", "--host", "--json", "--netns", path)
        assert shown.returncode == 0, shown.stderr
        doc = json.loads(shown.stdout)
        assert schema.validate(doc) == []
        (tap,) = doc["taps"]
        assert (tap["name"], tap["bridge"]) == ("vnet0", "br0")
        assert [(h["pid"], h["verified"]) for h in tap["holders"]] == [(lab.pid, True)]
        # the lab's own steps made br0 learn h1's MAC, not vm1's (an emulated VM sends nothing)
        done = run_as_nobody(venv, nobody_dir, "vlab", "where", VM1, "--netns", path)
        assert done.returncode == 1 and "is nowhere" in done.stderr, done.stdout + done.stderr
        tap_mac = tap["mac"]
        done = run_as_nobody(venv, nobody_dir, "vlab", "where", tap_mac, "--netns", path)
        assert done.returncode == 0, done.stderr
        assert "is the own MAC of tap vnet0, the host side on bridge br0" in done.stdout
        # root's namespaces stay closed to nobody, with the reason
        mine = run_as_nobody(venv, nobody_dir, "vlab", "where", VM1, "--netns", "1")
        assert mine.returncode == 1 and "run as root" in mine.stderr, mine.stderr
    finally:
        if owner is not None:
            os.kill(owner, signal.SIGINT)  # Ctrl-C: the lab is torn down, the state file goes
        try:
            up.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            if owner is not None:
                os.kill(owner, signal.SIGKILL)
            up.kill()
            up.communicate(timeout=20)
    assert up.returncode == 0 and not list((nobody_dir / "state").glob("*.json"))
