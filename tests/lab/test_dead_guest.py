"""A VM whose QEMU died receives nothing: every assertion on it fails with the guest's exit.

vlab keeps its own copy of the tap fd, so the tap keeps carrier after QEMU is gone and the
packet socket watching it still sees frames leave towards the (dead) guest; without a check
``expect`` would pass for a guest that is not there.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from scapy.layers.l2 import Ether

from vlab import Lab
from vlab.guest_image import GuestError
from vlab.qemu import qemu_unavailable

pytestmark = [
    pytest.mark.vlab,
    pytest.mark.qemu,
    pytest.mark.skipif(qemu_unavailable() is not None, reason=str(qemu_unavailable())),
]


def kill_and_wait(pid: int, guest: object) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while guest.returncode is None and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.01)


def test_dead_guest_fails_every_call_with_its_exit_status(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm = lab.vm("vm1", bridge=br, mac="52:54:00:00:00:10", guest="qemu")
    up = lab.uplink(br)
    vm.wait_ready()
    assert vm.guest is not None
    f = Ether(src=up.mac, dst=vm.mac, type=0x88B5) / b"to the guest"
    up.send(f)
    vm.expect(f)  # alive: the positive case the checks below must turn around

    kill_and_wait(vm.guest.pid, vm.guest)
    h1 = lab.host("h1", bridge=br)  # the rest of the lab still works, new links included
    up.send(f)
    h1.expect(f)
    calls = {
        "expect": lambda: vm.expect(f),
        "expect_none": lambda: vm.expect_none(),
        "frames": lambda: vm.frames(),
        "clear": lambda: vm.clear(),
        "send": lambda: vm.send(Ether(src=vm.mac, dst=up.mac, type=0x88B5)),
        "set_carrier": lambda: vm.set_carrier(False),
        "run": lambda: vm.run("true"),
        "wait_ready": lambda: vm.wait_ready(),
    }
    for name, call in calls.items():
        with pytest.raises(GuestError) as caught:
            call()
        text = str(caught.value)
        assert "status -9" in text, (name, text)
        assert "boot log" in text, (name, text)  # the console tail
    up.expect_none()  # nothing came back from a guest that is not there


def test_guest_dying_during_expect_ends_the_wait(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm = lab.vm("vm1", bridge=br, guest="qemu")
    vm.wait_ready()
    assert vm.guest is not None
    guest = vm.guest
    threading.Timer(0.5, lambda: kill_and_wait(guest.pid, guest)).start()
    start = time.monotonic()
    with pytest.raises(GuestError, match="status -9"):
        vm.expect(Ether(src="02:00:00:00:00:01", dst=vm.mac, type=0x88B5), timeout=30)
    assert time.monotonic() - start < 10
