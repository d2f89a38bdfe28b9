"""A failure's text survives artifacts that cannot be written; a lab's name never walks paths.

The disk-full and read-only cases are real: a child process mounts a tiny (then a read-only)
tmpfs in a private mount namespace of its own (``unshare --mount``: the mount vanishes with the
child and is never visible on the host), fills it, and makes ``expect`` fail with its artifacts
directory there. Before the fix the child saw ``OSError: [Errno 28] No space left on device``
instead of the expected/arrived text. In-process, a regular file where the artifacts directory
should be (which stops root too) does the same for expect, expect_none, expect_quiet and the
pytest report.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from scapy.layers.l2 import Ether

from vlab import Lab

pytestmark = pytest.mark.vlab
ROOT = Path(__file__).resolve().parents[2]
NOTE = "(pcaps and topology could not be written: "

CHILD = textwrap.dedent(
    """
    import errno, json, sys
    from pathlib import Path
    from scapy.layers.l2 import Ether
    from vlab import Lab

    where = Path(sys.argv[1])
    if sys.argv[2] == "full":
        try:  # fill the tmpfs to the last block
            with open(where / "filler", "wb") as fh:
                while True:
                    fh.write(b"x" * 4096)
                    fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    with Lab(name="full", artifacts=where / "artifacts") as lab:
        br = lab.bridge("br0")
        vm1, vm2 = lab.vm("vm1", bridge=br), lab.vm("vm2", bridge=br)
        vm1.send(Ether(src=vm1.mac, dst=vm2.mac, type=0x88B5) / b"arrived")
        try:
            vm2.expect(Ether(src=vm1.mac, dst=vm2.mac, type=0x88B5) / b"expected", timeout=0.2)
            text = "expect passed"
        except AssertionError as exc:
            text = str(exc)
    print(json.dumps(text))
    """
)


def _mount_and_fail(tmp_path: Path, how: str) -> str:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs unshare(1) and root for a private tmpfs")
    where = tmp_path / "mnt"
    where.mkdir()
    options = "size=64k" if how == "full" else "size=1m,ro"
    shell = f'mount -t tmpfs -o {options} vlabtest "{where}" && exec "$@"'
    unshare = ["unshare", "--mount", "--propagation", "private", "sh", "-c", shell, "sh"]
    done = subprocess.run(
        [*unshare, sys.executable, "-c", CHILD, str(where), how],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert os.listdir(where) == []  # the mount was the child's alone
    text: str = json.loads(done.stdout)
    return text


@pytest.mark.parametrize(
    ("how", "reason"),
    [("full", "No space left on device"), ("readonly", "Read-only file system")],
)
def test_expect_text_survives_an_unwritable_artifacts_dir(
    tmp_path: Path, how: str, reason: str
) -> None:
    text = _mount_and_fail(tmp_path, how)
    assert text.startswith("vm2 (port vnet1 on br0) did not receive the expected frame"), text
    assert "arrived at vm2, not consumed, closest first (1):" in text
    assert "Raw.load" in text  # the field-by-field diff is there
    assert NOTE in text and reason in text, text


def _unwritable(tmp_path: Path) -> Path:
    """A regular file where a directory must be: mkdir under it fails, even for root."""
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    return blocker / "artifacts"


def test_every_failure_text_survives_and_says_why(tmp_path: Path) -> None:
    with Lab(name="blocked", artifacts=_unwritable(tmp_path)) as lab:
        br = lab.bridge("br0")
        vm1, vm2 = lab.vm("vm1", bridge=br), lab.vm("vm2", bridge=br)
        frame = Ether(src=vm1.mac, dst=vm2.mac, type=0x88B5) / b"x"
        vm1.send(frame)
        with pytest.raises(AssertionError) as missing:
            vm2.expect(Ether(src=vm1.mac, dst=vm2.mac, type=0x88B5) / b"y", timeout=0.1)
        with pytest.raises(AssertionError) as unexpected:
            vm2.expect_none(frame)
        with pytest.raises(AssertionError) as noisy:
            lab.expect_quiet()
    for caught, start in (
        (missing, "vm2 (port vnet1 on br0) did not receive the expected frame"),
        (unexpected, "expected no frame like"),
        (noisy, "the lab is not quiet"),
    ):
        text = str(caught.value)
        assert text.startswith(start), text
        assert text.splitlines()[-1].startswith(NOTE), text
        assert "Not a directory" in text.splitlines()[-1], text


def test_a_lab_name_is_never_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = tmp_path / "tmp"
    (base / "deep").mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(base / "deep"))
    with Lab(name="../../x/y") as lab:
        br = lab.bridge("br0")
        vm1, vm2 = lab.vm("vm1", bridge=br), lab.vm("vm2", bridge=br)
        with pytest.raises(AssertionError) as caught:
            vm2.expect(Ether(src=vm1.mac, dst=vm2.mac) / b"never sent", timeout=0.05)
        guests = lab.guest_dir()
    line = str(caught.value).splitlines()[-1]
    assert line.startswith("pcaps (one per endpoint) and topology: "), line
    written = Path(line.partition("topology: ")[2].partition(" (the whole lab")[0])
    assert written.parent == base / "deep", written  # a child of the temp dir, nothing else
    assert written.name.startswith("vlab-_.._x_y-")
    written_names = sorted(p.name for p in written.iterdir())
    assert written_names == ["lab.pcapng", "topology.txt", "vm1-vnet0.pcap", "vm2-vnet1.pcap"]
    assert guests.parent.parent == base / "deep" and "/" not in guests.name
    assert not guests.exists()  # the lab's own scratch directory went with the lab
    assert sorted(os.listdir(base)) == ["deep"]  # nothing climbed out


INNER = """
import pytest
from scapy.layers.l2 import Ether

pytestmark = pytest.mark.vlab


def test_fails_with_blocked_artifacts(lab, tmp_path):
    (tmp_path / "vlab").write_text("")  # a file where the plugin writes its artifacts
    br = lab.bridge("br0")
    vm1, vm2 = lab.vm("vm1", bridge=br), lab.vm("vm2", bridge=br)
    vm2.expect(Ether(src=vm1.mac, dst=vm2.mac) / b"never sent", timeout=0.05)
"""


def test_the_pytest_report_keeps_the_failure_and_the_topology(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(INNER)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--vlab", "-p", "no:cacheprovider", "-q", "-rN",
         "--basetemp", str(tmp_path / "base"), str(tmp_path / "test_inner.py")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 1, out[-4000:]
    assert "1 failed" in out and "did not receive the expected frame" in out, out[-4000:]
    assert "Captured vlab lab" in out or "vlab lab" in out, out[-4000:]
    assert "bridge br0 mac" in out, out[-4000:]  # the topology survived
    assert f"\n{NOTE}" in out and "File exists" in out, out[-4000:]
    assert "could not collect lab artifacts" not in out
