"""Opening a macvtap's character device from inside a lab namespace.

A macvtap ``NAME`` with ifindex ``N`` has a character device ``tapN`` (major ``macvtap``, a
minor of its own). The kernel publishes it in two places, both wrong for a lab:

- ``/dev/tapN`` on the host's devtmpfs. Ifindexes are per namespace, so two labs (or a lab and
  the host) can both have a macvtap with ifindex 5: the first one wins the node, and opening
  ``/dev/tap5`` may open *another namespace's* macvtap.
- ``/sys/class/net/NAME/macvtap/tapN/dev`` (``MAJOR:MINOR``), but sysfs shows the network
  namespace of whoever mounted it: the host's ``/sys`` does not list lab devices at all.

So a short-lived thread enters the lab namespace, unshares its mount namespace (a thread may:
``unshare(CLONE_NEWNS)`` gives it a private copy of the filesystem view), mounts a fresh sysfs
there (which shows *that* network namespace) to read ``MAJOR:MINOR``, mounts a private tmpfs,
makes its own node with ``mknod`` and opens it. The thread then ends and takes its mounts with
it: nothing appears in the host's filesystem, and the node is exactly the device of this
namespace. The host's ``/dev/tapN`` comes and goes with the device itself (devtmpfs removes it
when the macvtap is destroyed, which the namespace's death does).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import stat
import struct
import threading

from vlab.errors import LabError, Unsupported
from vlab.limits import fd_limit_error
from vlab.netns import NetNS, setns, unshare
from vlab.tap import IFF_NO_PI, IFF_TAP, TUNSETIFF

CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_NOSUID = 0x2
MS_NOEXEC = 0x8
_libc = ctypes.CDLL(None, use_errno=True)
OPEN_TIMEOUT = 10.0


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str) -> None:
    src = source.encode() if source is not None else None
    kind = fstype.encode() if fstype is not None else None
    if _libc.mount(src, target.encode(), kind, flags, data.encode() or None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {fstype or 'private'} on {target}: {os.strerror(err)}")


def _open_inside(ns: NetNS, ifname: str, ifindex: int) -> int:
    setns(ns.fd)
    unshare(CLONE_NEWNS)  # this thread only; it ends right after
    _mount(None, "/", None, MS_REC | MS_PRIVATE, "")  # nothing below propagates to the host
    _mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NOEXEC, "")
    path = f"/sys/class/net/{ifname}/macvtap/tap{ifindex}/dev"
    with open(path) as fh:
        major, minor = (int(part) for part in fh.read().split(":"))
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0700,size=16k")
    node = f"/tmp/tap{ifindex}"
    os.mknod(node, 0o600 | stat.S_IFCHR, os.makedev(major, minor))
    fd = os.open(node, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:  # frames as they are on the wire: no virtio-net header (the kernel's default here)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", b"", IFF_TAP | IFF_NO_PI))
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_macvtap(ns: NetNS, ifname: str, ifindex: int) -> int:
    """The non-blocking fd of macvtap ``ifname`` (ifindex ``ifindex``) in namespace ``ns``:
    what libvirt opens and hands to QEMU for a ``direct`` interface."""
    result: list[int | BaseException] = []

    def run() -> None:
        try:
            result.append(_open_inside(ns, ifname, ifindex))
        except BaseException as exc:  # handed to the caller
            result.append(exc)

    worker = threading.Thread(target=run, name=f"vlab-macvtap-{ifname}", daemon=True)
    worker.start()
    worker.join(OPEN_TIMEOUT)
    if not result:
        raise LabError(f"opening macvtap {ifname}'s device did not finish in {OPEN_TIMEOUT:g} s")
    outcome = result[0]
    if isinstance(outcome, int):
        return outcome
    if isinstance(outcome, OSError):
        problem = fd_limit_error(outcome, f"cannot open macvtap {ifname}'s device")
        if problem is not None:
            raise problem from None
        if outcome.errno in (errno.EPERM, errno.EACCES):
            raise Unsupported(
                f"cannot open macvtap {ifname}'s character device ({outcome.strerror}): "
                "macvtap VMs need root in the initial user namespace (mount, mknod)"
            ) from None
        raise LabError(f"cannot open macvtap {ifname}'s device: {outcome}") from None
    raise outcome


__all__ = ["open_macvtap"]
