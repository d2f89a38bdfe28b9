"""Which network namespace the device behind another process's tap fd lives in.

Tap names repeat across namespaces (every lab, every container has its ``vnet0``), and
``fdinfo`` shows only the name. The kernel answers the question itself: TUNGETDEVNETNS on a tap
fd returns an fd of the namespace the *device* is in now (the socket's namespace may differ once
the device moved). To ask it, the holder's fd is duplicated into this process with
``pidfd_getfd`` (Linux 5.6; ptrace-level access, i.e. root for other users' processes). The
duplicate is only queried and closed: the tap, its queue and the holder are left as they were
(the holder keeps its own fd, so this close is never the last one unless the holder closed its
copy meanwhile, and then the tap would have gone anyway).

For a macvtap (``/dev/tapN``), TUNGETIFF on the duplicate gives the device name, which with
the ifindex N is what pins it to the namespace's macvtap.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import struct

__all__ = ["Checker", "TapCheck"]

SYS_PIDFD_GETFD = 438  # x86_64, aarch64 and every architecture with the unified syscall table
TUNGETDEVNETNS = 0x54E3  # _IO('T', 227)
TUNGETIFF = 0x800454D2  # _IOR('T', 210, unsigned int)
_libc = ctypes.CDLL(None, use_errno=True)


class TapCheck:
    """Outcome of one check: ``ok`` True (it is), False (it is not) or None (cannot tell)."""

    __slots__ = ("ok", "why")

    def __init__(self, ok: bool | None, why: str = "") -> None:
        self.ok = ok
        self.why = why


class Checker:
    """Duplicates fds out of holder processes, one pidfd per process, and asks the kernel."""

    def __init__(self, netns_inode: int) -> None:
        self.inode = netns_inode
        self._pidfds: dict[int, int | str] = {}

    def _pidfd(self, pid: int) -> int | str:
        if pid not in self._pidfds:
            try:
                self._pidfds[pid] = os.pidfd_open(pid)
            except OSError as exc:
                self._pidfds[pid] = f"pidfd_open({pid}): {exc.strerror}"
        return self._pidfds[pid]

    def _dup(self, pid: int, fd: int) -> int | str:
        pidfd = self._pidfd(pid)
        if isinstance(pidfd, str):
            return pidfd
        got = _libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
        if got < 0:
            err = ctypes.get_errno()
            return f"pidfd_getfd of pid {pid} fd {fd}: {os.strerror(err)}"
        return int(got)

    def tun_here(self, pid: int, fd: int) -> TapCheck:
        """Is the device behind ``pid``'s tun fd ``fd`` in the inspected namespace?"""
        dup = self._dup(pid, fd)
        if isinstance(dup, str):
            return TapCheck(None, dup)
        try:
            ns = fcntl.ioctl(dup, TUNGETDEVNETNS)
        except OSError as exc:
            return TapCheck(None, f"TUNGETDEVNETNS on pid {pid} fd {fd}: {exc.strerror}")
        finally:
            os.close(dup)
        try:
            return TapCheck(os.fstat(ns).st_ino == self.inode)
        finally:
            os.close(ns)

    def macvtap_name(self, pid: int, fd: int) -> str | None:
        """The macvtap device name behind ``pid``'s ``/dev/tapN`` fd, if it can be asked."""
        dup = self._dup(pid, fd)
        if isinstance(dup, str):
            return None
        try:
            raw = fcntl.ioctl(dup, TUNGETIFF, b"\0" * 40)
        except OSError:
            return None
        finally:
            os.close(dup)
        name: bytes = struct.unpack_from("16s", raw)[0]
        return name.split(b"\0")[0].decode(errors="replace")

    def close(self) -> None:
        for pidfd in self._pidfds.values():
            if isinstance(pidfd, int):
                os.close(pidfd)
        self._pidfds.clear()
