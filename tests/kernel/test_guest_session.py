"""``pytest --vlab --vlab-kernel=PATH`` seen from outside: inner sessions, guest kernel vs host.

Each test here runs a real inner pytest session (booting real guests under TCG, so they cost tens
of seconds each): one session carries several checks, and its results are compared with the same
tests run on the host kernel, which is what makes each check able to fail.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from xml.etree import ElementTree

import pytest
from kernel_helpers import ROOT, in_guest, kernel_or_skip, pytest_argv, run_pytest

from vlab.kernel.image import inspect_kernel
from vlab.scenario.kernel import matches

pytestmark = [
    pytest.mark.vlab,
    pytest.mark.qemu,
    pytest.mark.skipif(in_guest(), reason="drives pytest and vlab from the host; this is a guest"),
]

INNER = """
import platform
import pytest
from scapy.layers.l2 import Ether

pytestmark = pytest.mark.vlab

def test_release(lab, record_property):
    lab.bridge("br0")
    record_property("release", platform.release())

def test_dummy_flood(lab):
    br = lab.bridge("br0")
    vm1 = lab.vm("vm1", bridge=br)
    up = lab.uplink(br, kind="dummy")
    frame = Ether(src=vm1.mac, dst="02:00:00:00:00:99", type=0x88B5) / b"flood"
    vm1.send(frame)
    up.expect(frame)

def test_deliberately_fails(lab):
    br = lab.bridge("br0")
    vm1 = lab.vm("vm1", bridge=br)
    vm2 = lab.vm("vm2", bridge=br)
    frame = Ether(src=vm1.mac, dst="02:00:00:00:00:99", type=0x88B5) / b"never-back"
    vm1.send(frame)
    vm1.expect(frame, timeout=0.2)  # a port never gets its own frame back: this fails
"""


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "scenarios").mkdir(parents=True)
    (project / "test_inner.py").write_text(INNER)
    (project / "pytest.ini").write_text("[pytest]\nvlab_scenarios = scenarios\n")
    shutil.copy(ROOT / "scenarios/forwarding/vlan_filtering.yaml", project / "scenarios")
    shutil.copy(ROOT / "scenarios/fdb/fdb_max_learned.yaml", project / "scenarios")
    return project


def _results(junit: Path) -> dict[str, tuple[str, dict[str, str]]]:
    """``{test name: (outcome, properties)}`` from a junit XML report."""
    out = {}
    for case in ElementTree.parse(junit).iter("testcase"):
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                outcome = tag
        props = {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
        out[case.get("name", "")] = (outcome, props)
    return out


def _lab_section(stdout: str) -> tuple[str, list[str]]:
    """The failing test's ``vlab lab`` section and the pcap files it names, which must exist."""
    match = re.search(r"-+ vlab lab -+\n(.*?)(?=\n[-=_]{5,}|\Z)", stdout, re.S)
    assert match, f"no 'vlab lab' section in:\n{stdout[-3000:]}"
    section = match.group(1)
    pcaps = re.search(r"pcaps in (\S+): (.*)", section)
    assert pcaps, section
    directory = Path(pcaps.group(1))
    names = [n.strip() for n in pcaps.group(2).split(",")]
    for name in names:  # on the host, whichever kernel wrote them
        assert (directory / name).stat().st_size > 24, f"{directory / name} is empty"
    return section, sorted(names)


def test_guest_kernel_session_against_the_host_kernel(tmp_path: Path) -> None:
    kernel = kernel_or_skip()
    release = inspect_kernel(kernel).release
    assert release != platform.release(), "pick a guest kernel other than the running one"
    project = _project(tmp_path)
    common = ["--vlab", "-rA", "test_inner.py", "scenarios"]
    host = run_pytest(project, *common, "--junitxml=host.xml", f"--basetemp={tmp_path}/bt-h")
    guest = run_pytest(
        project,
        *common,
        f"--vlab-kernel={kernel}",
        "--junitxml=guest.xml",
        f"--basetemp={tmp_path}/bt-g",
    )
    on_host, in_guest = _results(project / "host.xml"), _results(project / "guest.xml")

    assert f"vlab: kernel under test {release}" in guest.stdout
    # the test saw the guest's kernel; the same test on the host sees the host's
    assert in_guest["test_release"] == ("passed", {"release": release}), guest.stdout
    assert on_host["test_release"] == ("passed", {"release": platform.release()})
    # what the host kernel lacks (dummy, VLAN filtering) runs in the guest instead of skipping
    for name in ("test_dummy_flood", "vlan_filtering"):
        assert on_host[name][0] == "skipped", host.stdout
        assert in_guest[name][0] == "passed", guest.stdout
    # a scenario's kernel range is decided by the kernel that runs it (collected in the guest)
    for outcomes, kernel_release in ((on_host, platform.release()), (in_guest, release)):
        expected = "skipped" if matches("<6.8", kernel_release) else "passed"
        assert outcomes["fdb_max_learned"][0] == expected, (kernel_release, outcomes)
    assert f"kernel {release}: no IFLA_BR_FDB_MAX_LEARNED" in guest.stdout
    # a failing test reports alike on both: the lab section, and pcaps on the host
    assert in_guest["test_deliberately_fails"][0] == "failure"
    assert on_host["test_deliberately_fails"][0] == "failure"
    host_section, host_pcaps = _lab_section(host.stdout)
    guest_section, guest_pcaps = _lab_section(guest.stdout)
    assert guest_pcaps == host_pcaps and len(guest_pcaps) == 3, (
        guest_pcaps,
        host_pcaps,
    )  # two endpoints, one merged
    assert str(tmp_path / "bt-g") in guest_section
    for line in ("vm vm1:", "vm vm2:", "bridge br0", "fdb of br0"):
        assert line in host_section and line in guest_section, (host_section, guest_section)


