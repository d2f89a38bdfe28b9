"""Anonymous network namespaces held by file descriptors.

A namespace that is only referenced by an fd (and by the sockets opened inside it) has no name in
/run/netns, costs about half a millisecond to make, and disappears when the last reference goes —
including when the process is SIGKILLed. That is what makes labs leak-proof.

Namespace membership is per *thread*: :func:`entered` moves only the calling thread, which is why
every path here is ``/proc/thread-self`` and never ``/proc/self`` (the main thread's namespace).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager

from vlab.errors import LabError

CLONE_NEWNET = 0x40000000
_NS_PATH = "/proc/thread-self/ns/net"
_libc = ctypes.CDLL(None, use_errno=True)


def setns(fd: int, nstype: int = CLONE_NEWNET) -> None:
    """``setns(2)`` for the calling thread (``os.setns`` where Python has it, 3.12+)."""
    native = getattr(os, "setns", None)
    if native is not None:
        native(fd, nstype)
        return
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def unshare(flags: int = CLONE_NEWNET) -> None:
    """``unshare(2)`` for the calling thread (``os.unshare`` where Python has it, 3.12+)."""
    native = getattr(os, "unshare", None)
    if native is not None:
        native(flags)
        return
    if _libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class NetNS:
    """One anonymous namespace. ``name`` is for humans (reports, ``vlab show``), not the kernel."""

    def __init__(self, name: str, fd: int) -> None:
        self.name = name
        self.fd = fd
        # Set when something vlab does not keep track of may have changed the namespace: a
        # sysctl written, the namespace handed to a test or a program. A switch namespace that
        # was touched is verified in full before it is reused (see vlab.nspool).
        self.touched = False
        st = os.fstat(fd)
        self.inode = st.st_ino

    @classmethod
    def create(cls, name: str) -> NetNS:
        """Make a namespace without leaving the calling thread in it.

        The way back is in a ``finally`` that covers the unshare itself: a Ctrl-C landing just
        after the syscall must not strand the thread (and everything it opens later) inside.
        """
        home = os.open(_NS_PATH, os.O_RDONLY | os.O_CLOEXEC)
        fd = -1
        refused = False  # a refused unshare moved nothing, and setns home would be refused too
        try:
            try:
                unshare()
            except OSError as exc:
                refused = True
                raise LabError(
                    f"cannot create a network namespace ({exc.strerror}): vlab needs root or "
                    "CAP_NET_ADMIN/CAP_SYS_ADMIN (or an unprivileged user namespace)"
                ) from None
            fd = os.open(_NS_PATH, os.O_RDONLY | os.O_CLOEXEC)
            return cls(name, fd)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise
        finally:
            try:
                if not refused:
                    setns(home)
            finally:
                os.close(home)

    @contextmanager
    def entered(self) -> Iterator[None]:
        """Run a block with this thread inside the namespace, then return where it was."""
        home = os.open(_NS_PATH, os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(self.fd)
            yield
        finally:
            try:
                setns(home)  # also when an interrupt hit just after entering
            finally:
                os.close(home)

    def sysctl(self, key: str, value: str | int) -> None:
        """Write a net sysctl of this namespace (``/proc/sys/net`` is resolved per thread)."""
        path = "/proc/sys/" + key.replace(".", "/")
        self.touched = True
        with self.entered():
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, str(value).encode())
            finally:
                os.close(fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __repr__(self) -> str:
        return f"NetNS({self.name!r}, inode={self.inode})"


def current_inode() -> int:
    """Inode of the calling thread's namespace, to assert we never leak a setns."""
    return os.stat(_NS_PATH).st_ino
