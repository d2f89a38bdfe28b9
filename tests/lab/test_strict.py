"""Strict mode: a lab test that ends with frames nobody consumed fails, listing them; a clean
test passes; the option and the marker each turn it on, and the marker can turn it off."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.vlab

INNER = textwrap.dedent(
    """
    import pytest
    from scapy.layers.l2 import Ether

    def flood(lab):
        br = lab.bridge("br0")
        vm1, vm2 = lab.vm("vm1", bridge=br), lab.vm("vm2", bridge=br)
        up = lab.uplink(br)
        f = Ether(src=vm1.mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / b"leftover-probe"
        vm1.send(f)
        return f, vm2, up

    def test_leftover(lab):
        f, vm2, up = flood(lab)
        up.expect(f)  # vm2's copy is never looked at

    def test_clean(lab):
        f, vm2, up = flood(lab)
        lab.expect(f, at=[vm2, up])

    def test_cleared(lab):
        f, vm2, up = flood(lab)
        up.expect(f)
        vm2.clear()

    @pytest.mark.vlab_strict
    def test_marked_leftover(lab):
        f, vm2, up = flood(lab)
        up.expect(f)

    @pytest.mark.vlab_strict(False)
    def test_opted_out_leftover(lab):
        f, vm2, up = flood(lab)
        up.expect(f)

    def test_fails_on_its_own(lab):
        f, vm2, up = flood(lab)
        assert False, "the test's own failure"
    """
)


def run_inner(tmp_path: Path, *args: str) -> dict[str, str]:
    (tmp_path / "test_inner.py").write_text(INNER)
    pytest_argv = [sys.executable, "-m", "pytest", "--vlab", "-p", "no:cacheprovider"]
    result = subprocess.run(
        [*pytest_argv, "-p", "no:xdist", "-rA", "-q", *args, "test_inner.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    outcome: dict[str, str] = {}
    for line in result.stdout.splitlines():
        for word in ("PASSED", "FAILED", "ERROR"):
            if line.startswith(word + " "):
                name = line.split("::")[-1].split()[0]
                outcome[name] = outcome.get(name, "") + word  # PASSED then ERROR: teardown
    outcome["_stdout"] = result.stdout
    return outcome


def test_strict_option_fails_a_test_with_a_leftover_frame(tmp_path: Path) -> None:
    out = run_inner(tmp_path, "--vlab-strict")
    text = out["_stdout"]
    assert "ERROR" in out["test_leftover"], text
    assert out["test_clean"] == "PASSED", text
    assert out["test_cleared"] == "PASSED", text
    assert "ERROR" in out["test_marked_leftover"], text
    assert out["test_opted_out_leftover"] == "PASSED", text
    assert out["test_fails_on_its_own"] == "FAILED", text  # no second report on top
    assert "the test ended with frames nobody consumed" in text
    assert "at vm2 (vnet1): 1 frame(s)" in text and "Raw [" in text


def test_without_the_option_only_the_marker_is_strict(tmp_path: Path) -> None:
    out = run_inner(tmp_path)
    text = out["_stdout"]
    assert out["test_leftover"] == "PASSED", text
    assert out["test_clean"] == "PASSED", text
    assert "ERROR" in out["test_marked_leftover"], text
    assert out["test_opted_out_leftover"] == "PASSED", text
