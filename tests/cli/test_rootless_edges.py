"""Rootless rough edges, as a normal user meets them: no sbin on PATH, a plain script, no userns.

Everything runs as ``nobody`` from the venv of test_rootless.py, with the PATH a normal user has
(no /usr/sbin, no /sbin), so a program found only there proves the lookup, not the environment.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import DATA
from test_rootless import as_nobody, nobody_dir, venv  # noqa: F401 (fixtures)

pytestmark = pytest.mark.vlab

SCRIPT = """
import shutil, sys
from vlab import Lab, dyingexec

print("bridge on PATH:", shutil.which("bridge"))
with Lab() as lab:
    br = lab.bridge("br0")
    h1 = lab.host("h1", bridge=br)
    print(lab.run("switch", "bridge", "link").stdout)
    print(h1.run("ip", "-br", "link", "show", "eth0").stdout)
    get = "import ctypes; v = ctypes.c_int(); ctypes.CDLL(None).prctl(2, ctypes.byref(v)); "
    get += "print(v.value)"
    print("death signal:", h1.run(sys.executable, "-c", get).stdout.strip())
    print("own launcher:", dyingexec.launcher() is not None)
"""
THREADS_FIRST = """
import threading, time
from vlab import Lab, LabError

threading.Thread(target=time.sleep, args=(9,), daemon=True).start()
try:
    Lab()
except LabError as exc:
    print("LabError:", exc)
"""
# nobody inside a user namespace whose own limit on nested user namespaces is 0 (a per-namespace
# sysctl: the host's stays as it is): exactly a machine where no user namespace can be made
NO_USERNS = """
import ctypes, os, sys
go_r, go_w = os.pipe()
ready_r, ready_w = os.pipe()
pid = os.fork()
if pid == 0:
    assert ctypes.CDLL(None, use_errno=True).unshare(0x10000000) == 0
    os.write(ready_w, b"u")
    os.read(go_r, 1)
    with open("/proc/sys/user/max_user_namespaces", "w") as f:
        f.write("0")
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    os.execvp(sys.argv[1], sys.argv[1:])
os.read(ready_r, 1)
for name in ("uid_map", "gid_map"):
    with open(f"/proc/{pid}/{name}", "w") as f:
        f.write("0 0 1\\n65534 65534 1\\n")
os.write(go_w, b"x")
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def user_path(venv: Path) -> str:  # noqa: F811
    return f"PATH={venv / 'bin'}:/usr/bin:/bin"


def as_user(venv: Path, cwd: Path, *argv: str) -> list[str]:  # noqa: F811
    """``as_nobody`` with a normal user's PATH (no sbin directories)."""
    command = as_nobody(venv, cwd, *argv)
    return [user_path(venv) if part.startswith("PATH=") else part for part in command]


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_a_script_builds_labs_and_finds_sbin_tools(venv: Path, nobody_dir: Path) -> None:  # noqa: F811
    assert shutil.which("bridge", path="/usr/bin:/bin") is None  # the case: bridge is in sbin
    python = str(venv / "bin" / "python")
    done = run(as_user(venv, nobody_dir, python, "-c", SCRIPT), nobody_dir)
    assert done.returncode == 0, done.stderr
    assert "bridge on PATH: None" in done.stdout
    assert "veth0" in done.stdout and "master br0" in done.stdout  # bridge, from /usr/sbin
    assert "eth0@" in done.stdout  # ip, in the host's namespace
    assert "death signal: 9" in done.stdout  # SIGKILL, set in a rootless lab too
    if os.uname().machine == "x86_64":
        assert "own launcher: True" in done.stdout


def test_threads_before_the_first_lab_are_a_clear_error(venv: Path, nobody_dir: Path) -> None:  # noqa: F811
    python = str(venv / "bin" / "python")
    done = run(as_user(venv, nobody_dir, python, "-c", THREADS_FIRST), nobody_dir)
    assert done.returncode == 0, done.stderr
    assert "LabError: rootless labs" in done.stdout, done.stdout
    assert "call vlab.rootless.ensure() first thing" in done.stdout


