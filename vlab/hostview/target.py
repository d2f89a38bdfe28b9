"""The network namespace being inspected: given as a path, a PID or nothing (this one).

The dumps run in a short-lived thread that ``setns``-es into the target and opens its netlink
socket there, so the calling thread — and everything else this process does, like reading
/proc — never changes namespace (namespace membership is per thread, see :mod:`vlab.netns`).
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from vlab.errors import LabError
from vlab.netns import CLONE_NEWNET, setns
from vlab.rtnl import Rtnl

__all__ = ["Target", "open_target"]

NS_GET_USERNS = 0xB701  # _IO(0xb7, 0x1)
NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3)
CLONE_NEWUSER = 0x10000000
T = TypeVar("T")


@dataclass
class Target:
    """An open fd of the namespace (None: the caller's own), and how the user named it."""

    label: str
    inode: int
    fd: int | None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def query(self, work: Callable[[Rtnl], T]) -> T:
        """Run ``work`` with a netlink socket opened inside the namespace."""
        return self.start(work)()

    def start(self, work: Callable[[Rtnl], T]) -> Callable[[], T]:
        """Start ``work`` inside the namespace in its own thread; call the result to wait for
        its value. Lets the caller read /proc while the kernel answers the dumps."""
        result: list[T] = []
        failure: list[BaseException] = []
        fd = self.fd

        def inside() -> None:
            try:
                try:
                    if fd is not None:  # None: this namespace, where the thread already is
                        setns(fd, CLONE_NEWNET)
                except OSError as exc:
                    hint = " (entering another user's namespace needs root)" if os.geteuid() else ""
                    raise LabError(
                        f"cannot enter network namespace {self.label}: {exc.strerror}{hint}"
                    ) from None
                result.append(_with_socket(work))
            except BaseException as exc:  # handed to the caller's thread
                failure.append(exc)

        thread = threading.Thread(target=inside, name="vlab-hostview", daemon=True)
        thread.start()

        def wait() -> T:
            thread.join()  # the thread dies inside the target namespace: nothing to restore
            if failure:
                raise failure[0]
            return result[0]

        return wait


def _with_socket(work: Callable[[Rtnl], T]) -> T:
    rtnl = Rtnl()
    try:
        return work(rtnl)
    finally:
        rtnl.close()


def _path_of(spec: str) -> str:
    return f"/proc/{spec}/ns/net" if spec.isdigit() else spec


def open_target(spec: str | None) -> Target:
    """``None`` (this namespace), a PID, or a path: /proc/PID/ns/net, /proc/PID/fd/N,
    /run/netns/NAME. A clear :class:`LabError` for anything that is not a network namespace."""
    if spec is None:
        return Target("(current)", os.stat("/proc/thread-self/ns/net").st_ino, None)
    path = _path_of(spec)
    what = f"--netns {spec}" + ("" if path == spec else f" ({path})")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        hint = "no such process" if spec.isdigit() else "no such file"
        raise LabError(
            f"{what}: {hint}; give a PID, /proc/PID/ns/net, /proc/PID/fd/N or /run/netns/NAME"
        ) from None
    except PermissionError:
        raise LabError(
            f"{what}: no permission to open it (another user's process: run as root)"
        ) from None
    except OSError as exc:
        raise LabError(f"{what}: cannot open it: {exc.strerror}") from None
    try:
        kind = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:
        kind = -1
    if kind != CLONE_NEWNET:
        os.close(fd)
        raise LabError(
            f"{what} is not a network namespace; give a PID, /proc/PID/ns/net, /proc/PID/fd/N "
            "(an fd on a namespace) or /run/netns/NAME"
        )
    _join_owner(fd)
    return Target(spec if path == spec else f"{spec} ({path})", os.fstat(fd).st_ino, fd)


def _join_owner(netns_fd: int) -> None:
    """A non-root user inspecting a namespace of its own rootless lab (``vlab up`` as that user)
    first joins the user namespace that owns it, as ``nsenter --user`` would: only there does it
    have the CAP_SYS_ADMIN that ``setns`` into the network namespace needs. Root, a namespace
    owned by the caller's own user namespace, or a foreign owner: nothing to do (``setns``
    then succeeds, or fails with its reason). Joining needs a single-threaded process, which
    the command is at this point; there is no way back, and the command does not need one.
    """
    if os.geteuid() == 0 or threading.active_count() != 1:
        return
    try:
        owner = fcntl.ioctl(netns_fd, NS_GET_USERNS)
    except OSError:  # EPERM: owned by a user namespace above ours
        return
    try:
        if os.fstat(owner).st_ino != os.stat("/proc/self/ns/user").st_ino:
            setns(owner, CLONE_NEWUSER)
    except OSError:
        pass  # not ours to join: the setns into the network namespace says why
    finally:
        os.close(owner)
