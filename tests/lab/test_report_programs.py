"""A failing lab test's report shows its programs' output and the mdb; marker options reach
the lab fixture, and a wrong one is a clear error (checked in a pytest run of its own)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.vlab

TESTS = textwrap.dedent(
    """
    import pytest

    def test_fails_with_a_program(lab):
        br = lab.bridge("br0")
        h = lab.host("h", bridge=br)
        br.mdb_add("239.1.2.3", h)
        p = h.spawn(["sh", "-c", "echo daemon-says-hello; exec sleep 100"])
        while "hello" not in p.output():
            pass
        assert False, "on purpose"

    @pytest.mark.vlab(loud=True)
    def test_bad_marker(lab):
        pass
    """
)


def test_report_has_program_output_and_mdb(tmp_path: Path) -> None:
    (tmp_path / "test_it.py").write_text(TESTS)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--vlab",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "test_it.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = result.stdout
    assert "daemon-says-hello" in out and "program sh -c" in out
    assert "mdb of br0:" in out and "239.1.2.3" in out
    assert "the lab options it takes: quiet" in out
