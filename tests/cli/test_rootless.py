"""Rootless labs, as an unprivileged user (``nobody``) would run them.

The suite runs in a virtualenv made with the distribution's ``/usr/bin/python3`` (the default
interpreter may live under /root, which nobody cannot enter), with vlab installed into it from a
world-readable copy of this checkout. The venv's dependencies are cached across runs; vlab itself
is reinstalled every time so the code under test is this checkout's.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from cli_helpers import DATA, ROOT

pytestmark = pytest.mark.vlab
SYSTEM_PYTHON = "/usr/bin/python3"
NOBODY = "nobody"
DEPENDENCIES = ("pytest", "pyroute2", "scapy", "hypothesis", "PyYAML", "pytest-xdist", "execnet")
SOURCES = ("vlab", "pyproject.toml", "README.md", "LICENSE")


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "switching to nobody needs root"
    if shutil.which("runuser") is None or shutil.which("unshare") is None:
        return "needs runuser and unshare (util-linux)"
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"needs {SYSTEM_PYTHON} (a Python nobody can execute)"
    probe = subprocess.run(
        ["runuser", "-u", NOBODY, "--", "unshare", "--user", "--map-root-user", "--net", "true"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return f"unprivileged user namespaces are disabled here: {probe.stderr.strip()}"
    return None


def _pins() -> list[str]:
    """This environment's versions, so the venv installs what the suite is known to work with."""
    pins = ["setuptools>=77", "wheel"]  # pyproject.toml's SPDX licence needs setuptools 77
    for name in DEPENDENCIES:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pins.append(name)
    return pins


def _pip(venv: Path, *args: str) -> None:
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "-q", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"pip {' '.join(args)} failed: {done.stderr[-2000:]}"


def _source_hash() -> str:
    digest = hashlib.sha256()
    for name in SOURCES:
        base = ROOT / name
        files = sorted(base.rglob("*")) if base.is_dir() else [base]
        for file in files:
            if file.is_file() and "__pycache__" not in file.parts:
                digest.update(str(file.relative_to(ROOT)).encode() + file.read_bytes())
    return digest.hexdigest()[:16]


def _install_checkout(venv: Path) -> None:
    """Install vlab (not editable) from a copy: nobody cannot read a checkout under /root."""
    source = Path(tempfile.mkdtemp(prefix="vlab-rootless-src-"))
    try:
        for name in SOURCES:
            if (ROOT / name).is_dir():
                ignore = shutil.ignore_patterns("__pycache__")
                shutil.copytree(ROOT / name, source / name, ignore=ignore)
            elif (ROOT / name).exists():
                shutil.copy(ROOT / name, source / name)
            else:
                (source / name).write_text("")
        _pip(venv, "install", "--no-deps", "--no-build-isolation", "--force-reinstall", str(source))
    finally:
        shutil.rmtree(source, ignore_errors=True)


@pytest.fixture(scope="module")
def venv() -> Iterator[Path]:
    """A world-readable venv with the pinned dependencies and this checkout's vlab installed."""
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    pins = _pins()
    # one venv per checkout: checkouts side by side must not reinstall each other's vlab
    key = hashlib.sha256("\n".join([SYSTEM_PYTHON, str(ROOT), *pins]).encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"vlab-rootless-venv-{key}"
    with open(Path(tempfile.gettempdir()) / "vlab-rootless-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel workers and runs share one venv
        if not (path / ".complete").exists():
            shutil.rmtree(path, ignore_errors=True)
            subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(path)], check=True, timeout=300)
            _pip(path, "install", *pins)
            (path / ".complete").touch()
        installed = path / f".vlab-{_source_hash()}"
        if not installed.exists():  # reinstall only when this checkout's code changed
            _install_checkout(path)
            for old in path.glob(".vlab-*"):
                old.unlink()
            installed.touch()
    subprocess.run(["chmod", "-R", "a+rX", str(path)], check=True)
    yield path


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    """A directory nobody owns (tmp_path is under a 0700 directory of root's)."""
    directory = Path(tempfile.mkdtemp(prefix="vlab-nobody-"))
    os.chmod(directory, 0o755)
    shutil.chown(directory, NOBODY)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def as_nobody(venv: Path, cwd: Path, *argv: str, blocked_tun: bool = False) -> list[str]:
    """The command line that runs ``argv`` as nobody (optionally with /dev/net/tun 0600)."""
    env = [
        "env",
        "-i",
        f"PATH={venv / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin",
        f"HOME={cwd}",
        "LANG=C.UTF-8",
        f"VLAB_STATE_DIR={cwd / 'state'}",
    ]
    command = ["runuser", "-u", NOBODY, "--", *env, *argv]
    if not blocked_tun:
        return command
    # a private mount namespace where /dev/net/tun is a 0600 node, as on stricter distributions
    node = cwd / "tun-0600"  # removed with cwd
    shell = (
        f'mount --make-rprivate / && rm -f "{node}" && mknod "{node}" c 10 200 '
        f'&& chmod 0600 "{node}" && mount --bind "{node}" /dev/net/tun && exec "$@"'
    )
    return ["unshare", "--mount", "sh", "-c", shell, "sh", *command]


