"""Running out of file descriptors, said as what it is.

Every lab namespace, netlink socket, packet socket and tap is an fd. When the process hits its
limit the kernel says EMFILE (or ENFILE for the whole system); left alone that surfaces as a raw
``OSError: [Errno 24]``, or worse as "cannot open /dev/net/tun", which reads like a missing
feature and would turn a test into a skip. It is neither: it is a failure with a known fix.
"""

from __future__ import annotations

import errno
import resource

from vlab.errors import LabError

FD_ERRNOS = (errno.EMFILE, errno.ENFILE)


def describe_limit() -> str:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    def show(n: int) -> str:
        return "unlimited" if n == resource.RLIM_INFINITY else str(n)

    return f"RLIMIT_NOFILE soft {show(soft)}, hard {show(hard)}"


def fd_limit_error(exc: BaseException, what: str) -> LabError | None:
    """The LabError for an fd-exhaustion OSError (None for any other error)."""
    if not isinstance(exc, OSError) or exc.errno not in FD_ERRNOS:
        return None
    if exc.errno == errno.ENFILE:
        return LabError(
            f"{what}: the system ran out of file descriptors (ENFILE, fs.file-max; this process: "
            f"{describe_limit()}); close other labs or raise fs.file-max"
        )
    return LabError(
        f"{what}: this process ran out of file descriptors (EMFILE, {describe_limit()}); "
        "every lab namespace, socket and tap holds one: close labs you no longer need or raise "
        "the limit (ulimit -n 65536)"
    )
