"""Crashes, interrupts and errors at the worst moment leave nothing behind.

The complaint users have about lab tools is stale state after a crash (interfaces that outlive the
run, labs that cannot be destroyed after a partial start). Each test here runs a real pytest in a
subprocess, hurts it the way CI and people do (SIGKILL, Ctrl-C, an exception in a fixture, a
failing assertion, a guest that does not boot), and then inspects the whole machine.
"""

from __future__ import annotations

import random
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultkit import Child, files_under

pytestmark = pytest.mark.vlab


def assert_clean(child: Child, grace: float = 3.0) -> None:
    """No leftovers; processes killed by the kernel on our behalf get a moment to go."""
    deadline = time.monotonic() + grace
    while (problems := child.leftovers()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not problems, "\n".join(problems) + "\n--- child output ---\n" + child.output


HOLD_AND_CHURN = """
def test_hold_and_churn(leakprobe, lab):
    build(lab)
    record("held")
    mark("ready")
    while True:  # killed somewhere in here: mid-build, mid-send or mid-teardown
        with Lab() as other:
            build(other, vms=2)
            record("churn")
"""

HOLD_IDLE = """
def test_hold_idle(leakprobe, lab):
    build(lab)
    record("held")
    mark("ready")
    time.sleep(120)
"""


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.2])
def test_sigkill_in_the_middle_of_labs(tmp_path: Path, delay: float) -> None:
    child = Child(tmp_path, HOLD_AND_CHURN).start()
    child.wait_for("ready")
    time.sleep(delay + random.uniform(0, 0.03))
    child.signal(signal.SIGKILL)
    child.finish()
    assert child.returncode == -signal.SIGKILL
    assert child.recorded_inodes(), "the child never got as far as a lab"
    assert_clean(child)


@pytest.mark.parametrize("source", [HOLD_IDLE, HOLD_AND_CHURN], ids=["idle", "building"])
def test_sigint_tears_the_lab_down(tmp_path: Path, source: str) -> None:
    child = Child(tmp_path, source).start()
    child.wait_for("ready")
    time.sleep(0.1)
    child.signal(signal.SIGINT)
    out = child.finish()
    if PYTEST_REPR_CRASH not in out:
        assert child.returncode == pytest.ExitCode.INTERRUPTED, out
        assert "KeyboardInterrupt" in out
        assert "Traceback" not in out.split("KeyboardInterrupt")[0], out
        (name, left), *_ = child.after_teardown().items()
        assert left == 0, f"{name}: {left} namespace(s) still held in-process after teardown\n{out}"
    # else pytest itself died rendering the interrupt (below); the machine must still be clean
    assert_clean(child)


# pytest cannot render a KeyboardInterrupt that lands in a frame without a line number (scapy's
# generated dissectors): its reporting raises this and skips the session's teardown. Not vlab's
# to fix; what vlab promises (nothing left once the process is gone) is still checked.
PYTEST_REPR_CRASH = "TypeError: unsupported operand type(s) for -: 'NoneType' and 'int'"


ERRORS = """
@pytest.fixture
def topology(lab):
    build(lab)
    record("fixture")
    raise RuntimeError("fixture exploded after building")


@pytest.fixture
def half_built(lab):
    br = lab.bridge("br0")
    lab.vm("vm1", bridge=br)
    record("half")
    lab.bridge("br1", ageing_tme=3)  # a typo: LabError halfway through the setup


def test_fixture_raises(leakprobe, topology):
    pass


def test_fixture_lab_error(leakprobe, half_built):
    pass


def test_fails(leakprobe, lab):
    br, eps, up = build(lab)
    record("fails")
    eps[1].expect(Ether(src=up.mac, dst=eps[1].mac, type=0x88B5) / b"never sent", timeout=0.05)


def test_raises_in_test(leakprobe, lab):
    build(lab)
    record("raises")
    raise ValueError("the test itself blew up")


def test_passes(leakprobe, lab):
    build(lab)
    record("passes")
"""


@pytest.fixture(scope="module")
def errors_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Child]:
    """One child session with every kind of in-process failure (one subprocess, five cases)."""
    child = Child(tmp_path_factory.mktemp("errors"), ERRORS, extra_args=("-rA",)).start()
    child.finish()
    yield child


def _outcome(child: Child, test: str) -> str:
    found = re.search(rf"^(PASSED|FAILED|ERROR) \S*::{test}\b", child.output, re.M)
    return found.group(1) if found else "missing"


@pytest.mark.parametrize(
    ("test", "outcome", "says"),
    [
        ("test_fixture_raises", "ERROR", "fixture exploded after building"),
        ("test_fixture_lab_error", "ERROR", "ageing_tme"),
        ("test_fails", "FAILED", "did not receive the expected frame"),
        ("test_raises_in_test", "FAILED", "the test itself blew up"),
        ("test_passes", "PASSED", ""),
    ],
)
def test_failures_tear_down_completely(
    errors_run: Child, test: str, outcome: str, says: str
) -> None:
    out = errors_run.output
    assert _outcome(errors_run, test) == outcome, out
    assert says in out
    assert errors_run.after_teardown().get(test) == 0, out


