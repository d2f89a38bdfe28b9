"""Running out of file descriptors is a failure naming the limit, never a skip, never a leak.

Each build call is tried under every fd limit from "the very next open fails" upwards until it
succeeds, so every open it makes (namespace fds, netlink and packet sockets, the tap, the
temporary fd of a setns) is in turn the one that hits EMFILE. Every failure must be a LabError
(not Unsupported, not OSError) that names RLIMIT_NOFILE and ``ulimit -n``, and must give back
every fd and namespace it took; the lab stays usable and a retry works.

RLIMIT_NOFILE bounds fd *numbers*: with the limit at the k-th free number, exactly k more opens
succeed. The limit is lowered only around the call under test and always restored.
"""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from scapy.layers.l2 import Ether

from vlab import Lab, LabError, dyingexec, nspool, reaper
from vlab.bridge import Bridge
from vlab.errors import Unsupported

pytestmark = pytest.mark.vlab
MAX_OPENS = 40  # more than any single build call makes


@pytest.fixture(autouse=True)
def _no_pool() -> Iterator[None]:
    """Every open a build makes, counted exactly: no pool resetting namespaces alongside (its
    threads open fds of their own, and a lab taking a pooled namespace opens fewer)."""
    pool = nspool.pool()
    was, pool.enabled = pool.enabled, False
    nspool.empty()
    try:
        yield
    finally:
        pool.enabled = was


def fd_count() -> int:
    reaper.drain()
    return len(os.listdir("/proc/self/fd"))


def net_fds() -> int:
    """Namespace fds this process holds: a lab piece that is still alive holds at least one."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("net:[")
    return count


def free_numbers(count: int) -> list[int]:
    used = set()
    for fd in map(int, os.listdir("/proc/self/fd")):
        with contextlib.suppress(OSError):  # the fd listdir itself used is free again
            os.fstat(fd)
            used.add(fd)
    out: list[int] = []
    n = 0
    while len(out) < count:
        if n not in used:
            out.append(n)
        n += 1
    return out


@contextlib.contextmanager
def fd_limit(limit: int) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def exhaust(build: Callable[[], Any]) -> tuple[list[LabError], Any]:
    """Failures of ``build`` under each limit until it succeeds, and what it finally built."""
    failures: list[LabError] = []
    for k in range(MAX_OPENS):
        fds, spaces = fd_count(), net_fds()
        limit = free_numbers(k + 1)[k]
        try:
            with fd_limit(limit):
                built = build()
        except LabError as exc:
            assert not isinstance(exc, Unsupported), f"fd exhaustion became a skip: {exc}"
            text = str(exc)
            assert "RLIMIT_NOFILE soft" in text and "ulimit -n" in text, text
            assert fd_count() == fds, f"a build failing with {limit=} leaked fds: {text}"
            assert net_fds() == spaces, f"a build failing with {limit=} kept a namespace"
            failures.append(exc)
            continue
        return failures, built
    raise AssertionError(f"still failing with {MAX_OPENS} free fds")


@pytest.fixture
def br(lab: Lab) -> Bridge:
    return lab.bridge("br0")


def test_vm_under_every_fd_limit(lab: Lab, br: Bridge) -> None:
    failures, vm = exhaust(lambda: lab.vm("vm1", bridge=br))
    assert failures, "the limit never bit"
    assert any("/dev/net/tun" in str(exc) for exc in failures), "the tap open was never hit"
    up = lab.uplink(br)
    f = Ether(src=vm.mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / b"x"
    vm.send(f)
    up.expect(f)
    assert vm.port == "vnet0"  # failed attempts gave their names back


def test_host_under_every_fd_limit(lab: Lab, br: Bridge) -> None:
    failures, host = exhaust(lambda: lab.host("h1", bridge=br))
    assert len(failures) >= 3  # namespace, its netlink sockets, the packet socket
    vm = lab.vm("vm1", bridge=br)
    f = Ether(src=host.mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / b"x"
    host.send(f)
    vm.expect(f)
    assert host.port == "veth0"


def test_uplink_under_every_fd_limit(lab: Lab, br: Bridge) -> None:
    failures, up = exhaust(lambda: lab.uplink(br))
    assert failures
    second_failures, up2 = exhaust(lambda: lab.uplink(br, name="up2"))
    assert second_failures  # the upstream namespace exists: only the socket is left to fail
    vm = lab.vm("vm1", bridge=br)
    f = Ether(src=vm.mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / b"x"
    vm.send(f)
    up.expect(f)
    up2.expect(f)


def test_new_lab_under_every_fd_limit() -> None:
    failures, lab = exhaust(lambda: Lab("starved"))
    try:
        assert failures
        lab.bridge("br0")
    finally:
        lab.close()


def test_run_under_a_tight_fd_limit(lab: Lab) -> None:
    with fd_limit(free_numbers(1)[0]), pytest.raises(LabError, match="RLIMIT_NOFILE"):
        lab.run("switch", "true")
    assert lab.run("switch", "true").returncode == 0


def test_the_first_run_builds_the_launcher_under_every_fd_limit(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The launcher's memfd and its proof runs are the first fds a process's first run opens:
    out of fds there is the same LabError, and not a reason to give the launcher up for good."""
    had = dyingexec.launcher() is not None
    monkeypatch.setattr(dyingexec, "_state", {})  # as in a process that never ran a program
    try:
        failures, done = exhaust(lambda: lab.run("switch", "true"))
        assert failures and done.returncode == 0
        assert (dyingexec.launcher() is not None) == had
    finally:
        for fd in dyingexec.held_fds():
            os.close(fd)  # this test's launcher; the process's own comes back with _state
