"""Programs in a lab die with it: at close, and when the test process is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from vlab import Lab, LabError, deathsig, dyingexec, programs

pytestmark = pytest.mark.vlab


def pids_with(tag: str) -> list[int]:
    """Processes running ``sleep`` with an argument containing ``tag``."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(b"sleep\0") and tag.encode() in cmdline:
                out.append(int(entry))
    return out


def test_spawned_program_runs_in_the_host_and_is_killed_at_close(tmp_path: Path) -> None:
    with Lab(artifacts=tmp_path) as lab:
        host = lab.host("h", bridge=lab.bridge("br0"), ip="192.0.2.1/24")
        prog = host.spawn(["sh", "-c", "ip -o addr show eth0; echo started; exec sleep 1000"])
        deadline = time.monotonic() + 5
        while "started" not in prog.output() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "192.0.2.1/24" in prog.output()  # it saw the host's namespace
        assert prog.poll() is None and prog.log.parent == tmp_path / "programs"
        assert "started" in programs.report(lab)
    assert prog.poll() == -signal.SIGKILL
    assert not Path(f"/proc/{prog.pid}").exists()


def test_spawn_errors(lab: Lab) -> None:
    host = lab.host("h", bridge=lab.bridge("br0"))
    with pytest.raises(LabError, match="not installed"):
        host.spawn(["no-such-program-here"])
    with pytest.raises(LabError, match="as a list"):
        host.spawn("sleep 1")  # type: ignore[arg-type]
    with pytest.raises(LabError, match="unknown node"):
        lab.spawn("nowhere", ["true"])


def test_a_program_spawned_from_a_thread_outlives_that_thread(lab: Lab) -> None:
    """Its death signal belongs to vlab's spawning thread, not to the caller's. The control: a
    program whose death signal is tied to the short-lived thread itself (set before its exec,
    as QEMU's is) dies when that thread ends, so the check sees such a death."""
    host = lab.host("h", bridge=lab.bridge("br0"))
    spawned: list[programs.Program] = []
    tied: list[subprocess.Popen[bytes]] = []
    for work in (
        lambda: spawned.append(host.spawn(["sleep", "60"])),
        lambda: tied.append(
            subprocess.Popen(["sleep", "60"], preexec_fn=deathsig.child_setup(os.getpid()))
        ),
    ):
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
    try:
        deadline = time.monotonic() + 5
        while tied[0].poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert tied[0].poll() == -signal.SIGKILL
        assert spawned[0].poll() is None
    finally:
        tied[0].kill()
        tied[0].wait()


CHILD = textwrap.dedent(
    """
    import sys, time
    from vlab import Lab, programs
    if sys.argv[2] == "unprotected":  # the behaviour flipped: no death signal
        from vlab import dyingexec
        programs.dying = lambda argv: argv
        dyingexec.argv = lambda *args: None
    if sys.argv[2] == "no-prctl":  # vlab's launcher without its prctl (a syscall made a nop)
        from vlab import dyingexec
        real = dyingexec.x86_64_code
        prctl = bytes.fromhex("b89d0000000f05")  # mov eax, 157; syscall
        dyingexec.x86_64_code = lambda: real().replace(prctl, prctl[:5] + bytes.fromhex("9090"), 1)
    lab = Lab()
    host = lab.host("h", bridge=lab.bridge("br0"))
    host.spawn(["sleep", sys.argv[1]])
    print("ready", flush=True)
    host.run("sleep", sys.argv[1] + "1", timeout=60)  # a run() in progress when killed
    """
)


@pytest.mark.parametrize("mode", ["protected", "unprotected", "no-prctl"])
def test_programs_die_when_the_test_process_is_killed(mode: str) -> None:
    """A SIGKILLed test leaves no spawned or run() program behind; the flipped cases (no
    launcher at all, vlab's launcher without its prctl) show the check would see survivors."""
    if mode == "no-prctl" and dyingexec.launcher() is None:
        pytest.skip("vlab's launcher is not built for this machine: setpriv is used")
    tag = f"1000.{uuid.uuid4().int % 10**9}"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, tag, mode], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        deadline = time.monotonic() + 5
        while len(pids_with(tag)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(pids_with(tag)) == 2
        child.send_signal(signal.SIGKILL)
        child.wait()
        deadline = time.monotonic() + 5
        while pids_with(tag) and time.monotonic() < deadline:
            time.sleep(0.01)
        survivors = pids_with(tag)
        if mode == "protected":
            assert survivors == []
        else:
            assert len(survivors) == 2
    finally:
        for pid in pids_with(tag):
            os.kill(pid, signal.SIGKILL)
        child.kill()
        child.wait()


def test_a_program_run_right_after_the_build_finds_its_nic_up() -> None:
    """The kernel sets operstate (and on a veth end that came up first, attaches the qdisc)
    from deferred work after carrier: a program run at once saw ``state UNKNOWN`` on a CI
    kernel. The first program in a host waits for that lag; ``lab.run`` does too."""
    import json

    for i in range(20):
        with Lab(f"nicup{i}") as lab:
            br = lab.bridge("br0")
            h = lab.host("h1", bridge=br)
            g = lab.host("h2", bridge=br)
            shown = json.loads(h.run("ip", "-j", "link", "show", "eth0").stdout)[0]
            assert shown["operstate"] == "UP", shown
            assert shown["qdisc"] != "noop", shown
            shown = json.loads(lab.run("h2", "ip", "-j", "link", "show", "eth0").stdout)[0]
            assert shown["operstate"] == "UP", shown
            assert g.ifname == "eth0"
