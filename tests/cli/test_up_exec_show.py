"""``vlab up`` + ``vlab exec`` + ``vlab show`` from other shells, and Ctrl-C leaving nothing."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import DATA, Runner, Up, host_links, named_netns, net_ns_holders

pytestmark = pytest.mark.vlab

SEND_FROM_ETH0 = (
    "import socket; s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('eth0', 0)); "
    "s.send(bytes.fromhex('ffffffffffff020000000011 88b5') + b'poke from h1'.ljust(46, b'.'))"
)


def _ns_inodes(up: Up) -> set[str]:
    state = json.loads(up.state.read_text())
    return {os.readlink(f"/proc/{up.proc.pid}/fd/{fd}") for fd in state["namespaces"].values()}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_up_exec_show_then_signal_leaves_nothing(
    vlab: Runner, start_up: Callable[[Path], Up], sig: int
) -> None:
    links_before = host_links()
    up = start_up(DATA / "lab.yaml")
    inodes = _ns_inodes(up)
    assert len(inodes) == 3  # switch, h1, upstream

    fdb = vlab("exec", "br0", "--", "bridge", "fdb", "show", "br", "br0")
    assert fdb.returncode == 0, fdb.stderr
    assert "master br0 permanent" in fdb.stdout  # the bridge's own entries: really in its ns

    link = vlab("exec", "h1", "--", "ip", "-br", "link", "show", "eth0")
    assert link.returncode == 0, link.stderr
    assert "02:00:00:00:00:11" in link.stdout

    exit_code = vlab("exec", "up", "--", "sh", "-c", "exit 7")
    assert exit_code.returncode == 7  # the command's own exit code

    poke = vlab("exec", "h1", "--", sys.executable, "-c", SEND_FROM_ETH0)
    assert poke.returncode == 0, poke.stderr
    shown = vlab("show")
    assert shown.returncode == 0, shown.stderr
    rows = {line.split()[0]: line for line in shown.stdout.splitlines() if line[:1].isalnum()}
    assert "52:54:00:00:00:01" in rows["vm1"] and "vnet0" in rows["vm1"]
    assert "fe:54:00:00:00:01" in rows["vm1"]  # the tap's own MAC, read from the kernel
    assert "forwarding" in rows["vm1"] and "not learnt" in rows["vm1"]
    assert "veth0 (h1), learnt" in rows["h1"]  # the frame sent through `vlab exec`

    code, out, err = up.stop(sig)
    assert code == 0, err
    assert "torn down" in out
    assert not up.state.exists()
    assert net_ns_holders(inodes) == []  # nobody holds the lab's namespaces: they are gone
    assert host_links() == links_before
    assert named_netns() & inodes == set()  # never mounted under a name (`ip netns list`)


def test_up_prints_topology_and_how_to_reach_nodes(start_up: Callable[[Path], Up]) -> None:
    up = start_up(DATA / "lab.yaml")
    code, out, _err = up.stop(signal.SIGINT)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "lab lab is up: cli lab, one of each endpoint"
    header = next(line for line in lines if line.startswith("NODE"))
    assert header.split() == ["NODE", "KIND", "MAC", "NIC", "PORT", "BRIDGE", "REACH", "WITH"]
    assert any(line.startswith("h1 ") and "vlab exec h1 --" in line for line in lines)
    assert any(line.startswith("vm1 ") and "tcpdump -Z root -eni vnet0" in line for line in lines)


def test_exec_errors_are_one_line(vlab: Runner, start_up: Callable[[Path], Up]) -> None:
    up = start_up(DATA / "lab.yaml")
    vm = vlab("exec", "vm1", "--", "true")
    assert vm.returncode == 1
    assert vm.stderr.count("\n") == 1 and "vlab exec br0 -- tcpdump -Z root -eni vnet0" in vm.stderr
    unknown = vlab("exec", "nope", "--", "true")
    assert unknown.returncode == 1 and "has no node 'nope'" in unknown.stderr
    missing = vlab("exec", "br0", "--", "no-such-program-here")
    assert missing.returncode == 127 and "No such file" in missing.stderr
    assert vlab("exec", "br0").returncode == 2
    wrong_pid = vlab("show", "--pid", "1")
    assert wrong_pid.returncode == 1 and "no running lab with pid 1" in wrong_pid.stderr
    up.stop(signal.SIGINT)


def test_kill_9_leaves_a_stale_state_file_that_is_ignored(
    vlab: Runner, start_up: Callable[[Path], Up]
) -> None:
    up = start_up(DATA / "lab.yaml")
    inodes = _ns_inodes(up)
    up.proc.kill()
    up.proc.wait()
    assert up.state.exists()  # SIGKILL gives no chance to clean up ...
    assert net_ns_holders(inodes) == []  # ... but the namespaces went with the process
    shown = vlab("show")
    assert shown.returncode == 1 and "no running lab" in shown.stderr
    assert not up.state.exists()  # the stale file is removed by the next look


def test_up_show_lists_macvtap_hypervisor_and_underlay(
    vlab: Runner, start_up: Callable[[Path], Up]
) -> None:
    up = start_up(DATA / "overlay_lab.yaml")
    inodes = _ns_inodes(up)
    assert len(inodes) == 4  # switch, h1, hv2, underlay
    shown = vlab("show")
    assert shown.returncode == 0, shown.stderr
    rows = {line.split()[0]: line for line in shown.stdout.splitlines() if line[:1].isalnum()}
    assert "vm/macvtap vepa" in rows["vm1"] and "not a port" in rows["vm1"]
    assert "forwarding" in rows["vm2"] and "br1" in rows["vm2"]  # a port of hv2's bridge
    assert "underlay" in rows["ula"] and "underlay" in rows["ulb"]
    assert "fdb of br1" in shown.stdout
    fdb = vlab("exec", "hv2", "--", "bridge", "fdb", "show", "dev", "vxlan0")
    assert fdb.returncode == 0, fdb.stderr
    assert "00:00:00:00:00:00 dst 198.51.100.1" in fdb.stdout  # hv2's remote: the lab's VTEP
    code, _out, err = up.stop(signal.SIGINT)
    assert code == 0, err
    # the up process or a child of it: namespace numbers are reused at once by other workers
    held = [p for p in net_ns_holders(inodes) if up.proc.pid in (int(p), _parent(p))]
    assert held == []


def _parent(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1
