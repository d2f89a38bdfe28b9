"""vlab's death-signal launcher: programs get PR_SET_PDEATHSIG without a second dynamic exec.

What the kernel sets is read back from inside the program (``PR_GET_PDEATHSIG``), with the
launcher and without it, so the check is shown to see both answers. That the signal then kills
programs when the test process is SIGKILLed is tests/lab/test_programs.py's business.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from vlab import Lab, dyingexec, programs, reaper, spawn
from vlab.endpoints import Host

pytestmark = pytest.mark.vlab

# prints the calling process's parent-death signal (PR_GET_PDEATHSIG = 2)
PRINT_DEATHSIG = (
    "import ctypes; v = ctypes.c_int(-1); "
    "ctypes.CDLL(None).prctl(2, ctypes.byref(v)); print(v.value)"
)
PROBE = [sys.executable, "-I", "-S", "-c", PRINT_DEATHSIG]


@pytest.fixture(scope="module")
def host() -> Iterator[Host]:
    with Lab(name="dyingexec") as lab:
        yield lab.host("h1", bridge=lab.bridge("br0"))


def launcher() -> str:
    path = dyingexec.launcher()
    if path is None:
        pytest.skip(f"vlab's launcher is not built for {os.uname().machine}: setpriv is used")
    return path


def test_a_run_program_has_the_death_signal_and_without_the_launcher_none(host: Host) -> None:
    launcher()
    assert host.run(*PROBE).stdout.strip() == "9"  # SIGKILL
    bare = spawn.run(host.ns, PROBE, check=True, timeout=10)  # no launcher in front
    assert bare.stdout.strip() == "0"


def test_a_spawned_program_has_the_death_signal(host: Host) -> None:
    launcher()
    prog = host.spawn(PROBE)
    assert prog.wait() == 0
    assert prog.output().strip() == "9"


def test_the_program_keeps_its_argv0_and_the_environment(
    host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = launcher()
    assert programs.dying(["cat", "x"])[:2] == [path, str(os.getpid())]
    assert host.run("cat", "/proc/self/cmdline").stdout == "cat\0/proc/self/cmdline\0"
    monkeypatch.setenv("VLAB_LAUNCHER_PROBE", "seen")
    assert host.run("sh", "-c", "echo $VLAB_LAUNCHER_PROBE").stdout == "seen\n"


def test_a_foreign_parent_is_refused_before_the_program_runs(tmp_path: Path) -> None:
    path = launcher()
    touch = shutil.which("touch")
    assert touch is not None
    marker = tmp_path / "ran"
    refused = subprocess.run([path, "1", "-", touch, "touch", str(marker)], capture_output=True)
    assert refused.returncode == 127 and not marker.exists()
    ran = subprocess.run([path, str(os.getpid()), "-", touch, "touch", str(marker)])
    assert ran.returncode == 0 and marker.exists()


def test_an_exec_failure_says_so_on_stderr() -> None:
    path = launcher()
    argv = [path, str(os.getpid()), "-", "/nonexistent/program", "x"]
    failed = subprocess.run(argv, capture_output=True)
    assert (failed.returncode, failed.stderr) == (127, dyingexec.EXEC_FAILED)


def test_the_launcher_enters_the_namespace_and_closes_its_fd(host: Host, tmp_path: Path) -> None:
    path = launcher()
    fd = host.ns.fd
    show = ["sh", "-c", "readlink /proc/self/ns/net; ls /proc/$$/fd"]  # the shell's own fds
    sh = shutil.which("sh")
    assert sh is not None
    entered = subprocess.run(
        [path, str(os.getpid()), str(fd), sh, *show], pass_fds=(fd,), capture_output=True
    )
    lines = entered.stdout.decode().split()
    assert lines[0] == f"net:[{host.ns.inode}]"
    assert str(fd) not in lines[1:]
    bare = subprocess.run(show, pass_fds=(fd,), capture_output=True).stdout.decode().split()
    assert bare[0] != lines[0] and str(fd) in bare[1:]  # the check sees an fd kept, and home
    not_a_namespace = os.open(tmp_path, os.O_RDONLY)
    try:
        failed = subprocess.run(
            [path, str(os.getpid()), str(not_a_namespace), sh, "sh", "-c", "echo ran"],
            pass_fds=(not_a_namespace,),
            capture_output=True,
        )
    finally:
        os.close(not_a_namespace)
    assert (failed.returncode, failed.stdout, failed.stderr) == (127, b"", dyingexec.EXEC_FAILED)


def test_the_launcher_is_one_sealed_memfd() -> None:
    path = launcher()
    fd = int(path.rsplit("/", 1)[1])
    assert dyingexec.held_fds() == {fd}
    assert os.readlink(f"/proc/self/fd/{fd}").startswith("/memfd:vlab-launcher")
    assert not os.get_inheritable(fd)
    writable = os.open(path, os.O_WRONLY)
    try:
        with pytest.raises(PermissionError):
            os.write(writable, b"\x90")  # F_SEAL_WRITE
    finally:
        os.close(writable)


def test_where_the_launcher_cannot_run_setpriv_does(
    host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dyingexec, "_state", {})
    monkeypatch.setattr(dyingexec, "_image", lambda: None)  # as on another architecture
    assert programs.dying(["true"])[1:4] == ["--pdeathsig", "KILL", "--"]
    assert host.run(*PROBE).stdout.strip() == "9"


def _children() -> set[str]:
    me = str(os.getpid())
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[1] == me:
            found.add(pid)
    return found


def test_many_runs_leave_no_fd_and_no_process(host: Host) -> None:
    launcher()
    host.run("true")
    reaper.drain()
    fds, children = sorted(os.listdir("/proc/self/fd")), _children()
    prog = host.spawn(["sleep", "60"])
    assert _children() - children == {str(prog.pid)}  # the check sees a child of ours
    prog.kill()
    for _ in range(200):
        host.run("true")
    reaper.drain()
    assert sorted(os.listdir("/proc/self/fd")) == fds
    assert _children() - children == set()


def _holders(inode: int) -> list[str]:
    """Every thread or fd of any process that holds the network namespace ``inode``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                if os.stat(f"/proc/{pid}/task/{tid}/ns/net").st_ino == inode:
                    found.append(f"{pid} thread {tid}")
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"net:[{inode}]":
                    found.append(f"{pid} fd {fd}")
        except OSError:
            continue
    return found


def test_nothing_holds_a_host_namespace_after_its_lab_closed() -> None:
    with Lab(name="released") as lab:
        h = lab.host("h1", bridge=lab.bridge("br0"))
        inode = h.ns.inode
        h.run("true")
        prog = h.spawn(["sleep", "60"])
        assert any(f"{prog.pid} thread" in held for held in _holders(inode))  # the check sees
    reaper.drain()
    assert _holders(inode) == []
