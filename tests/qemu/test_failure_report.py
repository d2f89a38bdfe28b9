"""A failing QEMU lab test's report carries the guest kernel's log, although the guest boots quiet.

The failing test runs in a subprocess (its failure is the point), on the plugin's ``lab``
fixture as any user's test would.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from vlab.qemu import qemu_unavailable

pytestmark = [
    pytest.mark.vlab,
    pytest.mark.qemu,
    pytest.mark.skipif(qemu_unavailable() is not None, reason=str(qemu_unavailable())),
]
FAILING = """
from vlab import Lab

def test_fails_with_a_guest(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm = lab.vm("vm1", bridge=br, guest="qemu")
    assert vm.run("true").ok
    assert False, "the test's own failure"
"""


def test_report_shows_the_guest_kernel_log(tmp_path: Path) -> None:
    (tmp_path / "test_fails.py").write_text(FAILING)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--vlab", "-p", "no:cacheprovider", "test_fails.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout
    assert done.returncode == 1 and "the test's own failure" in out, out[-3000:]
    assert "boot log of vm1" in out, out[-3000:]
    found = re.search(r"kernel log of vm1 \(dmesg, in (\S+)\), last lines:\n(.*)", out, re.S)
    assert found is not None, out[-3000:]
    assert re.search(r"^\[ *\d+\.\d+\] ", found.group(2), re.M)  # kernel lines, timestamped
    saved = Path(found.group(1)).read_text()
    assert "Linux version" in saved  # the whole log, from the first line the kernel printed
