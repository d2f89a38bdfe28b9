"""One pass over /proc: every process holding a tap or macvtap fd, and what it could not read.

A tap has no attribute naming its user; the link between a tap and a VM exists only in the
process that holds the tap's fd. ``/proc/PID/fd/N`` of a tap fd points at ``/dev/net/tun`` and its
``/proc/PID/fdinfo/N`` has an ``iff:\\t<name>`` line (the kernel's tun_chr_show_fdinfo); a
macvtap fd points at ``/dev/tapN``, N being the macvtap's ifindex. Names and ifindexes are per
network namespace, so two labs' ``vnet0`` look the same from /proc: :mod:`vlab.hostview.tapns`
tells them apart. Only reads; a process that exits mid-scan is simply not there.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

__all__ = ["ProcScan", "TapFd", "parse_fdinfo_iff", "read_cmdline", "scan"]

TUN_PATH = "/dev/net/tun"
_MACVTAP = re.compile(r"^/dev/tap(\d+)$")


@dataclass(frozen=True)
class TapFd:
    """One fd of one process on a tap (``device`` = its name) or macvtap (``ifindex``)."""

    pid: int
    fd: int
    kind: str  # "tun" (tap or tun device through /dev/net/tun) or "macvtap"
    device: str | None  # tun: the iff name; None when detached (a disabled multiqueue queue)
    ifindex: int | None  # macvtap: N of /dev/tapN


@dataclass
class ProcScan:
    taps: list[TapFd] = field(default_factory=list)
    #: processes whose fds could not be listed (another user's, without root)
    unreadable: list[int] = field(default_factory=list)
    comms: dict[int, str] = field(default_factory=dict)
    uids: dict[int, int] = field(default_factory=dict)


def parse_fdinfo_iff(text: str) -> str | None:
    """The tap name in a tun fd's fdinfo (``iff:\\tvnet3``); None when the line is missing or
    empty (an fd that never did TUNSETIFF, or a detached queue)."""
    for line in text.splitlines():
        if line.startswith("iff:"):
            name = line[4:].strip()
            return name or None
    return None


def macvtap_index(target: str) -> int | None:
    """N of a ``/dev/tapN`` fd target (a macvtap's character device), else None."""
    m = _MACVTAP.match(target)
    return int(m.group(1)) if m else None


def read_cmdline(pid: int) -> list[str] | None:
    """argv of a process (world-readable unless /proc is mounted with hidepid)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    return [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]] if raw else None


def _read(path: str) -> str:
    """A small /proc file in one read, without the cost of a text file object."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 4096).decode(errors="replace")
    finally:
        os.close(fd)


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except OSError:
        return "?"


def _uid(pid: int) -> int:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return -1


def scan(proc: str = "/proc") -> ProcScan:
    """Every tap/macvtap fd of every process, in one pass; unreadable processes are listed."""
    out = ProcScan()
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        fd_dir = f"{proc}/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except PermissionError:
            out.unreadable.append(pid)
            continue
        except OSError:  # exited, or a kernel thread's empty fd table
            continue
        found = False
        for name in fds:
            try:
                target = os.readlink(f"{fd_dir}/{name}")
            except OSError:
                continue
            if target == TUN_PATH:
                try:
                    iff = parse_fdinfo_iff(_read(f"{proc}/{pid}/fdinfo/{name}"))
                except OSError:
                    continue
                out.taps.append(TapFd(pid, int(name), "tun", iff, None))
                found = True
            elif target.startswith("/dev/tap"):
                index = macvtap_index(target)
                if index is not None:
                    out.taps.append(TapFd(pid, int(name), "macvtap", None, index))
                    found = True
        if found:
            out.comms[pid] = _comm(pid)
            out.uids[pid] = _uid(pid)
    return out
