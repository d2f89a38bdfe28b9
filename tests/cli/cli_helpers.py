"""Helpers for driving the ``vlab`` command the way a user does: as a separate process."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"


def vlab_argv() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m vlab.cli``."""
    script = Path(sys.executable).parent / "vlab"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "vlab.cli"]


Runner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private place for ``vlab up`` state files, so other labs on the machine do not count."""
    directory = tmp_path / "state"
    monkeypatch.setenv("VLAB_STATE_DIR", str(directory))
    return directory


@pytest.fixture
def vlab(state_dir: Path) -> Runner:
    """Run ``vlab ARGS...`` to completion and return its output and exit code."""

    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*vlab_argv(), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )

    return run


class Up:
    """A ``vlab up`` running in the background, as in a second terminal."""

    def __init__(self, file: Path, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.proc = subprocess.Popen(
            [*vlab_argv(), "up", str(file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.state = state_dir / f"{self.proc.pid}.json"
        self.output = ""

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not self.state.exists():
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                raise AssertionError(f"vlab up exited {self.proc.returncode}: {out}{err}")
            if time.monotonic() > deadline:
                raise AssertionError("vlab up did not publish its lab")
            time.sleep(0.02)

    def stop(self, sig: int) -> tuple[int, str, str]:
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=20)
        return self.proc.returncode, out, err


@pytest.fixture
def start_up(state_dir: Path) -> Iterator[Callable[[Path], Up]]:
    started: list[Up] = []

    def start(file: Path) -> Up:
        up = Up(file, state_dir)
        started.append(up)
        up.wait_ready()
        return up

    yield start
    for up in started:
        if up.proc.poll() is None:
            up.proc.kill()
            up.proc.communicate()


def net_ns_holders(inodes: set[str]) -> list[str]:
    """Processes with an fd on (or living in) one of these network namespaces."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        links = []
        try:
            links.append(os.readlink(f"/proc/{pid}/ns/net"))
            for fd in os.listdir(f"/proc/{pid}/fd"):
                links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
        if inodes & set(links):
            found.append(pid)
    return found


def host_links() -> list[str]:
    """The host's links by name and kind: what a leaking lab would change."""
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True)
    return sorted(line.split(":")[1].strip() for line in out.stdout.splitlines())


def named_netns() -> set[str]:
    """``net:[inode]`` of every namespace ``ip netns`` knows by name."""
    found = set()
    for directory in ("/run/netns", "/var/run/netns"):
        if os.path.isdir(directory):
            for name in os.listdir(directory):
                with contextlib.suppress(OSError):
                    found.add(f"net:[{os.stat(os.path.join(directory, name)).st_ino}]")
    return found
