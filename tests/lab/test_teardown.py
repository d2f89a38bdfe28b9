"""Teardown leaves nothing: no namespace, link, fd or thread, whatever happened in the lab."""

from __future__ import annotations

import contextlib
import glob
import os
import socket
import threading

import pytest
from scapy.layers.l2 import Ether

from vlab import Lab, LabError, nspool, reaper

pytestmark = pytest.mark.vlab


def _ours() -> list[str]:
    """This process and its children: namespace numbers are reused at once, and other
    processes on this machine (other test workers) make namespaces all the time."""
    pids = ["self"]
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid():
            pids.append(stat.split("/")[2])
    return pids


def net_namespaces_held() -> set[str]:
    """Every network namespace this process or a child of it references (fd or thread)."""
    held = set()
    paths = []
    for pid in _ours():
        paths += glob.glob(f"/proc/{pid}/fd/*") + glob.glob(f"/proc/{pid}/task/*/ns/net")
    for path in paths:
        try:
            target = os.readlink(path)
        except OSError:
            continue
        if target.startswith("net:["):
            held.add(target)
    return held


def released() -> bool:
    """Sockets closed and the pool of switch namespaces emptied: what a closed lab leaves."""
    return nspool.empty() and reaper.drain()


def holders(namespaces: set[str]) -> list[str]:
    """Which fds and threads hold any of ``namespaces`` (for a failure's message)."""
    out = []
    for path in glob.glob("/proc/[0-9]*/fd/*") + glob.glob("/proc/[0-9]*/task/*/ns/net"):
        with contextlib.suppress(OSError):
            if os.readlink(path) in namespaces:
                out.append(path)
    return out


def own_fds() -> set[str]:
    nspool.empty()  # the pool holds closed labs' switch namespaces on purpose
    reaper.drain()  # sockets of earlier labs may still be on their way to being closed
    return set(os.listdir("/proc/self/fd"))


def build(lab: Lab) -> None:
    br = lab.bridge("br0")
    vms = [lab.vm(f"vm{i}", bridge=br) for i in range(3)]
    lab.host("h1", bridge=br)
    up = lab.uplink(br)
    vms[0].send(Ether(src=vms[0].mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / b"x")
    up.expect(Ether(src=vms[0].mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / b"x")


def lab_namespaces(lab: Lab) -> set[str]:
    return {f"net:[{space.ns.inode}]" for space in lab._spaces.values()}


def test_closed_lab_leaves_no_namespace_fd_or_link() -> None:
    links_before = set(socket.if_nameindex())
    fds_before = own_fds()
    threads_before = threading.active_count()
    with Lab() as lab:
        build(lab)
        mine = lab_namespaces(lab)
        assert len(mine) == 3  # switch, h1, upstream
        assert mine <= net_namespaces_held()
    assert released()
    assert not mine & net_namespaces_held()
    assert own_fds() == fds_before
    assert set(socket.if_nameindex()) == links_before
    # at most the reaper's and the pool's threads, started once per process
    assert threading.active_count() <= threads_before + reaper.THREADS + nspool.RESETTERS


def test_exception_inside_the_lab_still_tears_down() -> None:
    fds_before = own_fds()
    with pytest.raises(RuntimeError), Lab() as lab:
        build(lab)
        mine = lab_namespaces(lab)
        raise RuntimeError("boom")
    assert released()
    assert not mine & net_namespaces_held()
    assert own_fds() == fds_before


def test_bad_input_midway_leaves_no_half_lab() -> None:
    fds_before = own_fds()
    with pytest.raises(LabError), Lab() as lab:
        br = lab.bridge("br0")
        lab.vm("vm1", bridge=br)
        mine = lab_namespaces(lab)
        lab.host("h1", bridge=br, mac="not-a-mac")
    assert released()
    assert not mine & net_namespaces_held()
    assert own_fds() == fds_before


def test_many_labs_do_not_grow_fds() -> None:
    for _ in range(3):  # warm-up: the reaper thread, scapy's lazy imports
        with Lab() as lab:
            build(lab)
    released()
    fds_before = len(own_fds())
    for _ in range(30):
        with Lab() as lab:
            build(lab)
    assert released()
    assert len(own_fds()) == fds_before


def test_macvtap_and_vxlan_lab_leaves_nothing() -> None:
    """A lab with macvtap VMs, a second hypervisor and a VXLAN overlay: after close no
    namespace, link, fd, /dev/tap node or netns name of it is left (the host is unchanged)."""
    import subprocess
    import time

    from vlab import hostcheck

    def tap_nodes() -> set[tuple[str, int]]:
        out = set()
        for name in os.listdir("/dev"):
            if name.startswith("tap"):
                with contextlib.suppress(FileNotFoundError):
                    out.add((name, os.stat(f"/dev/{name}").st_rdev))
        return out

    with Lab() as warm:  # process-wide helpers (the CPU barrier's namespace) exist from now on
        warm.settle()
    ref = hostcheck.Reference.current()
    try:
        before = ref.snapshot()
        netns_before = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
        fds_before = own_fds()
        with Lab() as lab:
            br = lab.bridge("br0")
            nic = lab.port(br)
            vms = [lab.vm(f"m{i}", macvtap=nic, mode="bridge") for i in range(2)]
            hv = lab.hypervisor("hv2")
            br_b = hv.bridge("br-b")
            far = hv.vm("far", bridge=br_b)
            vx = lab.vxlan(br, br_b, vni=42)
            vx.watch_underlay()
            f = Ether(src=vms[0].mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / b"x"
            vms[0].send(f)
            lab.expect(f, at=[vms[1], far])
            mine = lab_namespaces(lab)
            nodes = {rdev for _n, rdev in tap_nodes()} & {os.fstat(v.tap_fd).st_rdev for v in vms}
            assert len(mine) == 3 and nodes  # switch, hv2, underlay; devtmpfs shows the taps
        assert released()
        assert not mine & net_namespaces_held(), holders(mine)  # nothing holds them any more
        deadline = time.monotonic() + 10  # the kernel destroys them asynchronously (cleanup_net)
        while time.monotonic() < deadline and nodes & {rdev for _n, rdev in tap_nodes()}:
            time.sleep(0.05)
        assert not nodes & {rdev for _n, rdev in tap_nodes()}
        assert own_fds() == fds_before
        assert hostcheck.report(before, ref.snapshot(), []) is None
        netns_after = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
        assert netns_after.stdout == netns_before.stdout
    finally:
        ref.close()