def _descendants(pid: int) -> dict[int, str]:
    """Living (not zombie) descendants of ``pid``: ``{pid: command name}``."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if state != "Z":
            children.setdefault(int(ppid), []).append(int(entry))
            names[int(entry)] = name
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = names[child]
            todo.append(child)
    return found


def _alive(pids: dict[int, str]) -> dict[int, str]:
    out = {}
    for pid, name in pids.items():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if stat[stat.rindex(")") + 2] != "Z" and name in stat:
            out[pid] = name
    return out


def test_sigkill_of_pytest_leaves_no_qemu_and_no_virtiofsd(tmp_path: Path) -> None:
    kernel = kernel_or_skip()
    project = tmp_path / "project"
    project.mkdir()
    started = tmp_path / "bt" / "started"
    (project / "test_sleep.py").write_text(
        "import time\nimport pytest\n\n"
        "@pytest.mark.vlab\n"
        "def test_sleeps(lab):\n"
        f"    open({str(started)!r}, 'w').close()\n"
        "    time.sleep(600)\n"
    )
    argv = pytest_argv("--vlab", f"--vlab-kernel={kernel}", f"--basetemp={tmp_path}/bt")
    proc = subprocess.Popen(
        [*argv, "test_sleep.py"],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not started.exists():  # written from inside the guest, through the share
            assert proc.poll() is None, "the inner session ended before its test started"
            assert time.monotonic() < deadline, "the guest's test never started"
            time.sleep(0.2)
        tree = _descendants(proc.pid)
        kinds = sorted(set(tree.values()))
        # the check below can only pass vacuously if these were never seen: they are
        assert "vlab-kernel" in kinds and "virtiofsd" in kinds, kinds  # QEMU names itself so
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 15
        while (left := _alive(tree)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left, f"left running after SIGKILL of pytest: {left}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.parametrize(
    ("kernel", "message"),
    [
        ("/nonexistent/vmlinuz", "does not exist"),
        ("/etc/hostname", "is not a Linux kernel"),
    ],
)
def test_a_bad_kernel_is_a_usage_error_at_once(tmp_path: Path, kernel: str, message: str) -> None:
    (tmp_path / "test_x.py").write_text("def test_x(lab):\n    pass\n")
    began = time.monotonic()
    done = run_pytest(tmp_path, "--vlab", f"--vlab-kernel={kernel}", "test_x.py", timeout=60)
    elapsed = time.monotonic() - began
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "or 'host'" in done.stderr  # the fix
    assert elapsed < 20


def test_the_kernel_option_needs_vlab_and_host_is_the_default(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text("import platform\n\ndef test_x():\n    pass\n")
    done = run_pytest(tmp_path, "--vlab-kernel=/boot/vmlinuz-x", "test_x.py", timeout=60)
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    assert "--vlab-kernel needs --vlab" in done.stderr
    done = run_pytest(tmp_path, "--vlab", "--vlab-kernel=host", "test_x.py", timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kernel under test" not in done.stdout


def test_a_guest_that_does_not_come_up_in_time_is_a_usage_error(tmp_path: Path) -> None:
    """The boot deadline holds: 1 s is too short for any TCG boot, so this must fail, quickly."""
    kernel = kernel_or_skip()
    (tmp_path / "test_x.py").write_text("def test_x(lab):\n    pass\n")
    began = time.monotonic()
    done = run_pytest(
        tmp_path,
        "--vlab",
        f"--vlab-kernel={kernel}",
        "--vlab-kernel-timeout=1",
        "test_x.py",
        timeout=120,
    )
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert "did not start Python within 1s" in done.stderr, done.stderr
    assert "last lines of the guest console" in done.stderr
    assert "INTERNALERROR" not in done.stdout + done.stderr
    assert time.monotonic() - began < 60


def test_a_guest_that_panics_mid_session_fails_its_test_with_the_console(tmp_path: Path) -> None:
    """The guest kernel crashes under a test: that test fails, with the console, and it ends.

    ``--max-worker-restart=0`` spares the replacement guest xdist would boot for the next test
    (it does, tested by hand; 40 s more here).
    """
    kernel = kernel_or_skip()
    (tmp_path / "test_panic.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.vlab\n"
        "def test_crash_the_kernel(lab):\n"
        "    with open('/proc/sysrq-trigger', 'w') as f:\n"
        "        f.write('c')\n"
    )
    done = run_pytest(
        tmp_path, "--vlab", f"--vlab-kernel={kernel}", "--max-worker-restart=0", "test_panic.py"
    )
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout + done.stderr
    assert "crashed while running 'test_panic.py::test_crash_the_kernel'" in done.stdout
    assert "Kernel panic" in done.stderr and "last lines of the guest console" in done.stderr