def test_doctor_says_when_no_user_namespace_can_be_made(venv: Path, nobody_dir: Path) -> None:  # noqa: F811
    env = ["env", "-i", user_path(venv), f"HOME={nobody_dir}", "LANG=C.UTF-8"]
    command = [sys.executable, "-c", NO_USERNS, *env, "vlab", "doctor"]
    done = run(command, nobody_dir)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out  # labs cannot run: said, not crashed
    assert "Traceback" not in out and not out.startswith("vlab: "), out
    rows = {line.split()[1]: line for line in done.stdout.splitlines() if line[:1].islower()}
    assert " FAIL " in rows["privileges"] and "no user namespace can be made here" in out, out
    assert " missing " in rows["user"], out  # "user namespaces" row
    assert "labs cannot run here" in done.stdout


def test_doctor_as_a_user_who_can_make_one(venv: Path, nobody_dir: Path) -> None:  # noqa: F811
    """The positive case of the test above: the same rows say ok where a namespace can be made."""
    done = run(as_user(venv, nobody_dir, "vlab", "doctor"), nobody_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {line.split()[1]: line for line in done.stdout.splitlines() if line[:1].islower()}
    assert " ok " in rows["privileges"] and "rootless: uid" in rows["privileges"]
    assert " ok " in rows["user"]
    assert " ok " in rows["tbf"], rows["tbf"]  # added with tc, from /usr/sbin: off PATH


def _wait_for_state(state_dir: Path, proc: subprocess.Popen[str]) -> Path:
    deadline = time.monotonic() + 30
    while not list(state_dir.glob("*.json")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "vlab up did not publish its lab"
        time.sleep(0.05)
    (state,) = state_dir.glob("*.json")
    return state


def test_exec_finds_sbin_tools_and_suggests_a_working_tcpdump(
    venv: Path,  # noqa: F811
    nobody_dir: Path,  # noqa: F811
) -> None:
    shutil.copy(DATA / "lab.yaml", nobody_dir / "lab.yaml")
    up = subprocess.Popen(
        as_user(venv, nobody_dir, "vlab", "up", "lab.yaml"),
        cwd=nobody_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    state: Path | None = None
    try:
        state = _wait_for_state(nobody_dir / "state", up)
        done = run(
            as_user(venv, nobody_dir, "vlab", "exec", "br0", "--", "bridge", "link"), nobody_dir
        )
        assert done.returncode == 0, done.stderr
        assert "vnet0" in done.stdout and "master br0" in done.stdout
        vm = run(as_user(venv, nobody_dir, "vlab", "exec", "vm1", "--", "true"), nobody_dir)
        assert vm.returncode != 0
        assert "vlab exec br0 -- tcpdump -Z root -eni vnet0" in vm.stderr, vm.stderr
        os.kill(int(state.stem), signal.SIGINT)
        out, err = up.communicate(timeout=30)
    finally:
        if up.poll() is None:
            if state is not None:  # the vlab process itself: runuser would not pass a kill on
                os.kill(int(state.stem), signal.SIGKILL)
            up.kill()
            up.communicate()
    assert up.returncode == 0, err
    assert "tcpdump -Z root -eni vnet0" in out  # the hint in vlab up's table too


def test_exec_from_inside_the_labs_own_user_namespace(venv: Path, nobody_dir: Path) -> None:  # noqa: F811
    """``unshare --user`` shell: ``vlab up`` and ``vlab exec`` share one user namespace."""
    shutil.copy(DATA / "lab.yaml", nobody_dir / "lab.yaml")
    shell = (
        "vlab up lab.yaml > up.out 2>&1 & "
        "for i in $(seq 300); do ls state/*.json >/dev/null 2>&1 && break; sleep 0.1; done; "
        "vlab exec h1 -- ip -br link show eth0; code=$?; "
        "kill -INT $!; wait $!; exit $code"
    )
    command = as_user(
        venv, nobody_dir, "unshare", "--user", "--map-root-user", "--net", "sh", "-c", shell
    )
    done = run(command, nobody_dir)
    assert done.returncode == 0, done.stdout + done.stderr + (nobody_dir / "up.out").read_text()
    assert "Invalid argument" not in done.stderr
    assert "eth0@" in done.stdout and "02:00:00:00:00:11" in done.stdout
