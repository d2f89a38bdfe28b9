"""How other vlab commands find a lab that ``vlab up`` keeps running.

A lab's namespaces are anonymous: they exist only as file descriptors of the ``vlab up``
process. That process publishes a small JSON file naming its pid and which of its fds is which
node's namespace; ``vlab exec`` and ``vlab show`` then open ``/proc/PID/fd/N`` (the kernel lets
the same user, or root, do that) and ``setns`` into it. The file is removed when the lab is torn
down; a file whose process is gone (SIGKILL, reboot) is stale and ignored, and removed when
possible. A pid reused by an unrelated process is told apart by the process start time.

The directory is private (0700, this user's own, never a symlink: see :mod:`vlab.paths`), so
nobody else can plant a file in it, and even so each file is created with O_EXCL|O_NOFOLLOW and
read back only if it is a regular file of bounded size: without XDG_RUNTIME_DIR the directory
lives in /tmp, where another local user could otherwise have prepared it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlab import rootless
from vlab.errors import LabError
from vlab.paths import RefusedFile, open_private_dir, read_regular

FORMAT = 1
MAX_STATE_BYTES = 16 << 20
"""Far beyond a 1024-port lab's state (~250 kB); bounds what ``vlab show`` reads."""
_STATE_NAME = re.compile(r"^[0-9]{1,10}\.json$")
_FIX = "set VLAB_STATE_DIR to a directory of your own"


def state_dir() -> Path:
    """Where running labs are listed: $VLAB_STATE_DIR, /run/vlab for root, else per user.

    Chosen by the host uid: a rootless process is uid 0 in its user namespace but still cannot
    write /run, and other commands of the same user must look in the same place.
    """
    override = os.environ.get("VLAB_STATE_DIR")
    if override:
        return Path(override)
    uid = rootless.host_uid()
    if uid == 0:
        return Path("/run/vlab")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and _own_dir(runtime):
        return Path(runtime) / "vlab"
    return Path(tempfile.gettempdir()) / f"vlab-{uid}"


def _own_dir(path: str) -> bool:
    """A directory of this user's (an XDG_RUNTIME_DIR kept by ``sudo -E`` is someone else's)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return os.path.isdir(path) and st.st_uid == os.geteuid()


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(text.rpartition(")")[2].split()[19])


@dataclass
class Node:
    """One thing of a running lab a user can name: a bridge, a VM, a host, an uplink."""

    name: str
    kind: str  # bridge, vm, host, uplink, cable
    ns: str  # the lab namespace it lives in (switch, upstream, a host's name)
    mac: str
    bridge: str | None = None
    port: str | None = None  # its port on the bridge
    port_mac: str | None = None  # the MAC of that port's device (a VM's tap)
    ifname: str | None = None  # its own interface, in its namespace (hosts, uplinks)
    peer_bridge: str | None = None  # a cable: the bridge of its other end
    peer_port: str | None = None  # a cable: its port on that bridge


@dataclass
class RunningLab:
    """What a ``vlab up`` process published about its lab."""

    pid: int
    start: int
    name: str
    source: str
    rootless: bool
    namespaces: dict[str, int]  # namespace name -> fd number in the owner process
    nodes: list[Node] = field(default_factory=list)
    path: Path | None = None

    def to_json(self) -> str:
        data = {
            "format": FORMAT,
            "pid": self.pid,
            "start": self.start,
            "name": self.name,
            "source": self.source,
            "rootless": self.rootless,
            "namespaces": self.namespaces,
            "nodes": [vars(n) for n in self.nodes],
        }
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str, path: Path | None = None) -> RunningLab:
        data: dict[str, Any] = json.loads(text)  # deep nesting: RecursionError, see running()
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"state format {data.get('format')!r}")
        return cls(
            pid=int(data["pid"]),
            start=int(data["start"]),
            name=str(data["name"]),
            source=str(data["source"]),
            rootless=bool(data["rootless"]),
            namespaces={str(k): int(v) for k, v in data["namespaces"].items()},
            nodes=[Node(**n) for n in data["nodes"]],
            path=path,
        )

    def alive(self) -> bool:
        return start_time(self.pid) == self.start

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        names = ", ".join(n.name for n in self.nodes)
        raise LabError(f"lab {self.name} (pid {self.pid}) has no node {name!r}; nodes: {names}")

    def ns_path(self, ns: str) -> str:
        return f"/proc/{self.pid}/fd/{self.namespaces[ns]}"


def publish(lab: RunningLab) -> Path:
    """Write the lab's state file atomically (readers never see half a file), mode 0600.

    The temporary file gets a random name and is created with O_EXCL|O_NOFOLLOW inside the
    checked directory, then renamed over the final name: nothing planted can redirect the write.
    """
    directory = state_dir()
    dfd = open_private_dir(directory, "vlab state directory", _FIX)
    try:
        name = f"{lab.pid}.json"
        tmp = f".{lab.pid}.{secrets.token_hex(6)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o600, dir_fd=dfd)
        try:
            with os.fdopen(fd, "w", closefd=False) as out:
                out.write(lab.to_json())
            os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            raise
        finally:
            os.close(fd)
    finally:
        os.close(dfd)
    lab.path = directory / name
    return lab.path


def unpublish(lab: RunningLab) -> None:
    if lab.path is not None:
        lab.path.unlink(missing_ok=True)


def running() -> list[RunningLab]:
    """Every lab whose owner process is alive, oldest first; stale files are cleaned up.

    A state directory that is not private is refused (:class:`LabError`): its files could name
    another user's process. In it, only regular files are read (a FIFO would block, a symlink
    to /dev/zero never end), at most :data:`MAX_STATE_BYTES` each; a file that is not valid
    state (broken or deeply nested JSON) is skipped.
    """
    directory = state_dir()
    try:
        dfd = open_private_dir(directory, "vlab state directory", _FIX, create=False)
    except FileNotFoundError:
        return []
    labs = []
    try:
        for name in sorted(n for n in os.listdir(dfd) if _STATE_NAME.match(n)):
            try:
                data = read_regular(name, MAX_STATE_BYTES, follow=False, dir_fd=dfd, what="state")
                lab = RunningLab.from_json(data.decode(), directory / name)
            except (RefusedFile, OSError, ValueError, LookupError, TypeError, AttributeError):
                continue
            except RecursionError:  # JSON nested deeper than the parser's stack
                continue
            if lab.alive():
                labs.append(lab)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=dfd)
    finally:
        os.close(dfd)
    return sorted(labs, key=lambda lab: lab.start)


def find(pid: int | None = None, name: str | None = None) -> RunningLab:
    """The one running lab the user means: by pid, by name, or the only one there is."""
    labs = running()
    if pid is not None:
        labs = [lab for lab in labs if lab.pid == pid]
    if name is not None:
        labs = [lab for lab in labs if lab.name == name]
    if len(labs) == 1:
        return labs[0]
    wanted = " ".join(
        s for s in (f"with pid {pid}" if pid else "", f"named {name!r}" if name else "") if s
    )
    if not labs:
        raise LabError(
            f"no running lab {wanted}".rstrip()
            + f" (in {state_dir()}); start one with: vlab up FILE"
        )
    listed = ", ".join(f"{lab.name} (pid {lab.pid})" for lab in labs)
    raise LabError(f"{len(labs)} labs are running: {listed}; choose one with --pid or --lab")
