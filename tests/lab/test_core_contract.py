"""The core contract: an endpoint kind plugs into a real lab through its switch alone.

``Probe`` below is a kind the library does not have (a veth whose far end stays in the switch
namespace, read by a packet socket there), written against the contract only: the switch's
services (:mod:`vlab.switch`) and the endpoint hooks (:class:`vlab.endpoints.Endpoint`). It
gets readiness, capture, carrier, failure reports and teardown from the lab without the lab
knowing it exists; a build that fails half-way leaves nothing behind.
"""

from __future__ import annotations

import os

import pytest
from scapy.layers.l2 import Ether

from vlab import Lab, LabError, reaper
from vlab.bridge import Bridge
from vlab.build import Builder
from vlab.capture import PacketPort
from vlab.endpoints import NamespacedEndpoint
from vlab.switch import Switch, random_mac

pytestmark = pytest.mark.vlab


class Probe(NamespacedEndpoint):
    """A test kind: the far end of its veth stays beside the bridge, in the switch namespace."""

    kind = "probe"

    def describe(self) -> str:
        """One line, as every kind gives for reports."""
        return f"probe {self.name}: {self.ifname} == veth ==> {self.port} on {self.bridge.name}"


class SlowProbe(Probe):
    """A probe whose own readiness hook says "not yet" a few times (or forever)."""

    checks = 0
    needed = 3
    started = 0

    def not_ready(self) -> list[str]:
        SlowProbe.checks += 1
        if SlowProbe.checks < self.needed:
            return [f"{self.name} is still warming up"]
        return super().not_ready()

    def wait_started(self, timeout: float | None = None) -> None:
        SlowProbe.started += 1


def add_probe(
    switch: Switch,
    name: str,
    br: Bridge,
    cls: type[Probe] = Probe,
    fail: bool = False,
) -> Probe:
    """The kind's building call: everything through the switch it is built in."""
    switch.fabric.check_name(name, cls.kind)
    mac = random_mac("02")
    with switch.rollback():
        port = switch.next_name("probe")
        peer = f"{port}p"
        index, far = switch.index(), switch.index()
        port_mac = random_mac("fe")
        switch.links.add_veth(port, index, port_mac, br.index, peer, mac, switch.ns.fd, far)
        switch.on_undo(lambda: switch.links.delete(index))
        switch.links.set_link(far)
        with switch.ns.entered():
            io = PacketPort(peer)
        switch.own_socket(io)
        if fail:
            raise LabError(f"probe {name}: failing on purpose, after its link and socket")
        ep = cls(switch, name, mac, port, br, io, switch.space, peer, far)
        switch.register(ep, br, index, port_mac)
    return ep


def frame(src: str, tag: bytes) -> Ether:
    return Ether(src=src, dst="02:00:00:00:00:99", type=0x88B5) / tag


def fds() -> int:
    reaper.drain()  # packet sockets are closed in the background
    return len(os.listdir("/proc/self/fd"))


