"""STP for real: a triangle of bridges elects a root, blocks a port, re-forms after a failure.

Each convergence costs 2 x forward_delay (4 s at the kernel's minimum), so the triangle's
checks run in one test on one lab, in the order a user would meet them.
"""

from __future__ import annotations

import time

import pytest
from scapy.layers.l2 import LLC, STP, Dot3, Ether

from vlab import Lab, LabError
from vlab.properties.network import model_of_lab
from vlab.stp import FAST, is_bpdu

pytestmark = pytest.mark.vlab


def probe(src: str, dst: str = "ff:ff:ff:ff:ff:ff", payload: bytes = b"stp") -> Ether:
    return Ether(src=src, dst=dst, type=0x88B5) / payload


def test_triangle_converges_delivers_once_and_reforms_after_a_failure(lab: Lab) -> None:
    # br0 is root (lowest priority); br1 beats br2 on the br1-br2 segment, so br2 blocks there
    b0 = lab.bridge("br0", priority=0x1000, **FAST)
    b1 = lab.bridge("br1", priority=0x2000, **FAST)
    b2 = lab.bridge("br2", priority=0x3000, **FAST)
    vm0, vm1, vm2 = (lab.vm(f"vm{i}", bridge=b) for i, b in enumerate((b0, b1, b2)))
    c01, c12, c20 = lab.cable(b0, b1), lab.cable(b1, b2), lab.cable(b2, b0)
    took = lab.converge(timeout=15)
    assert took > 3  # it waited for listening + learning (forward_delay, 2 s, each): no shortcut
    roles = {(p.bridge.name, p.stp().role) for c in (c01, c12, c20) for p in c.ports}
    assert ("br1", "root") in roles and ("br2", "root") in roles
    assert c12.port(b2).stp().role == "alternate" and c12.port(b2).stp().state == "blocking"
    assert c20.port(b2).stp().role == "root"  # br2's root port: its cable to br0
    root = b0.port(vm0).stp()
    assert root.designated_root == root.bridge_id and root.role == "designated"
    assert all(
        p.stp().designated_root == root.bridge_id for c in lab.cables.values() for p in c.ports
    )

    # br1 learnt br0's cable end from its BPDUs (link-local frames are learnt: bridge facts)
    assert b1.fdb()[c01.port(b0).mac] == c01.port(b1).name
    model = model_of_lab(lab)  # the blocked port, read from the kernel, opens the ring
    assert model.blocked == {("br2", c12.port(b2).name)}
    f = probe(vm0.mac)
    assert model.deliveries("vm0", bytes(f)) == {"vm1": 1, "vm2": 1}
    vm0.send(f)
    lab.expect(f, at=[vm1, vm2])  # every endpoint exactly once: no copy came round the loop
    back = probe(vm2.mac, dst=vm0.mac, payload=b"known")
    assert model.deliveries("vm2", bytes(back)) == {"vm0": 1}  # learnt on the way
    vm2.send(back)
    lab.expect(back, at=[vm0])
    with pytest.raises(AssertionError, match="unexpected at vm2"):  # the check sees vm2's copy
        vm0.send(f)
        lab.expect(f, at=[vm1])
    vm2.clear()
    seen = len(vm0.log)
    deadline = time.monotonic() + 3
    while not any(is_bpdu(data) for _ts, _sent, data in list(vm0.log)[seen:]):
        assert time.monotonic() < deadline, "no BPDU reached vm0's pcap within 3 s"
        lab.settle()
    assert [vm.frames() for vm in (vm0, vm1, vm2)] == [[], [], []]  # BPDUs are noise ...
    lab.keep_bpdus = True  # ... unless asked for
    deadline = time.monotonic() + 3
    while not any(is_bpdu(bytes(p)) for p in vm0.frames()):
        assert time.monotonic() < deadline, "no BPDU reached vm0 within 3 s"
    lab.keep_bpdus = False

    c20.set_carrier(False)  # br2 loses its root port
    g = probe(vm2.mac, payload=b"cut")
    vm2.send(g)
    lab.expect(g, at=[])  # the other way is not forwarding yet: the failure is real
    took = lab.converge(timeout=15)
    assert c12.port(b2).stp().role == "root" and c12.port(b2).stp().state == "forwarding"
    h = probe(vm2.mac, payload=b"around")
    vm2.send(h)
    lab.expect(h, at=[vm0, vm1])  # through br1 now
    assert b0.fdb()[vm2.mac] == c01.port(b0).name  # br0 learnt vm2 behind its cable to br1
    where = lab.where(vm2.mac)
    assert where is not None and where.bridge == "br2"
    assert "=/ cable2 /=" in lab.describe()


