"""A small lab suite the CLI tests copy and run in other processes (xdist, rootless as nobody).

Every test builds the same names and MACs (br0, vm1, h1, the uplink) and holds its lab for a
moment, so parallel workers really do have identically named labs alive at the same time; each
test logs when it held its lab and in which worker, for the caller to check the overlap.
"""

import os
import time
from pathlib import Path

import pytest
from scapy.layers.l2 import Ether

pytestmark = pytest.mark.vlab
GATEWAY = "02:00:00:00:00:fe"
HOLD = 0.3


def _log(name: str, start: float) -> None:
    directory = os.environ.get("VLAB_SUITE_LOG")
    if directory:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        line = f"{name} {worker} {start:.6f} {time.time():.6f}\n"
        with open(Path(directory) / f"{os.getpid()}.log", "a") as fh:
            fh.write(line)


def frame(src, dst, n):
    return Ether(src=src, dst=dst, type=0x88B5) / (b"vlab suite frame %d" % n).ljust(46, b".")


@pytest.mark.parametrize("n", range(4))
def test_flood_learn_reply_with_same_names(lab, n):
    start = time.time()
    br = lab.bridge("br0", ageing_time=300)
    vm1 = lab.vm("vm1", bridge=br, mac="52:54:00:00:00:01")
    h1 = lab.host("h1", bridge=br, mac="02:00:00:00:00:11")
    up = lab.uplink(br, mac="02:00:00:00:00:21")
    out = frame(vm1.mac, GATEWAY, n)
    vm1.send(out)
    up.expect(out)
    h1.expect(out)
    time.sleep(HOLD)  # another worker builds the very same names meanwhile
    back = frame(GATEWAY, vm1.mac, n)
    up.send(back)
    vm1.expect(back)
    h1.expect_none()
    assert br.fdb() == {vm1.mac: "vnet0", GATEWAY: "eth0"}
    _log(f"flood{n}", start)


def test_hosts_and_uplink_without_taps(lab):
    start = time.time()
    br = lab.bridge("br0")
    h1 = lab.host("h1", bridge=br)
    h2 = lab.host("h2", bridge=br)
    up = lab.uplink(br)
    f = frame(h1.mac, "ff:ff:ff:ff:ff:ff", 99)
    h1.send(f)
    h2.expect(f)
    up.expect(f)
    assert lab.where(h1.mac).port == h1.port
    _log("hosts", start)


def test_bridge_options_and_port_options(lab):
    br = lab.bridge("br0", ageing_time=10, multicast_snooping=False)
    h1 = lab.host("h1", bridge=br)
    br.port(h1).set(learning=False)
    assert br.options()["ageing_time"] == 10
    assert br.port(h1).options()["learning"] is False


def test_vm_broadcast(lab):
    br = lab.bridge("br0")
    vm1 = lab.vm("vm1", bridge=br)
    vm2 = lab.vm("vm2", bridge=br)
    f = frame(vm1.mac, "ff:ff:ff:ff:ff:ff", 7)
    vm1.send(f)
    vm2.expect(f)
