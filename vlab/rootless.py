"""Rootless labs: a non-root user becomes root of a user namespace of its own.

Creating network namespaces, bridges and veths needs CAP_NET_ADMIN/CAP_SYS_ADMIN, but only in the
user namespace that owns the network namespace. Where the distribution allows unprivileged user
namespaces, a normal user can unshare one, map itself to root inside it, and from then on build
labs exactly as root does: the kernel objects belong to namespaces owned by that user and vanish
with the process like any other lab.

The process also moves to a network namespace of its own (empty but for ``lo``): a thread that
enters a lab namespace must be able to return home, and ``setns`` back into the host's namespace
needs CAP_SYS_ADMIN over the host's user namespace, which a rootless process never has. So a
rootless vlab process has no host network; labs never use it anyway.

``unshare(CLONE_NEWUSER)`` is refused (EINVAL) once a process has a second thread, so
:func:`ensure` has to run first thing: the pytest plugin calls it from ``pytest_configure`` and the
CLI at startup, before xdist, execnet or a reaper thread exist; ``Lab()`` calls it too, so a
script's first ``with Lab() as lab:`` works as a normal user (a program that starts threads
before its first lab calls it itself, earlier). Child processes (xdist workers,
``vlab run``'s pytest) inherit the namespace and are root in it already.

/dev/net/tun is a device node owned by the host's root: inside the user namespace it is opened with
the user's own permissions (CAP_DAC_OVERRIDE does not reach files of unmapped owners), so taps work
only where the node is world read-write (0666, the usual default). :func:`tun_problem` says why
not, and VM endpoints are then skipped with that reason.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
from pathlib import Path

from vlab.errors import LabError
from vlab.netns import unshare

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
TUN = "/dev/net/tun"
_FULL_MAP = (0, 0, 4294967295)

# Knobs distributions use to forbid unprivileged user namespaces, with the value that forbids.
USERNS_SYSCTLS = (
    ("/proc/sys/kernel/unprivileged_userns_clone", "0"),  # Debian/Ubuntu kernels
    ("/proc/sys/user/max_user_namespaces", "0"),
    ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1"),  # Ubuntu 24.04+
)


def _uid_map(pid: int | str = "self") -> list[tuple[int, int, int]]:
    text = Path(f"/proc/{pid}/uid_map").read_text()
    return [(int(a), int(b), int(c)) for a, b, c in (line.split() for line in text.splitlines())]


def in_user_namespace(pid: int | str = "self") -> bool:
    """Whether ``pid`` runs in a user namespace other than the host's (identity map)."""
    return _uid_map(pid) != [_FULL_MAP]


def host_uid() -> int:
    """The uid this process has on the host, even when it is root of a user namespace.

    State files and runtime directories must be chosen by this uid: a rootless ``vlab up`` sees
    itself as uid 0 but cannot write /run.
    """
    uid = os.getuid()
    for inside, outside, count in _uid_map():
        if inside <= uid < inside + count:
            return outside + (uid - inside)
    return uid


def threads() -> int:
    """How many threads this process has (the kernel's count, not only Python's)."""
    return len(os.listdir("/proc/self/task"))


def userns_blocked() -> str | None:
    """Which sysctl forbids unprivileged user namespaces here, or None if none does."""
    for path, forbidding in USERNS_SYSCTLS:
        try:
            value = Path(path).read_text().strip()
        except OSError:
            continue
        if value == forbidding:
            return f"{path.removeprefix('/proc/sys/').replace('/', '.')} = {value}"
    return None


def ensure() -> bool:
    """Make this process able to build labs; True when it entered a new user namespace.

    Root (including root of a user namespace entered earlier, e.g. by the parent process) needs
    nothing. Anyone else unshares a user namespace and maps itself to root in it; raises
    :class:`LabError` saying why when that is impossible.
    """
    if os.geteuid() == 0:
        return False
    uid, gid = os.geteuid(), os.getegid()
    _keep_user_name(uid)
    n = threads()
    if n > 1:
        raise LabError(
            f"rootless labs: this process already has {n} threads, and a user namespace can only "
            "be entered by a single-threaded process; call vlab.rootless.ensure() first thing "
            "in the program (before anything starts a thread), run it as root, or start it "
            "under `unshare --user --map-root-user --net`"
        )
    try:
        unshare(CLONE_NEWUSER | CLONE_NEWNET)
    except OSError as exc:
        blocked = userns_blocked()
        hint = f" ({blocked})" if blocked else ""
        why = exc.strerror
        if exc.errno == errno.ENOSPC:  # the kernel's way of saying a user namespace limit is hit
            why = "the limit on user namespaces is reached"
        raise LabError(
            f"rootless labs: no user namespace can be made here ({why}){hint}; run as root "
            "or allow unprivileged user namespaces"
        ) from None
    try:
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
        Path("/proc/self/gid_map").write_text(f"0 {gid} 1")
    except OSError as exc:
        raise LabError(f"rootless labs: cannot map uid {uid} to root: {exc.strerror}") from None
    return True


def _keep_user_name(uid: int) -> None:
    """Pin $USER/$LOGNAME to the real user before becoming uid 0 of the namespace.

    ``getpass.getuser()`` falls back to the uid's passwd entry, which would say "root" from then
    on; pytest would then use /tmp/pytest-of-root, which belongs to the real root.
    """
    if os.environ.get("LOGNAME") or os.environ.get("USER"):
        return
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = f"uid{uid}"
    os.environ["USER"] = os.environ["LOGNAME"] = name


def tun_problem() -> str | None:
    """Why this process cannot create taps (VM endpoints), or None when it can."""
    try:
        st = os.stat(TUN)
    except FileNotFoundError:
        return f"{TUN} does not exist (no tun driver): VM endpoints are unavailable"
    if not stat.S_ISCHR(st.st_mode):
        return f"{TUN} is not a character device"
    try:
        fd = os.open(TUN, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        mode = stat.S_IMODE(st.st_mode)
        if exc.errno in (errno.EACCES, errno.EPERM) and in_user_namespace():
            return (
                f"{TUN} is mode {mode:04o}: a rootless user may open it only if it is 0666 "
                f"(chmod 0666 {TUN} as root); VM endpoints are skipped"
            )
        return f"cannot open {TUN} ({exc.strerror}, mode {mode:04o}): VM endpoints are skipped"
    os.close(fd)
    return None


def rootless_tun_ok() -> bool:
    """Whether a non-root user in a user namespace could open /dev/net/tun (mode 0666)."""
    try:
        return stat.S_IMODE(os.stat(TUN).st_mode) & 0o006 == 0o006
    except OSError:
        return False