def test_converge_refuses_to_wait_forever(lab: Lab) -> None:
    b0 = lab.bridge("br0", stp=True, forward_delay=3)
    b1 = lab.bridge("br1", stp=True, forward_delay=3)
    lab.cable(b0, b1)
    with pytest.raises(LabError, match=r"did not converge within 0.5 s: br\d cab0. is listening"):
        lab.converge(timeout=0.5)
    with pytest.raises(LabError, match="does not run STP"):
        lab.bridge("br9").port(lab.vm("v9", bridge="br9")).stp()


def wait_state(port: object, state: str, timeout: float = 4.0) -> None:
    deadline = time.monotonic() + timeout
    while port.options()["state"] != state:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, f"{port} never became {state}"
        time.sleep(0.01)


def test_bpdu_guard_disables_a_cable_port_that_hears_a_bpdu(lab: Lab) -> None:
    b0 = lab.bridge("br0", priority=0x1000, **FAST)
    b1 = lab.bridge("br1", priority=0x2000, **FAST)
    b2 = lab.bridge("br2", priority=0x3000, **FAST)
    guarded = lab.cable(b0, b1)
    guarded.port(b1).set(bpdu_guard=True)
    plain = lab.cable(b0, b2)  # the same, without the guard: the control
    wait_state(guarded.port(b1), "disabled")  # br0's first BPDU tripped the guard
    lab.converge(timeout=15)
    assert guarded.port(b1).stp().role == "disabled"
    assert plain.port(b2).stp().role == "root" and plain.port(b2).options()["state"] == "forwarding"


def test_root_block_keeps_a_superior_bpdu_from_making_the_port_root(lab: Lab) -> None:
    b0 = lab.bridge("br0", priority=0x1000, **FAST)
    b1 = lab.bridge("br1", priority=0x2000, **FAST)
    b2 = lab.bridge("br2", priority=0x2000, **FAST)
    vm0, _vm1, vm2 = (lab.vm(f"vm{i}", bridge=b) for i, b in enumerate((b0, b1, b2)))
    blocked = lab.cable(b0, b1)
    blocked.port(b1).set(root_block=True)
    plain = lab.cable(b0, b2)  # the control: br0's superior BPDUs make this port root
    lab.converge(timeout=15)
    assert plain.port(b2).stp().role == "root"
    assert plain.port(b2).stp().designated_root == b0.port(blocked.port(b0)).stp().bridge_id
    held = blocked.port(b1).stp()
    assert held.role != "root" and held.root_port == 0  # br1 still takes itself for root
    assert held.state == "listening"  # the kernel holds it there on every superior BPDU
    f = probe(vm0.mac)
    vm0.send(f)
    lab.expect(f, at=[vm2])  # across the plain cable, not across the held port


def test_parallel_cables_one_blocks_and_the_other_takes_over(lab: Lab) -> None:
    b0 = lab.bridge("br0", priority=0x1000, **FAST)
    b1 = lab.bridge("br1", priority=0x2000, **FAST)
    vm0, vm1 = lab.vm("vm0", bridge=b0), lab.vm("vm1", bridge=b1)
    first, second = lab.cable(b0, b1), lab.cable(b0, b1)  # a loop of two bridges
    lab.converge(timeout=15)
    roles = {c.name: c.port(b1).stp().role for c in (first, second)}
    assert sorted(roles.values()) == ["alternate", "root"]  # br1 uses one, blocks the other
    assert all(c.port(b0).stp().role == "designated" for c in (first, second))
    f = probe(vm0.mac)
    vm0.send(f)
    lab.expect(f, at=[vm1])  # once: the blocked cable carries no copy
    used = first if roles[first.name] == "root" else second
    spare = second if used is first else first
    used.set_carrier(False)
    lab.converge(timeout=15)
    assert spare.port(b1).stp().role == "root"
    g = probe(vm0.mac, payload=b"spare")
    vm0.send(g)
    lab.expect(g, at=[vm1])


def test_a_bpdu_the_test_sends_is_never_noise(lab: Lab) -> None:
    stp_on = lab.bridge("br0", **FAST)  # an STP bridge: the lab now filters its bridges' BPDUs
    plain = lab.bridge("br1")  # STP off: it floods BPDUs like any frame (bridge facts)
    lab.vm("vm0", bridge=stp_on)
    vm1, vm2 = lab.vm("vm1", bridge=plain), lab.vm("vm2", bridge=plain)
    bpdu = Dot3(src=vm1.mac, dst="01:80:c2:00:00:00") / LLC() / STP(rootmac=vm1.mac)
    assert is_bpdu(bytes(bpdu))
    assert any(getattr(f, "bpdu_filter", False) for f in lab.switch.noise)  # the filter is on
    vm1.send(bpdu)
    lab.expect(bpdu, at=[vm2])  # the test's own BPDU arrives: only the lab's are noise
