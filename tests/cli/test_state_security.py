"""The state directory of ``vlab up`` cannot be planted, and what is in it cannot hang or crash.

Without XDG_RUNTIME_DIR (su, ``sudo -u``, cron, CI) a user's running labs are listed in
``/tmp/vlab-<uid>``: a name any other local user can create first. The two-user tests do exactly
that, as real users made for the test: the attacker prepares the directory (world-writable, or a
symlink, with symlinks inside pointing at the victim's ``~/.bashrc``), the victim runs ``vlab up``
and ``vlab show``. Each attack is shown to be live first (a naive write by the victim through the
planted path does reach the target), then vlab is shown to refuse it. The single-user tests feed
``vlab show`` a FIFO, a symlink to /dev/zero, a sparse giant and JSON nested 100000 deep, each in
a child with a deadline: a reader that opened the FIFO blocking, or read /dev/zero, fails them.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import localusers
import pytest
from cli_helpers import ROOT, Runner
from localusers import User, local_user
from test_rootless import SYSTEM_PYTHON, venv

from vlab.cli import state
from vlab.errors import LabError

__all__ = ["venv"]  # the rootless suite's venv fixture: a vlab the test users can run

SCENARIO = """\
name: state security lab
topology:
  br0:
    hosts: [h1, h2]
steps:
  - send: {from: h1, frame: {src: h1.mac, dst: "ff:ff:ff:ff:ff:ff"}}
  - expect: {at: [h2], only: true}
"""
DEADLINE = 30.0


def _lab(pid: int | None = None) -> state.RunningLab:
    pid = pid or os.getpid()
    return state.RunningLab(
        pid=pid,
        start=state.start_time(pid) or 0,
        name="t",
        source="t.yaml",
        rootless=False,
        namespaces={"switch": 3},
        nodes=[state.Node("br0", "bridge", "switch", "02:00:00:00:00:01")],
    )


# --- one user: the directory and the files vlab makes -------------------------------------------


def test_root_state_is_private(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = state.publish(_lab())
    assert stat.S_IMODE(os.stat(state_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # topology, MACs, fd numbers
    assert sorted(os.listdir(state_dir)) == [f"{os.getpid()}.json"]  # no temp file left
    assert [lab.pid for lab in state.running()] == [os.getpid()]
    monkeypatch.delenv("VLAB_STATE_DIR")
    if os.geteuid() == 0:
        assert state.state_dir() == Path("/run/vlab")  # the same code makes it 0700 there


def test_a_lax_directory_of_ours_is_tightened(state_dir: Path) -> None:
    """0755 (what older versions made /run/vlab): nobody else could write into it, so fix it."""
    state_dir.mkdir(mode=0o755)
    os.chmod(state_dir, 0o755)
    state.publish(_lab())
    assert stat.S_IMODE(os.stat(state_dir).st_mode) == 0o700


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o770])
def test_a_directory_others_can_write_is_refused(state_dir: Path, mode: int) -> None:
    state_dir.mkdir()
    os.chmod(state_dir, mode)
    with pytest.raises(LabError, match=f"{state_dir} is mode {mode:04o}: others can write"):
        state.publish(_lab())
    with pytest.raises(LabError, match="others can write"):
        state.running()
    assert os.listdir(state_dir) == []


def test_a_directory_of_another_user_is_refused(state_dir: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    state_dir.mkdir(mode=0o700)
    os.chown(state_dir, 65534, 65534)
    with pytest.raises(LabError, match=f"{state_dir} belongs to uid 65534, not to you"):
        state.publish(_lab())
    with pytest.raises(LabError, match="VLAB_STATE_DIR"):
        state.find()


def test_a_symlinked_directory_is_refused(state_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    state_dir.symlink_to(target)
    with pytest.raises(LabError, match=f"{state_dir} is a symlink, not a directory"):
        state.publish(_lab())
    assert os.listdir(target) == []


READER = textwrap.dedent(
    """
    import json
    from vlab.cli import state
    print(json.dumps([lab.pid for lab in state.running()]))
    """
)


def _plant_hostile_files(directory: Path) -> None:
    os.mkfifo(directory / "101.json")  # nobody writes: a blocking open waits forever
    (directory / "102.json").symlink_to("/dev/zero")
    with open(directory / "103.json", "wb") as fh:
        fh.truncate(8 << 30)
    (directory / "104.json").write_text("[" * 100_000 + "]" * 100_000)  # RecursionError
    (directory / "105.json").write_text('{"format": 1, "pid": "x"}')
    (directory / "106.json").write_bytes(b"\xff\xfe not text")
    (directory / "107.json").write_text('{"format": 1, "nodes": 5, "namespaces": []}')


def test_show_skips_fifos_devices_giants_and_deep_json(state_dir: Path, vlab: Runner) -> None:
    state.publish(_lab())  # one real entry among the hostile ones: this test process
    _plant_hostile_files(state_dir)
    try:
        done = subprocess.run(
            [sys.executable, "-c", READER],
            capture_output=True,
            text=True,
            timeout=DEADLINE,
            env={**os.environ, "VLAB_STATE_DIR": str(state_dir)},
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"reading the state directory did not return within {DEADLINE:g} s")
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout) == [os.getpid()]
    for name in ("101.json", "102.json", "104.json"):
        assert os.path.lexists(state_dir / name)  # skipped, not deleted: not ours to judge
    os.unlink(state_dir / f"{os.getpid()}.json")
    shown = vlab("show", timeout=DEADLINE)
    assert shown.returncode == 1
    assert shown.stderr.startswith("vlab: no running lab (in ") and "Traceback" not in shown.stderr


# --- two users: an attacker prepares /tmp for a victim ------------------------------------------


@pytest.fixture
def shared() -> Iterator[Path]:
    """A base both users can traverse, with a sticky world-writable TMPDIR like /tmp, and a
    world-readable copy of this checkout's vlab (the venv is shared with other checkouts, whose
    runs may reinstall their own vlab into it at any moment: PYTHONPATH makes ours win)."""
    if localusers.why_not():
        pytest.skip(localusers.why_not() or "")
    base = Path(tempfile.mkdtemp(prefix="vlab-users-"))
    os.chmod(base, 0o755)
    (base / "tmp").mkdir()
    os.chmod(base / "tmp", 0o1777)
    shutil.copytree(ROOT / "vlab", base / "src" / "vlab", ignore=shutil.ignore_patterns("__pyc*"))
    subprocess.run(["chmod", "-R", "a+rX", str(base / "src")], check=True)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def attacker(shared: Path) -> Iterator[User]:
    with local_user(shared, "vlaba") as user:
        yield user


@pytest.fixture
def victim(shared: Path) -> Iterator[User]:
    with local_user(shared, "vlabv") as user:
        (user.home / "lab.yaml").write_text(SCENARIO)
        user.sh(f"echo 'alias ll=ls' > {user.home}/.bashrc")
        yield user


def _env(venv: Path, shared: Path) -> dict[str, str]:
    return {
        "PATH": f"{venv / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin",
        "TMPDIR": str(shared / "tmp"),
        "PYTHONPATH": str(shared / "src"),
    }


def _vlab_command(venv: Path, *args: str) -> list[str]:
    return [str(venv / "bin" / "python"), "-m", "vlab.cli", *args]


def _vlab_as(user: User, venv: Path, shared: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``vlab ARGS`` as ``user`` the way cron or ``sudo -u`` runs it: no XDG_RUNTIME_DIR."""
    return user.run(_vlab_command(venv, *args), timeout=DEADLINE, **_env(venv, shared))