def test_a_new_kind_gets_frames_both_ways_and_a_report(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm = lab.vm("vm1", bridge=br)
    probe = add_probe(lab.switch, "p1", br)
    f = frame(vm.mac, b"to the probe")
    vm.send(f)  # the lab's readiness covers the new kind's port and its own link
    assert probe.expect(f).src == vm.mac
    g = frame(probe.mac, b"from the probe")
    probe.send(g)
    vm.expect(g)
    probe.expect_none()  # never back out of its ingress port
    assert br.fdb()[probe.mac] == probe.port
    assert probe.stats().rx_packets >= 1  # its NIC's counters, found through its nic() hook
    assert lab.where(probe.mac).endpoint == "p1"  # type: ignore[union-attr]
    assert "probe p1: probe0p == veth ==> probe0 on br0" in lab.describe()
    with pytest.raises(AssertionError) as err:
        probe.expect(frame(vm.mac, b"never sent"), timeout=0.05)
    assert "p1 (port probe0 on br0) did not receive the expected frame" in str(err.value)
    assert "pcaps" in str(err.value)


def test_a_kinds_carrier_goes_through_its_own_hook(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm = lab.vm("vm1", bridge=br)
    probe = add_probe(lab.switch, "p1", br)
    lab.ready()
    assert lab.switch.links.port_states()[probe.port] == 3  # forwarding
    probe.set_carrier(False)  # NamespacedEndpoint.apply_carrier: its far end goes down
    assert lab.switch.links.port_states()[probe.port] == 0  # disabled: the bridge acted
    f = frame(vm.mac, b"while unplugged")
    vm.send(f)
    probe.expect_none()
    probe.set_carrier(True)
    g = frame(vm.mac, b"plugged again")
    vm.send(g)  # readiness waits for the port to forward again
    probe.expect(g)


def test_the_lab_waits_for_a_kinds_own_readiness_and_names_what_is_missing(lab: Lab) -> None:
    br = lab.bridge("br0")
    SlowProbe.checks, SlowProbe.needed, SlowProbe.started = 0, 3, 0
    add_probe(lab.switch, "p1", br, SlowProbe)
    lab.ready()
    assert SlowProbe.checks >= 3  # asked until it said yes
    assert SlowProbe.started == 1  # and its start was waited for once
    SlowProbe.needed = 10**9  # never ready: the lab says which endpoint and why
    add_probe(lab.switch, "p2", br, SlowProbe)
    with pytest.raises(LabError, match="p2 is still warming up"):
        lab.ready(timeout=0.1)


def test_a_failed_build_rolls_back_and_a_retry_works() -> None:
    before = fds()
    with Lab("rollback") as lab:
        br = lab.bridge("br0")
        lab.ready()
        built = fds()
        names = set(lab.switch.links.link_states())
        with pytest.raises(LabError, match="failing on purpose"):
            add_probe(lab.switch, "p1", br, fail=True)
        assert fds() == built  # the socket it opened is closed
        assert set(lab.switch.links.link_states()) == names  # the veth is deleted
        assert "p1" not in lab.endpoints and not br.ports
        probe = add_probe(lab.switch, "p1", br)  # the same name again
        assert probe.port == "probe0"  # the counter was rolled back too
        probe.send(frame(probe.mac, b"works"))
    assert fds() == before  # the lab's close took the kind's socket along
    with pytest.raises(LabError, match="closed"):
        probe.send(frame(probe.mac, b"after close"))  # release(): no fd of it is used again


def test_the_rollback_check_sees_a_leak() -> None:
    """The positive case: a step the rollback is not told about does leave its link."""
    with Lab("leak") as lab:
        br = lab.bridge("br0")
        switch = lab.switch
        names = set(switch.links.link_states())
        with pytest.raises(LabError), switch.rollback():
            index = switch.index()
            switch.links.add_veth(
                "leak0",
                index,
                random_mac("fe"),
                br.index,
                "leak0p",
                random_mac("02"),
                switch.ns.fd,
                switch.index(),
            )
            raise LabError("no undo step for the veth")
        assert set(switch.links.link_states()) - names == {"leak0", "leak0p"}


def test_names_are_unique_across_the_lab_for_a_new_kind_too(lab: Lab) -> None:
    br = lab.bridge("br0")
    lab.vm("vm1", bridge=br)
    with pytest.raises(LabError, match="already used"):
        add_probe(lab.switch, "vm1", br)
    assert not [p for p in br.ports if p.startswith("probe")]


class Hypervisor(Builder):
    """A second switch namespace with the lab's building calls: the recipe of CONTRIBUTING."""

    def __init__(self, switch: Switch) -> None:
        self.switch, self.name, self._guard = switch, switch.name, switch.guard


def hypervisor(lab: Lab, name: str) -> Hypervisor:
    lab._check_name(name, "hypervisor")
    switch = Switch(lab, lab._fabric, name, lab._space(name), upstream=f"{name}-up")
    lab._switches.append(switch)
    return Hypervisor(switch)


def test_a_second_switch_namespace_is_a_few_lines(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm1 = lab.vm("vm1", bridge=br)
    hv = hypervisor(lab, "hv2")
    br1 = hv.bridge("br1")
    vm2, host, up = hv.vm("vm2", bridge=br1), hv.host("h2", bridge=br1), hv.uplink(br1)
    assert vm2.port == vm1.port == "vnet0"  # port names are per switch namespace
    assert {"hv2", "hv2-up"} <= set(lab.namespaces())
    f = frame(vm2.mac, b"on the second hypervisor")
    vm2.send(f)  # readiness covers the second switch
    host.expect(f)
    up.expect(f)
    vm1.expect_none()  # two namespaces, no cable: nothing crosses
    vm2.expect_none()
    assert br1.fdb()[vm2.mac] == vm2.port and vm2.mac not in br.fdb()
    assert "host h2: eth0" in lab.describe()
    with pytest.raises(LabError, match="is in switch namespace switch, not hv2"):
        hv.vm("vm3", bridge=br)
