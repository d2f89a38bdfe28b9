"""The whole fdb: flags added with fdb_add read back against ``bridge -j fdb show``, the
updated/used timers, and ports that vlab did not create."""

from __future__ import annotations

import json
import socket
import time

import pytest
from scapy.layers.l2 import Ether

from vlab import Lab, LabError

pytestmark = pytest.mark.vlab

A, B, C, D = (f"02:00:00:00:00:0{i}" for i in range(1, 5))


def operstate(lab: Lab, dev: str) -> str:
    return lab.run("switch", "ip", "-o", "link", "show", "dev", dev).stdout


def iproute2_flags(lab: Lab) -> dict[str, set[str]]:
    rows = json.loads(lab.run("switch", "bridge", "-j", "-d", "fdb", "show", "br", "br0").stdout)
    return {r["mac"]: set(r.get("flags", [])) | {r.get("state", "")} for r in rows}


def test_flags_read_back(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm = lab.vm("a", bridge=br)
    br.fdb_add(A, vm, extern_learn=True)
    br.fdb_add(B, vm, static=False, activity_notify=True, inactive=True)
    br.fdb_add(C, vm, static=False, use=True)
    br.fdb_add(D, vm, sticky=True)
    entries = {e.mac: e for e in br.fdb_entries()}
    assert len(entries) == len(br.fdb_entries())  # each entry once (6.1 dumps some twice)
    theirs = iproute2_flags(lab)
    assert entries[A].extern_learn and "extern_learn" in theirs[A]
    assert entries[B].activity_notify and entries[B].inactive and not entries[B].extern_learn
    assert not entries[C].static and not entries[C].extern_learn and "static" not in theirs[C]
    assert entries[D].sticky and entries[D].static and {"sticky", "static"} <= theirs[D]
    with pytest.raises(LabError, match="unknown flag 'usee'"):
        br.fdb_add(A, vm, usee=True)


def test_timers_count_since_update_and_use(lab: Lab) -> None:
    br = lab.bridge("br0")
    a, b = lab.vm("a", bridge=br), lab.vm("b", bridge=br)
    a.send(Ether(src=a.mac, dst="02:00:00:00:00:99") / b"learn me")
    time.sleep(0.3)
    b.send(Ether(src=b.mac, dst=a.mac) / b"use a's entry")
    a.expect(Ether(src=b.mac, dst=a.mac) / b"use a's entry")
    entry = next(e for e in br.fdb_entries() if e.mac == a.mac)
    assert entry.updated >= 0.25  # learnt 0.3 s ago
    assert entry.updated - entry.used >= 0.25  # used 0.3 s after it was learnt: both ages
    # come from one read, so a loaded machine delaying that read changes neither difference


def test_ports_vlab_did_not_make_are_in_fdb_where_and_the_report(lab: Lab, tmp_path) -> None:  # type: ignore[no-untyped-def]
    br = lab.bridge("br0")
    vm = lab.vm("a", bridge=br)
    lab.run("switch", "ip", "link", "add", "ext0", "type", "veth", "peer", "name", "ext1")
    lab.run("switch", "ip", "link", "set", "ext0", "master", "br0", "up")
    br.fdb_add(A, "vnet0")
    lab.run("switch", "bridge", "fdb", "add", B, "dev", "ext0", "master", "static")
    assert br.fdb() == {A: "vnet0", B: "ext0"}
    where = lab.where(B)
    assert where is not None and (where.port, where.endpoint) == ("ext0", None)
    assert "ext0" in lab.fdb_text() and vm.port in lab.fdb_text()
    assert "ext0     a port vlab did not make" in lab.describe()
    bare = lab.port(br, mac=C)
    assert f"{bare.name}    no endpoint (mac {C})" in lab.describe()
    with pytest.raises(AssertionError) as failed:
        vm.expect(Ether(src=A, dst=vm.mac) / b"never sent", timeout=0.05)
    topology = (lab.write_artifacts(tmp_path) / "topology.txt").read_text()
    assert "a port vlab did not make" in topology and f"{B} ext0 static" in topology
    assert "pcaps" in str(failed.value)


@pytest.mark.parametrize("learning", [False, True])
def test_a_port_vlab_did_not_make_takes_options(lab: Lab, learning: bool) -> None:
    """Learning on (the flip), the frame from behind ext0 is learnt there."""
    br = lab.bridge("br0")
    vm = lab.vm("a", bridge=br)
    lab.run("switch", "ip", "link", "add", "ext0", "type", "veth", "peer", "name", "ext1")
    lab.run("switch", "ip", "link", "set", "ext0", "master", "br0", "up")
    ext = br.port("ext0").set(learning=learning)
    assert ext.options()["learning"] is learning and ext.endpoint is None
    link = json.loads(lab.run("switch", "bridge", "-d", "-j", "link", "show", "dev", "ext0").stdout)
    assert link[0]["learning"] is learning
    lab.run("switch", "ip", "link", "set", "ext1", "up")
    deadline = time.monotonic() + 5.0  # vlab does not wait for a port it did not make
    while ext.options()["state"] != "forwarding" or "state UP" not in operstate(lab, "ext0"):
        assert time.monotonic() < deadline, "ext0 never came up"
        time.sleep(0.01)
    frame = Ether(src=D, dst="ff:ff:ff:ff:ff:ff") / b"from behind ext0"
    with lab.namespaces()["switch"].entered():
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    with sock:
        sock.bind(("ext1", 0))
        sock.send(bytes(frame))
    vm.expect(frame)  # through the bridge: learnt (or not) on the way
    assert (br.fdb().get(D) == "ext0") is learning and br.port("ext0") is ext


@pytest.mark.parametrize("norefresh", [True, False])
def test_norefresh_keeps_the_updated_timer_of_a_replaced_entry(lab: Lab, norefresh: bool) -> None:
    """Made static without norefresh (the flip), the entry's updated timer starts again."""
    br = lab.bridge("br0")
    vm = lab.vm("a", bridge=br)
    br.fdb_add(A, vm, static=False, use=False)
    time.sleep(0.3)
    br.fdb_add(A, vm, static=True, norefresh=norefresh)
    entry = next(e for e in br.fdb_entries() if e.mac == A)
    assert entry.static and (entry.updated >= 0.25) is norefresh


@pytest.mark.parametrize("use", [True, False])
def test_use_refreshes_a_learnt_entry_like_traffic(lab: Lab, use: bool) -> None:
    """``use`` (``bridge fdb replace ... use``) refreshes a learnt entry as a frame from it
    would; not given (the flip: the entry is only read), it keeps ageing."""
    br = lab.bridge("br0")
    a, b = lab.vm("a", bridge=br), lab.vm("b", bridge=br)
    a.send(Ether(src=a.mac, dst=b.mac) / b"learn a")
    b.expect(Ether(src=a.mac, dst=b.mac) / b"learn a")
    time.sleep(0.3)
    if use:
        br.fdb_add(a.mac, a, static=False, use=True)
    entry = next(e for e in br.fdb_entries() if e.mac == a.mac)
    assert not entry.static and (entry.updated < 0.2) is use