def _up_as(user: User, venv: Path, shared: Path) -> tuple[int | None, str]:
    """``vlab up lab.yaml`` as ``user``: its exit code (None: it stayed up) and its stderr."""
    argv = _vlab_command(venv, "up", str(user.home / "lab.yaml"))
    up = subprocess.Popen(
        user.command(argv, **_env(venv, shared)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _out, err = up.communicate(timeout=DEADLINE)
        return up.returncode, err
    except subprocess.TimeoutExpired:
        up.kill()
        _out, err = up.communicate()
        return None, err


@pytest.mark.vlab
def test_a_planted_state_directory_cannot_redirect_writes(
    venv: Path, shared: Path, attacker: User, victim: User
) -> None:
    planted = shared / "tmp" / f"vlab-{victim.uid}"
    bashrc = victim.home / ".bashrc"
    before = bashrc.read_text()
    # The attack of the report: a world-writable directory where every possible name of the
    # victim's temp file (``.PID.json.tmp``, any pid) is a symlink to the victim's ~/.bashrc.
    attacker.sh(f"mkdir -m 0777 {planted}")
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    plant = (
        "import os, sys; d, t, n = sys.argv[1], sys.argv[2], int(sys.argv[3])\n"
        "for p in range(1, n + 1):\n"
        "    os.symlink(t, f'{d}/.{p}.json.tmp')\n"
        "os.symlink(t, f'{d}/probe')"
    )
    attacker.run([SYSTEM_PYTHON, "-c", plant, str(planted), str(bashrc), str(pid_max)])
    assert os.path.islink(planted / f".{pid_max}.json.tmp")
    # live: a naive write by the victim through a planted name lands in ~/.bashrc
    victim.sh(f"echo probe > {planted}/probe")
    assert bashrc.read_text() == "probe\n"
    bashrc.write_text(before)

    code, err = _up_as(victim, venv, shared)
    assert bashrc.read_text() == before, "vlab up wrote its state into ~/.bashrc"
    assert code == 1, err
    # ``up`` runs in its rootless user namespace, where the attacker's uid is not mapped
    assert f"vlab state directory {planted} belongs to another user" in err, err
    assert "Traceback" not in err
    assert not [p for p in os.listdir(planted) if p.endswith(".json")]  # nothing published

    shown = _vlab_as(victim, venv, shared, "show")  # nor is the attacker's directory believed
    assert shown.returncode == 1 and f"belongs to uid {attacker.uid}" in shown.stderr


@pytest.mark.vlab
def test_a_planted_symlink_cannot_become_the_state_directory(
    venv: Path, shared: Path, attacker: User, victim: User
) -> None:
    planted = shared / "tmp" / f"vlab-{victim.uid}"
    attacker.sh(f"ln -s {victim.home} {planted}")
    victim.sh(f"touch {planted}/probe")  # live: the victim's writes would land in their HOME
    assert (victim.home / "probe").exists()
    (victim.home / "probe").unlink()

    code, err = _up_as(victim, venv, shared)
    assert not [p for p in os.listdir(victim.home) if "json" in p], "state landed in HOME"
    assert code == 1, err
    assert f"vlab state directory {planted} is a symlink, not a directory" in err


@pytest.mark.vlab  # needs the rootless suite's venv, built under --vlab only
def test_a_fifo_planted_for_show_cannot_hang_it(
    venv: Path, shared: Path, attacker: User, victim: User
) -> None:
    planted = shared / "tmp" / f"vlab-{victim.uid}"
    attacker.sh(f"mkdir -m 0777 {planted} && mkfifo -m 0666 {planted}/4242.json")
    try:
        shown = _vlab_as(victim, venv, shared, "show")
    except subprocess.TimeoutExpired:
        pytest.fail(f"vlab show hung on the planted FIFO for {DEADLINE:g} s")
    assert shown.returncode == 1 and f"belongs to uid {attacker.uid}" in shown.stderr


@pytest.mark.vlab  # needs the rootless suite's venv, built under --vlab only
def test_someone_elses_runtime_dir_is_not_used(
    venv: Path, shared: Path, attacker: User, victim: User
) -> None:
    """``sudo -E`` keeps XDG_RUNTIME_DIR: the state goes to the victim's own place instead."""
    runtime = attacker.home / "run"
    attacker.sh(f"mkdir -m 0777 {runtime}")
    python = str(venv / "bin" / "python")
    code = "from vlab.cli import state; print(state.state_dir())"
    env = _env(venv, shared)
    done = victim.run([python, "-c", code], XDG_RUNTIME_DIR=str(runtime), **env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(shared / "tmp" / f"vlab-{victim.uid}")
    own = victim.home / "run"
    victim.sh(f"mkdir -m 0700 {own}")
    done = victim.run([python, "-c", code], XDG_RUNTIME_DIR=str(own), **env)
    assert done.stdout.strip() == str(own / "vlab")


@pytest.mark.vlab
def test_the_victims_own_lab_still_works(venv: Path, shared: Path, victim: User) -> None:
    """Positive control: with nothing planted the same user's up/show work in /tmp."""
    up = subprocess.Popen(
        victim.command(
            _vlab_command(venv, "up", str(victim.home / "lab.yaml")), **_env(venv, shared)
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    directory = shared / "tmp" / f"vlab-{victim.uid}"
    try:
        shown = None
        for _ in range(400):
            if up.poll() is not None:
                break
            files = list(directory.glob("*.json")) if directory.exists() else []
            if files:
                shown = _vlab_as(victim, venv, shared, "show")
                break
            subprocess.run(["sleep", "0.05"], check=True)
        assert shown is not None, up.communicate(timeout=5)
        assert shown.returncode == 0, shown.stderr
        assert "h1" in shown.stdout
        assert stat.S_IMODE(os.lstat(directory).st_mode) == 0o700
        assert os.lstat(directory).st_uid == victim.uid
        (state_file,) = directory.glob("*.json")
        assert stat.S_IMODE(os.lstat(state_file).st_mode) == 0o600
        assert int(state_file.stem) == up.pid  # setpriv and env exec: this is vlab itself
        up.send_signal(2)
        up.communicate(timeout=20)
    finally:
        if up.poll() is None:
            up.kill()
            up.communicate()
    assert up.returncode == 0