def test_failure_artifacts_only_under_basetemp(errors_run: Child) -> None:
    """pcaps of failed tests are written, named in the report, and live under --basetemp."""
    pcaps = files_under(errors_run.basetemp, "*.pcap")
    assert pcaps, errors_run.output
    assert "vlab lab" in errors_run.output  # the report section with topology and fdb
    for named in re.findall(r"pcaps in (\S+):", errors_run.output):
        assert Path(named).resolve().is_relative_to(errors_run.basetemp.resolve()), named
    assert_clean(errors_run)


QEMU_BOOT_FAILS = """
import dataclasses

from vlab import LabError
from vlab import qemu


def test_guest_fails_to_boot(leakprobe, lab, tmp_path, monkeypatch):
    reason = qemu.qemu_unavailable()
    if reason:
        pytest.skip(reason)
    image = qemu.ensure_image()
    bogus = tmp_path / "bogus-kernel"
    bogus.write_bytes(b"this is not a kernel" * 512)
    monkeypatch.setattr(qemu, "ensure_image", lambda: dataclasses.replace(image, kernel=bogus))
    br = lab.bridge("br0")
    vm = lab.vm("vm1", bridge=br)
    guest = qemu.QemuGuest.start(name="broken", tap_fd=vm.tap_fd, mac=vm.mac, workdir=tmp_path)
    record("qemu")
    try:
        with pytest.raises(LabError):
            guest.wait_ready(timeout=8)
    finally:
        guest.close()


def test_guest_killed_while_booting(lab, tmp_path):
    if qemu.qemu_unavailable():
        pytest.skip(qemu.qemu_unavailable())
    br = lab.bridge("br0")
    vm = lab.vm("vm1", bridge=br)
    qemu.QemuGuest.start(name="doomed", tap_fd=vm.tap_fd, mac=vm.mac, workdir=tmp_path)
    record("qemu-kill")
    mark("ready")
    time.sleep(120)
"""


def _qemu_reason() -> str | None:
    try:
        from vlab import qemu
    except ImportError as exc:
        return f"vlab.qemu is not importable: {exc}"
    return qemu.qemu_unavailable()


def test_qemu_guest_that_fails_to_boot_leaves_nothing(tmp_path: Path) -> None:
    if reason := _qemu_reason():
        pytest.skip(reason)
    child = Child(tmp_path, QEMU_BOOT_FAILS, extra_args=("-rA", "-k", "fails_to_boot")).start()
    out = child.finish(timeout=120)
    assert "PASSED" in out and "1 passed" in out, out
    assert child.after_teardown() == {"test_guest_fails_to_boot": 0}, out
    assert_clean(child)


def test_qemu_guest_dies_with_a_killed_test_process(tmp_path: Path) -> None:
    if reason := _qemu_reason():
        pytest.skip(reason)
    child = Child(tmp_path, QEMU_BOOT_FAILS, extra_args=("-k", "killed_while_booting")).start()
    child.wait_for("ready", timeout=90)
    child.signal(signal.SIGKILL)
    child.finish()
    assert_clean(child)


def test_parallel_workers_never_collide(tmp_path: Path) -> None:
    """Two xdist workers building 40 identical labs (same names, same MACs) side by side."""
    source = (Path(__file__).parent / "collision_labs.py").read_text()
    env = {"VLAB_COLLISION_LABS": "40"}
    child = Child(tmp_path, source, extra_args=("-n", "2"), prelude=False, env=env)
    out = child.start().finish(timeout=120)
    assert child.returncode == 0, out
    assert "40 passed" in out, out
    assert_clean(child)


LEAKS_ON_PURPOSE = """
import subprocess

from vlab.netns import setns


def test_leaks_a_process_into_its_lab(lab):
    build(lab)
    record("leak")
    fd = lab._switch.ns.fd
    subprocess.Popen(["sleep", "60"], preexec_fn=lambda: setns(fd), start_new_session=True)
    (Path(os.environ["TMPDIR"]) / "stray.pcap").write_bytes(b"")
"""


def test_the_leak_detector_is_not_blind(tmp_path: Path) -> None:
    """A child that does leak (a process pinning its lab namespace, a stray file) is caught."""
    child = Child(tmp_path, LEAKS_ON_PURPOSE).start()
    child.finish()
    problems = child.leftovers()
    try:
        text = "\n".join(problems)
        assert "still held by" in text, text
        assert "process outlived the run" in text and "sleep 60" in text, text
        assert "stray.pcap" in text, text
    finally:
        import os

        for line in problems:
            if line.startswith("process outlived the run: pid "):
                os.kill(int(line.split()[5].rstrip(":")), signal.SIGKILL)
