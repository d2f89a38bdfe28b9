"""Many identical labs at once: run by the xdist fault test and the scale benchmark, not collected.

Every lab uses the same bridge, endpoint and tap names and the same MACs on purpose: if two
parallel labs shared anything (a name in the host, a namespace, a socket bound in the wrong
place), frames or fdb entries of one would show up in the other and ``expect_quiet`` would fail,
or a build would fail with "exists". The number of labs comes from ``VLAB_COLLISION_LABS``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from scapy.layers.l2 import Ether

from vlab import Lab

COUNT = int(os.environ.get("VLAB_COLLISION_LABS", "40"))
RESULTS = os.environ.get("VLAB_COLLISION_OUT")
pytestmark = pytest.mark.vlab


@pytest.mark.parametrize("n", range(COUNT))
def test_identical_lab(lab: Lab, n: int) -> None:
    started = time.perf_counter()
    br = lab.bridge("br0", ageing_time=30)
    vm1 = lab.vm("vm1", bridge=br, mac="52:54:00:00:00:01")
    vm2 = lab.vm("vm2", bridge=br, mac="52:54:00:00:00:02")
    host = lab.host("h1", bridge=br, mac="02:00:00:00:00:03")
    up = lab.uplink(br, mac="02:00:00:00:00:04")
    payload = f"lab {n} pid {os.getpid()}".encode()
    flood = Ether(src=vm1.mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / payload
    vm1.send(flood)
    for ep in (vm2, host, up):
        ep.expect(flood)
    reply = Ether(src=up.mac, dst=vm1.mac, type=0x88B5) / payload
    up.send(reply)
    vm1.expect(reply)
    lab.expect_quiet()  # nothing from any other lab, nothing twice
    assert br.fdb()[vm1.mac] == vm1.port
    assert br.fdb()[up.mac] == up.port
    if RESULTS:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with open(Path(RESULTS) / f"{worker}.txt", "a") as fh:
            fh.write(f"{n} {time.perf_counter() - started:.6f}\n")
