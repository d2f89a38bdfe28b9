"""The host check sees what it must, and can fail a run.

A guard that never fires proves nothing, so these tests perturb copies of a real snapshot (never
the host itself) and run a child pytest whose second snapshot is doctored, which must exit
non-zero with the difference in its summary.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from vlab import Lab, hostcheck
from vlab.netns import setns

pytestmark = pytest.mark.vlab
TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ref() -> hostcheck.Reference:
    return hostcheck.Reference.current()


def test_a_snapshot_equals_itself(ref: hostcheck.Reference) -> None:
    first, second = ref.snapshot(), ref.snapshot()
    assert hostcheck.compare(first, second) == []
    assert hostcheck.report(first, second, []) is None
    assert first.facts["links"], "the host has at least a loopback"
    assert any(f.startswith("net.ipv6.conf.all.disable_ipv6=") for f in first.facts["sysctls"])


def test_building_a_lab_changes_nothing_in_the_host(ref: hostcheck.Reference) -> None:
    before = ref.snapshot()
    with Lab() as lab:  # writes every quiet sysctl in its own namespaces
        br = lab.bridge("br0", multicast_snooping=True)
        lab.vm("vm1", bridge=br)
        lab.host("h1", bridge=br)
        lab.uplink(br)
        lab.settle()
        during = ref.snapshot()
    assert hostcheck.compare(before, during) == []


def test_differences_are_reported_by_section(ref: hostcheck.Reference) -> None:
    before = ref.snapshot()
    sysctl = next(f for f in before.facts["sysctls"] if "all.disable_ipv6" in f)
    after = (
        before.with_fact("links", "vnet0: ifindex=99 kind=tun flags=UP")
        .without_fact("sysctls", sysctl)
        .with_fact("sysctls", sysctl[:-1] + "7")
        .with_fact("named namespaces", "/run/netns/leftover")
    )
    text = hostcheck.report(before, after, ["thread 1 (x) is in namespace net:[1]"])
    assert text is not None
    assert "links:\n    + vnet0" in text
    assert f"sysctls:\n    - {sysctl}\n    + {sysctl[:-1]}7" in text
    assert "+ /run/netns/leftover" in text
    assert "threads: thread 1" in text


def test_snapshot_reads_the_host_even_from_a_thread_inside_a_lab(
    ref: hostcheck.Reference,
) -> None:
    """The snapshot enters the reference namespace itself instead of trusting the caller's."""
    host = ref.snapshot()
    seen: list[hostcheck.Snapshot] = []
    stray: list[str] = []
    with Lab() as lab:
        lab.bridge("br0")

        def from_inside() -> None:
            setns(lab._switch.ns.fd)
            try:
                seen.append(ref.snapshot())
                stray.extend(ref.stray_threads())
            finally:
                setns(ref.fd)

        worker = threading.Thread(target=from_inside)
        worker.start()
        worker.join()
    assert seen and hostcheck.compare(host, seen[0]) == []
    assert any("is in namespace" in s for s in stray), "a thread inside a lab is reported"


PERTURB = """
from vlab import hostcheck

_real = hostcheck.Reference.snapshot
_calls = []


def _doctored(self):
    snap = _real(self)
    _calls.append(1)
    return snap if len(_calls) == 1 else snap.with_fact("links", "vnet9: doctored kind=tun")


hostcheck.Reference.snapshot = _doctored
"""


def test_a_changed_host_fails_the_run(tmp_path: Path) -> None:
    (tmp_path / "vlab_doctor_snapshot.py").write_text(PERTURB)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(TESTS.parent)]))
    env.pop("PYTEST_XDIST_WORKER", None)
    argv = [sys.executable, "-m", "pytest", "--vlab", "-q", "-p", "vlab_doctor_snapshot"]
    argv += ["-p", "no:cacheprovider", "-p", "no:benchmark", "--basetemp", str(tmp_path / "bt")]
    argv += [f"{__file__}::test_a_snapshot_equals_itself"]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=TESTS.parent, env=env)
    assert proc.returncode == pytest.ExitCode.TESTS_FAILED, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
    assert "vlab host check FAILED" in proc.stdout
    assert "+ vnet9: doctored kind=tun" in proc.stdout
