"""Waiting for frames works on fds above 1023, where ``select()`` gives up.

A lab of a thousand VMs holds thousands of fds (a tap and a packet socket per VM), so its
endpoints' fds are above select's FD_SETSIZE. Here the numbers are pushed up by holding 1100
spare fds before the lab is built; a frame held back by a shaper makes both ``expect`` and
``settle`` wait on those fds. With ``select.select`` they raised ValueError.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator

import pytest
from scapy.layers.l2 import Ether

from vlab import Lab, nspool

pytestmark = pytest.mark.vlab
SPARE = 1100


@pytest.fixture
def high_fds() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < SPARE + 512:
        pytest.skip(f"the fd limit ({hard}) is too low to push fds above 1023")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, SPARE + 512), hard))
    spare = [os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC) for _ in range(SPARE)]
    try:
        yield
    finally:
        for fd in spare:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_expect_and_settle_wait_on_fds_above_1023(
    high_fds: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a reused namespace's spare links keep the sockets (and fd numbers) an earlier lab opened
    monkeypatch.setattr(nspool.pool(), "enabled", False)
    with Lab(name="highfds") as lab:
        br = lab.bridge("br0")
        vm = lab.vm("vm1", bridge=br)
        up = lab.uplink(br)
        assert vm.io.fileno() > 1023 and up.io.fileno() > 1023
        lab.run("upstream", "tc", "qdisc", "add", "dev", up.ifname, "root", "tbf",
                "rate", "8kbit", "burst", "1600", "latency", "10s")  # fmt: skip
        frames = [Ether(src=up.mac, dst=vm.mac, type=0x88B5) / (bytes([i]) * 1400) for i in (1, 2)]
        up.send(frames[0])
        up.send(frames[1])  # waits ~1.4 s in the shaper
        assert bytes(vm.expect(frames[0], timeout=5)) == bytes(frames[0])
        assert bytes(vm.expect(frames[1], timeout=5)) == bytes(frames[1])  # waited on the fd
        up.send(frames[0])
        up.send(frames[1])
        lab.settle()  # waits on every edge's fd while the shaper holds a frame
        assert [bytes(f) for f in vm.frames()] == [bytes(f) for f in frames]
