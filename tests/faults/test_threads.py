"""One lab driven from several threads never hangs, and no netlink wait is unbounded.

Without a lock, two threads sharing a lab's netlink socket read each other's replies, discard
them as "not mine" and both wait forever in recv(). The lab serialises each request/reply (and
each build call) instead; ``expect`` waits outside the lock so another thread can send meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable

import pytest
from scapy.layers.l2 import Ether

from vlab import Lab, LabError, nspool, reaper, rtnl
from vlab.netns import NetNS

pytestmark = pytest.mark.vlab
JOIN = 60.0  # generous on a loaded machine; a hang is forever


def net_fds() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("net:[")
    return count


def run_threads(*targets: Callable[[], None]) -> None:
    """Run targets concurrently; fail (instead of hanging) if one does not finish."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(targets))

    def wrap(target: Callable[[], None]) -> Callable[[], None]:
        def body() -> None:
            try:
                start.wait()
                target()
            except BaseException as exc:  # reported below
                errors.append(exc)

        return body

    threads = [threading.Thread(target=wrap(t), daemon=True) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN)
    stuck = [t.name for t in threads if t.is_alive()]
    assert not stuck, f"threads hung: {stuck}"
    assert not errors, errors


def test_two_threads_build_and_use_one_lab(lab: Lab) -> None:
    br = lab.bridge("br0")
    up = lab.uplink(br)

    def build(prefix: str) -> Callable[[], None]:
        def work() -> None:
            for i in range(8):
                vm = lab.vm(f"{prefix}{i}", bridge=br)
                vm.send(Ether(src=vm.mac, dst="02:00:00:00:00:99", type=0x88B5) / prefix.encode())
                assert br.fdb()[vm.mac] == vm.port
                br.port(vm).set(learning=True)

        return work

    run_threads(build("a"), build("b"))
    assert len(lab.endpoints) == 17
    assert len(up.frames()) == 16


def test_two_threads_reading_kernel_state(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm = lab.vm("vm1", bridge=br)
    host = lab.host("h1", bridge=br)
    host.send(Ether(src=host.mac, dst=vm.mac, type=0x88B5) / b"learn me")

    def reader() -> None:
        for _ in range(150):
            assert br.fdb().get(host.mac) == host.port
            br.options()
            lab.settle()

    run_threads(reader, reader)


def test_expect_in_one_thread_sees_a_frame_sent_by_another(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm = lab.vm("vm1", bridge=br)
    host = lab.host("h1", bridge=br)
    lab.ready()
    f = Ether(src=host.mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / b"across threads"
    got = []
    waiting = threading.Event()

    def wait() -> None:
        waiting.set()
        got.append(vm.expect(f, timeout=20))

    def send() -> None:
        waiting.wait()
        host.send(f)

    run_threads(wait, send)
    assert got and got[0].load == b"across threads"


def test_a_netlink_reply_that_never_comes_is_a_lab_error_naming_the_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rtnl, "NETLINK_TIMEOUT", 0.3)
    ns = NetNS.create("deadline")
    try:
        with ns.entered():
            sock = rtnl.Rtnl()
        try:
            # a link change without NLM_F_ACK: on success the kernel sends no reply at all
            with pytest.raises(LabError, match=r"RTM_NEWLINK: the kernel did not answer"):
                sock.transact(rtnl.RTM_NEWLINK, rtnl.NLM_F_REQUEST, rtnl.ifinfo(1))
            assert sock.get(rtnl.RTM_GETLINK, rtnl.ifinfo(1, up=False))  # still usable after
        finally:
            sock.close()
    finally:
        ns.close()


def test_close_while_another_thread_builds_leaves_nothing() -> None:
    nspool.empty()  # the pool holds closed labs' switch namespaces on purpose
    reaper.drain()
    fds, spaces = len(os.listdir("/proc/self/fd")), net_fds()
    lab = Lab("busy")
    br = lab.bridge("br0")
    built: list[int] = []
    ended: list[BaseException] = []
    started = threading.Event()

    def build() -> None:
        try:
            for i in range(10_000):
                lab.host(f"h{i}", bridge=br) if i % 2 else lab.vm(f"v{i}", bridge=br)
                built.append(i)
                started.set()
        except BaseException as exc:  # the close must end this loop with a LabError
            ended.append(exc)

    thread = threading.Thread(target=build)
    thread.start()
    assert started.wait(JOIN)
    lab.close()
    thread.join(JOIN)
    assert not thread.is_alive()
    assert len(ended) == 1 and isinstance(ended[0], LabError), ended
    assert "is closed" in str(ended[0])
    assert built, "the thread built something before the close"
    nspool.empty()
    reaper.drain()
    assert len(os.listdir("/proc/self/fd")) == fds, "fds left after the lab closed"
    assert net_fds() == spaces, "a namespace outlived its lab"
