"""Files and directories vlab trusts: private directories, bounded reads, safe path components.

vlab runs as root and as ordinary users, keeps state in shared places such as /tmp, and is run
with other people's environments (``sudo -E`` keeps a user's HOME). Every path it writes or
believes in must therefore be one that nobody else could have planted:

- a directory vlab keeps state in is made private (0700) or, if it exists, must be a real
  directory (not a symlink) owned by this user; everything in it is opened relative to an fd of
  that directory, new files with ``O_CREAT|O_EXCL|O_NOFOLLOW``, so a symlink cannot redirect a
  write to the user's ``~/.bashrc``;
- a file vlab reads from a user (a scenario, a state file) is opened without blocking, must be a
  regular file (a FIFO would hang the reader, ``/dev/zero`` would never end) and is read up to a
  size limit, never whole;
- a cache vlab boots from must be owned, along its whole path, by this user or root and be
  writable by nobody else (:func:`check_trusted`);
- a lab's name is never a path component as it is (``Lab(name="../../x")``): :func:`safe_component`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from pathlib import Path

from vlab.errors import LabError

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class RefusedFile(LabError):
    """A file vlab will not read or trust; ``problem`` and ``fix`` are the halves of the text."""

    def __init__(self, path: Path | str, problem: str, fix: str) -> None:
        super().__init__(f"{path}: {problem}; {fix}")
        self.path = str(path)
        self.problem = problem
        self.fix = fix


def safe_component(name: object, limit: int = 40, default: str = "lab") -> str:
    """``name`` as one harmless path component: no separators, no leading dot, bounded length.

    Letters, digits, ``_``, ``.`` and ``-`` are kept, every other run of characters becomes
    ``_``; a result that would be empty, hidden, ``.`` or ``..`` becomes ``default``.
    """
    text = _UNSAFE.sub("_", str(name))[:limit].lstrip(".")
    return text or default


def kind_of(mode: int) -> str:
    """What a file is, in words (for error messages)."""
    for test, word in (
        (stat.S_ISREG, "regular file"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISLNK, "symlink"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return word
    return "special file"


def read_regular(
    path: Path | str,
    limit: int,
    *,
    follow: bool = True,
    dir_fd: int | None = None,
    what: str = "file",
) -> bytes:
    """At most ``limit`` bytes of the regular file ``path``; :class:`RefusedFile` otherwise.

    Opened with ``O_NONBLOCK`` so a FIFO cannot hang the open, then checked with ``fstat`` on
    the open fd (no race with a rename): anything but a regular file is refused, and so is a
    file longer than ``limit`` (read up to ``limit + 1`` bytes, so a file that grows while it
    is read, or lies about its size, is caught too). ``follow=False`` refuses symlinks (ELOOP,
    raised as :class:`OSError` like any other open failure).
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    fd = os.open(path, flags, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RefusedFile(
                path,
                f"the {what} is a {kind_of(st.st_mode)}, not a regular file",
                "give the path of a regular file (not a FIFO, device or directory)",
            )
        if st.st_size > limit:
            raise RefusedFile(
                path,
                f"the {what} is {st.st_size} bytes",
                f"a {what} may be at most {limit} bytes",
            )
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 16, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise RefusedFile(
                path,
                f"the {what} is more than {limit} bytes",
                f"a {what} may be at most {limit} bytes",
            )
        return b"".join(chunks)
    finally:
        os.close(fd)


def open_private_dir(path: Path, what: str, fix: str, create: bool = True) -> int:
    """An fd of the directory ``path``, made private (0700) or checked to be this user's own.

    Missing, it is created with mode 0700 (its parents as the umask says). Existing, it must be
    a real directory, not a symlink, owned by the effective uid, and writable by nobody else;
    read/search bits for others are taken away (a directory of this user's that nobody else
    can write into cannot hold anything planted). Anything else is a :class:`LabError` naming
    the path and what to do. The checks are made on the opened fd, so the directory cannot be
    swapped between the check and its use: create files with ``dir_fd=`` the returned fd.
    """
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            kind = kind_of(os.lstat(path).st_mode)
            raise LabError(
                f"{what} {path} is a {kind}, not a directory: someone else may have planted it; "
                f"remove it (rm {path}) or {fix}"
            ) from None
        raise
    try:
        st = os.fstat(fd)
        uid = os.geteuid()
        if st.st_uid != uid:
            raise LabError(
                f"{what} {path} belongs to {owner_text(st.st_uid)}, not to you (uid {uid}): "
                f"someone else may have planted it; remove it (as root: rm -r {path}) or {fix}"
            )
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o022:
            raise LabError(
                f"{what} {path} is mode {mode:04o}: others can write into it, so files in it "
                f"could be planted; remove it (rm -r {path}) or {fix}"
            )
        if mode != 0o700:
            os.fchmod(fd, 0o700)
    except BaseException:
        os.close(fd)
        raise
    return fd


def owner_text(uid: int) -> str:
    """``uid N``, or who an unmapped owner is when this process is in a user namespace."""
    from vlab.rootless import in_user_namespace

    if uid == _overflow_uid() and in_user_namespace():
        return f"another user (uid {uid}: not mapped into this rootless user namespace)"
    return f"uid {uid}"


def _overflow_uid() -> int:
    try:
        return int(Path("/proc/sys/kernel/overflowuid").read_text())
    except (OSError, ValueError):
        return 65534


def trusted_owners() -> set[int]:
    """Who may own what vlab trusts: this user and root (and, in a user namespace, the
    unmapped owner root shows up as there: the host's root)."""
    from vlab.rootless import in_user_namespace

    owners = {os.geteuid(), 0}
    if in_user_namespace():
        owners.add(_overflow_uid())
    return owners


def check_trusted(path: Path, what: str, fix: str) -> None:
    """Refuse ``path`` unless it and everything above it could only be changed by us or root.

    Every existing component of the resolved path must be owned by the effective uid or root
    and not be writable by group or others; a world-writable directory above it is accepted
    only when sticky (as /tmp), where nobody can rename or replace what is ours. Root with
    ``sudo -E`` would otherwise boot an image from a cache in a user's HOME that the user
    filled. Missing components are skipped: the caller creates them under a trusted parent.
    """
    owners = trusted_owners()
    real = Path(os.path.realpath(path))
    chain = [real, *real.parents]
    for i, part in enumerate(chain):
        try:
            st = os.lstat(part)
        except FileNotFoundError:
            continue
        mode = stat.S_IMODE(st.st_mode)
        if st.st_uid not in owners:
            raise LabError(
                f"{what} {path}: {part} belongs to {owner_text(st.st_uid)}, not to you (uid "
                f"{os.geteuid()}) or root, so its owner could plant files in it; {fix}"
            )
        writable = mode & 0o022
        sticky_ancestor = i > 0 and stat.S_ISDIR(st.st_mode) and mode & stat.S_ISVTX
        if writable and not sticky_ancestor:
            raise LabError(
                f"{what} {path}: {part} is mode {mode:04o}, writable by others who could plant "
                f"files in it; {fix}"
            )


def check_trusted_file(path: Path, what: str, fix: str) -> os.stat_result:
    """A regular file (not a symlink) owned by us or root and writable by nobody else."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise LabError(f"{what} {path} is a {kind_of(st.st_mode)}, not a regular file; {fix}")
    if st.st_uid not in trusted_owners():
        raise LabError(
            f"{what} {path} belongs to {owner_text(st.st_uid)}, not to you (uid {os.geteuid()}) "
            f"or root: someone else could have planted it; {fix}"
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022:
        raise LabError(f"{what} {path} is mode {mode:04o}, writable by others; {fix}")
    return st
