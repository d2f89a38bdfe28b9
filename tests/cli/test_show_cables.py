"""``vlab up`` of a lab with a cable between bridges, and ``vlab show`` drawing it."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import DATA, Runner, Up

pytestmark = pytest.mark.vlab


def test_show_draws_the_cable_and_names_it_in_the_fdb(
    vlab: Runner, start_up: Callable[[Path], Up]
) -> None:
    up = start_up(DATA / "cables.yaml")
    poke = vlab("exec", "br0", "--", "ip", "-br", "link", "show", "cab0a")
    assert poke.returncode == 0 and "cab0a" in poke.stdout, poke.stderr
    shown = vlab("show")
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert "cables between bridges:" in text
    assert "br0 [cab0a forwarding] ===trunk=== br1 [cab0b forwarding]" in text
    code, out, err = up.stop(signal.SIGINT)
    assert code == 0, err
    assert any(line.startswith("trunk ") and "cable" in line for line in out.splitlines())