def run_as_nobody(
    venv: Path, cwd: Path, *argv: str, blocked_tun: bool = False
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        as_nobody(venv, cwd, *argv, blocked_tun=blocked_tun),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _suite(directory: Path) -> Path:
    shutil.copy(DATA / "lab_suite.py", directory / "test_lab_suite.py")
    return directory


def test_lab_suite_as_nobody_in_two_workers(venv: Path, nobody_dir: Path) -> None:
    _suite(nobody_dir)
    python = str(venv / "bin" / "python")
    done = run_as_nobody(
        venv, nobody_dir, python, "-m", "pytest", "--vlab", "-p", "no:cacheprovider", "-n", "2",
        "-rs", "-q", ".",
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    if os.stat("/dev/net/tun").st_mode & 0o006 == 0o006:
        assert "7 passed" in out, out[-4000:]
    else:  # taps are root's on this machine: VM tests skip, the rest runs
        assert "2 passed, 5 skipped" in out and "/dev/net/tun" in out, out[-4000:]


def test_vm_endpoints_skip_when_tun_is_not_openable(venv: Path, nobody_dir: Path) -> None:
    _suite(nobody_dir)
    python = str(venv / "bin" / "python")
    done = run_as_nobody(
        venv, nobody_dir, python, "-m", "pytest", "--vlab", "-p", "no:cacheprovider", "-rs", ".",
        blocked_tun=True,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "2 passed, 5 skipped" in out, out[-4000:]
    skips = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    assert skips and all("/dev/net/tun" in line and "0666" in line for line in skips), skips
    assert all("test_lab_suite.py" in line for line in skips)  # reported at the test

    doctor = run_as_nobody(venv, nobody_dir, "vlab", "doctor", blocked_tun=True)
    assert doctor.returncode == 0, doctor.stderr  # labs still run, without VM endpoints
    rows = {line.split()[1]: line for line in doctor.stdout.splitlines() if line[:1].islower()}
    assert "rootless: uid" in rows["privileges"]
    assert " missing " in rows["/dev/net/tun"] and "0666" in rows["/dev/net/tun"]
    assert " missing " in rows["tap"]


def test_up_exec_show_as_nobody(venv: Path, nobody_dir: Path) -> None:
    shutil.copy(DATA / "lab.yaml", nobody_dir / "lab.yaml")
    up = subprocess.Popen(
        as_nobody(venv, nobody_dir, "vlab", "up", "lab.yaml"),
        cwd=nobody_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not list((nobody_dir / "state").glob("*.json")):
            assert up.poll() is None, up.communicate()
            assert time.monotonic() < deadline, "vlab up did not publish its lab"
            time.sleep(0.05)
        (state,) = (nobody_dir / "state").glob("*.json")
        done = run_as_nobody(venv, nobody_dir, "vlab", "exec", "br0", "--", "bridge", "link")
        assert done.returncode == 0, done.stderr
        assert "vnet0" in done.stdout and "master br0" in done.stdout
        shown = run_as_nobody(venv, nobody_dir, "vlab", "show")
        assert shown.returncode == 0, shown.stderr
        assert "vm1" in shown.stdout and "forwarding" in shown.stdout
        # Ctrl-C in a terminal reaches vlab itself (runuser does not forward SIGINT)
        os.kill(int(state.stem), signal.SIGINT)
        out, err = up.communicate(timeout=20)
    finally:
        if up.poll() is None:
            up.kill()
            up.communicate()
    assert up.returncode == 0, err
    assert "torn down" in out
    assert list((nobody_dir / "state").glob("*.json")) == []


def test_entering_needs_a_single_thread_and_keeps_the_user_name(
    venv: Path, nobody_dir: Path
) -> None:
    python = str(venv / "bin" / "python")
    threaded = (
        "import threading, time; threading.Thread(target=time.sleep, args=(9,), daemon=True)"
        ".start(); from vlab import rootless; rootless.ensure()"
    )
    done = run_as_nobody(venv, nobody_dir, python, "-c", threaded)
    assert done.returncode == 1 and "single-threaded" in done.stderr
    assert "unshare --user --map-root-user --net" in done.stderr
    single = (
        "import os, getpass; from vlab import rootless; print(rootless.ensure(), os.geteuid(), "
        "rootless.host_uid(), getpass.getuser(), rootless.ensure())"
    )
    done = run_as_nobody(venv, nobody_dir, python, "-c", single)
    assert done.returncode == 0, done.stderr
    uid = pwd.getpwnam(NOBODY).pw_uid
    assert done.stdout.split() == ["True", "0", str(uid), NOBODY, "False"]
