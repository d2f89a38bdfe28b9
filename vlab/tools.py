"""Finding the programs labs run (``ip``, ``bridge``, ``tc``, ``tcpdump``...).

They live in ``/usr/sbin`` or ``/sbin`` on Debian and most distributions, which a normal user's
``PATH`` does not include — yet a rootless user is root inside the lab and may run them there.
So a bare program name is looked up on ``PATH`` first and then in the sbin directories, the way
``sudo``'s secure_path would, before "not installed" is concluded.
"""

from __future__ import annotations

import os
import shutil

SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def which(name: str) -> str | None:
    """The path of program ``name``: on ``PATH``, else in an sbin directory; None if nowhere."""
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))


def resolve(argv: list[str]) -> list[str]:
    """``argv`` with a bare program name replaced by its path when only the sbin fallback of
    :func:`which` finds it; a program on PATH keeps the name the caller gave (it shows in
    ``CompletedProcess.args`` and in error texts)."""
    if not argv or "/" in argv[0] or shutil.which(argv[0]):
        return argv
    found = which(argv[0])
    return [found, *argv[1:]] if found else argv


def tcpdump_hint(port: str | None) -> str:
    """The tcpdump command line to suggest for watching ``port``; it works in rootless labs too.

    tcpdump drops privileges to its own user after opening the interface; a rootless lab's user
    namespace maps no such user, so that drop fails. ``-Z root`` keeps it root of the namespace.
    """
    return f"tcpdump -Z root -eni {port}"
