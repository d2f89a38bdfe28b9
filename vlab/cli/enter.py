"""Entering the namespaces of a lab owned by another process (``vlab exec``, ``vlab show``).

The namespaces are reached through ``/proc/PID/fd/N`` of the ``vlab up`` process. For a rootless
lab they belong to that process's user namespace, so a non-root caller joins it first (as
``nsenter --user`` does; it needs a single-threaded caller and the same uid as its owner) and is
then allowed into the network namespaces. Root can enter them directly.

The caller never returns to its own network namespace: after a rootless join it would not be
allowed back, and neither command needs to.
"""

from __future__ import annotations

import os
import sys

from vlab import netns, rootless, tools
from vlab.cli.state import RunningLab, find
from vlab.errors import LabError


def _open(path: str, what: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise LabError(f"{what}: {path} is gone (the lab was just torn down?)") from None
    except PermissionError:
        raise LabError(f"{what}: no access to {path}: run as root or as the lab's user") from None


def _same_user_namespace(pid: int) -> bool:
    """Whether ``pid`` lives in this process's own user namespace (setns into it is EINVAL)."""
    try:
        theirs = os.stat(f"/proc/{pid}/ns/user")
        ours = os.stat("/proc/self/ns/user")
    except OSError:
        return False
    return (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino)


def join_owner(lab: RunningLab) -> None:
    """Join the user namespace of a rootless lab's owner, unless this process is root.

    A caller already in that namespace (a shell started under ``unshare --user``, where both
    ``vlab up`` and ``vlab exec`` run) has nothing to join: the kernel refuses to setns a
    process into its own user namespace, so that case is recognised and skipped.
    """
    if not lab.rootless or (os.geteuid() == 0 and not rootless.in_user_namespace()):
        return
    if _same_user_namespace(lab.pid):
        return
    fd = _open(f"/proc/{lab.pid}/ns/user", f"lab {lab.name}")
    try:
        netns.setns(fd, rootless.CLONE_NEWUSER)
    except OSError as exc:
        raise LabError(
            f"cannot join the user namespace of lab {lab.name} (pid {lab.pid}): {exc.strerror}"
        ) from None
    finally:
        os.close(fd)


def open_namespaces(lab: RunningLab) -> dict[str, int]:
    """An fd of this process for each of the lab's namespaces (opened before joining)."""
    return {ns: _open(lab.ns_path(ns), f"lab {lab.name}") for ns in lab.namespaces}


def enter(fd: int, what: str) -> None:
    """Move this process into the network namespace held by ``fd``; ``what`` names it in errors."""
    try:
        netns.setns(fd, rootless.CLONE_NEWNET)
    except OSError as exc:
        raise LabError(f"cannot enter {what}: {exc.strerror}") from None


def namespace_of(lab: RunningLab, node: str) -> str:
    """The namespace a node name stands for; VMs have none (vlab holds their tap fd)."""
    if node in lab.namespaces and not any(n.name == node for n in lab.nodes):
        return node  # "switch", "upstream"
    found = lab.node(node)
    if found.kind == "vm":
        raise LabError(
            f"{node} is an emulated VM: its NIC is a tap fd held by vlab, not a namespace; "
            f"watch its tap with: vlab exec {found.bridge} -- {tools.tcpdump_hint(found.port)}"
        )
    return found.ns


def exec_in(node: str, argv: list[str], pid: int | None, name: str | None) -> int:
    """Replace this process with ``argv`` running inside ``node``'s namespace."""
    lab = find(pid, name)
    ns = namespace_of(lab, node)
    fd = _open(lab.ns_path(ns), f"node {node}")
    join_owner(lab)
    enter(fd, f"node {node} of lab {lab.name}")
    os.close(fd)
    argv = tools.resolve(argv)  # ip, bridge, tc live in /usr/sbin, off a normal user's PATH
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:  # the shell's convention: 127 not found, 126 not executable
        print(f"vlab: exec: {argv[0]}: {exc.strerror}", file=sys.stderr)
        return 127 if isinstance(exc, FileNotFoundError) else 126
    return 0  # not reached: execvp does not return
