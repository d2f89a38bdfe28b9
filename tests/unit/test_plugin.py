"""The plugin's contract with CI: lab tests skip without --vlab, and --vlab on a machine that
cannot build labs stops the session with one message instead of skipping everything."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

LAB_TESTS = textwrap.dedent(
    """
    import pytest

    @pytest.mark.vlab
    def test_marked():
        pass

    def test_uses_the_fixture(lab):
        pass

    def test_plain():
        pass
    """
)


def run_pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-rs", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_lab_tests_skip_without_vlab(tmp_path: Path) -> None:
    (tmp_path / "test_labs.py").write_text(LAB_TESTS)
    result = run_pytest(tmp_path, "test_labs.py")
    assert result.returncode == 0, result.stdout
    assert "1 passed, 2 skipped" in result.stdout
    assert result.stdout.count("lab tests need --vlab") == 2


def test_vlab_on_a_machine_without_labs_stops_the_session(tmp_path: Path) -> None:
    (tmp_path / "test_labs.py").write_text(LAB_TESTS)
    # The machine "cannot" create namespaces: patched before the plugin configures itself.
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent(
            """
            from vlab import netns
            from vlab.errors import LabError

            def refuse(cls, name):
                raise LabError("cannot create a network namespace (Operation not permitted)")

            netns.NetNS.create = classmethod(refuse)
            """
        )
    )
    result = run_pytest(tmp_path, "--vlab", "test_labs.py")
    out = result.stdout + result.stderr
    assert result.returncode == 4, out  # usage error: never green, never "all skipped"
    assert "--vlab: cannot build labs on this machine" in out
    assert "Operation not permitted" in out
    assert "passed" not in out and "skipped" not in out
