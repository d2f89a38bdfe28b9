"""Real local users for tests of what one user can do to another (planted files, shared /tmp).

A user is created with ``useradd`` under a unique name and removed with ``userdel`` when the
test ends, whatever happened; commands run as it through ``setpriv``, which execs rather than
forks, so the process a test starts (and kills on a timeout) is the user's program itself, with
a clean environment. Only root can do this: :func:`why_not` says why a test must skip.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

TOOLS = ("useradd", "userdel", "setpriv")


def why_not() -> str | None:
    if os.geteuid() != 0:
        return "creating local users needs root"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"needs {', '.join(missing)} (passwd, util-linux)"
    return None


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    home: Path

    def command(self, argv: Sequence[str], **env: str) -> list[str]:
        """The command line running ``argv`` as this user with only ``env`` (and PATH, HOME)."""
        base = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(self.home), "LANG": "C.UTF-8"}
        pairs = [f"{k}={v}" for k, v in {**base, **env}.items()]
        ids = [f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups"]
        return ["setpriv", *ids, "--", "env", "-i", *pairs, *argv]

    def run(
        self, argv: Sequence[str], timeout: float = 60, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(argv, **env), capture_output=True, text=True, timeout=timeout, cwd="/"
        )

    def sh(self, script: str, **env: str) -> subprocess.CompletedProcess[str]:
        done = self.run(["sh", "-ec", script], **env)
        assert done.returncode == 0, f"as {self.name}: {script}\n{done.stderr}"
        return done


def _retry(argv: list[str]) -> None:
    """useradd/userdel refuse while another process holds /etc/passwd's lock, or (userdel)
    while a killed process of the user is still exiting: try again."""
    for attempt in range(50):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if done.returncode == 0:
            return
        busy = "lock" in done.stderr or "currently used" in done.stderr
        if not busy or attempt == 49:
            raise AssertionError(f"{' '.join(argv)} failed: {done.stderr}")
        time.sleep(0.1)


def _end_processes(uid: int) -> None:
    """SIGKILL what is left running as ``uid``: a fresh user's processes are the test's own."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            owner = os.stat(f"/proc/{pid}").st_uid
            if owner == uid:
                os.kill(int(pid), 9)
        except OSError:
            continue


@contextmanager
def local_user(base: Path, prefix: str = "vlabt") -> Iterator[User]:
    """A fresh unprivileged user with its own home under ``base``; deleted afterwards."""
    name = f"{prefix}{secrets.token_hex(4)}"
    home = base / name
    _retry(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "-U", name])
    try:
        entry = pwd.getpwnam(name)
        home.mkdir(mode=0o755)
        os.chown(home, entry.pw_uid, entry.pw_gid)
        yield User(name, entry.pw_uid, entry.pw_gid, home)
    finally:
        with contextlib.suppress(KeyError):
            _end_processes(pwd.getpwnam(name).pw_uid)
        _retry(["userdel", name])
        shutil.rmtree(home, ignore_errors=True)
