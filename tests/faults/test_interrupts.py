"""Ctrl-C at the worst instant, made deterministic.

A KeyboardInterrupt is raised between any two bytecodes, so in a real run it lands at random: the
SIGINT fault test catches such a moment only now and then. These tests put the interrupt exactly
where it hurts (right after a namespace syscall, in the middle of a teardown) by wrapping the
function that runs there; the promise under test is that the process is left as if the lab had
never existed: its thread back in its own namespace and no namespace fd held.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from vlab import Lab, netns, nspool, reaper

pytestmark = pytest.mark.vlab


def net_fds() -> int:
    """Namespace fds this process holds; each one keeps a lab namespace alive (the pool of
    switch namespaces, which holds closed labs' ones on purpose, is emptied first)."""
    nspool.empty()
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("net:[")
        except OSError:
            continue
    return count


def interrupting(real: Callable[..., Any], after: int = 0) -> Callable[..., Any]:
    """``real``, except that call number ``after`` is interrupted right after it returns."""
    calls = [0]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        calls[0] += 1
        if calls[0] == after + 1:
            raise KeyboardInterrupt
        return result

    return wrapper


def small_lab() -> Lab:
    lab = Lab(name="interrupted")
    br = lab.bridge("br0")
    lab.vm("vm1", bridge=br)
    lab.vm("vm2", bridge=br)
    lab.host("h1", bridge=br)
    lab.uplink(br)
    return lab


def test_interrupt_right_after_unshare_leaves_the_thread_at_home(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = netns.current_inode()
    home_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    fds = net_fds()
    monkeypatch.setattr(nspool.pool(), "enabled", False)  # the switch namespace is made anew
    monkeypatch.setattr(netns, "unshare", interrupting(netns.unshare))
    try:
        with pytest.raises(KeyboardInterrupt):
            Lab(name="interrupted")
        assert netns.current_inode() == home, "the thread was left inside a new namespace"
        assert net_fds() == fds
    finally:
        if netns.current_inode() != home:  # put the test process back where it belongs
            netns.setns(home_fd)
        os.close(home_fd)


@pytest.mark.parametrize("after", [0, 1])
def test_interrupt_during_teardown_still_releases_every_namespace(
    monkeypatch: pytest.MonkeyPatch, after: int
) -> None:
    fds = net_fds()
    monkeypatch.setattr(nspool.pool(), "enabled", False)  # taps released, not kept in the pool
    lab = small_lab()
    assert net_fds() > fds
    monkeypatch.setattr(
        "vlab.switch.taplib.release_tap", interrupting(lab_release_tap(), after=after)
    )
    with pytest.raises(KeyboardInterrupt):
        lab.close()
    monkeypatch.undo()
    lab.close()  # a second close must finish the job if the first one could not
    reaper.drain()
    assert net_fds() == fds, "an interrupted close() left the lab's namespaces alive"


def lab_release_tap() -> Callable[[int], None]:
    from vlab import tap

    return tap.release_tap


def test_interrupt_while_handing_sockets_to_the_reaper(monkeypatch: pytest.MonkeyPatch) -> None:
    fds = net_fds()
    lab = small_lab()
    monkeypatch.setattr("vlab.switch.reap", interrupting(reaper.reap))
    with pytest.raises(KeyboardInterrupt):
        lab.close()
    monkeypatch.undo()
    lab.close()
    reaper.drain()
    assert net_fds() == fds, "an interrupted close() left the lab's namespaces alive"
