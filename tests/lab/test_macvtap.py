"""macvtap VMs (libvirt's ``direct`` attachment): the four modes, frames both ways, each test
failing when its mode is flipped to the one that behaves differently.

The hypervisor's NIC is the spare end of a bare port (``lab.port(br)``) or a host's eth0; the
bridge is the switch that NIC is cabled to, where hairpin decides whether VEPA reflects.
"""

from __future__ import annotations

import os

import pytest
from scapy.layers.l2 import Ether

from vlab import Lab, LabError
from vlab.bridge import Bridge, Port
from vlab.endpoints import Host
from vlab.macvtap import MacvtapVM

pytestmark = pytest.mark.vlab


def probe(src: str, dst: str, tag: bytes = b"macvtap") -> Ether:
    return Ether(src=src, dst=dst, type=0x88B5) / tag


def two_vms(
    lab: Lab, mode: str, hairpin: bool = False
) -> tuple[MacvtapVM, MacvtapVM, Bridge, Port, Host]:
    br = lab.bridge("br0")
    nic = lab.port(br)  # the hypervisor's NIC: its spare end carries the macvtaps
    h = lab.host("h1", br)  # another machine on the same switch
    if hairpin:
        br.port(nic).set(hairpin=True)
    vm1 = lab.vm("vm1", macvtap=nic, mode=mode)
    vm2 = lab.vm("vm2", macvtap=nic, mode=mode)
    assert isinstance(vm1, MacvtapVM) and isinstance(vm2, MacvtapVM)
    return vm1, vm2, br, nic, h


@pytest.mark.parametrize("mode", ["bridge", "vepa"])
def test_unicast_between_siblings_is_direct_only_in_bridge_mode(lab: Lab, mode: str) -> None:
    """bridge: vm1 -> vm2 is delivered inside the macvlan port, never reaching the switch.
    vepa (the flip, no hairpin): the frame goes out to the switch and never comes back."""
    vm1, vm2, br, nic, h = two_vms(lab, mode)
    f = probe(vm1.mac, vm2.mac)
    vm1.send(f)
    if mode == "bridge":
        lab.expect(f, at=[vm2])  # nobody else: not the switch's other host
        assert vm1.mac not in br.fdb()  # the switch never saw it
        back = probe(vm2.mac, vm1.mac, b"reply")
        vm2.send(back)
        lab.expect(back, at=[vm1])
    else:
        lab.expect(f, at=[h])  # out of the NIC, flooded by the switch (unknown unicast)
        assert br.fdb()[vm1.mac] == nic.name


@pytest.mark.parametrize("hairpin", [True, False])
def test_vepa_reflection_needs_hairpin_at_the_switch(lab: Lab, hairpin: bool) -> None:
    vm1, vm2, br, nic, h = two_vms(lab, "vepa", hairpin=hairpin)
    h.send(probe(h.mac, "ff:ff:ff:ff:ff:ff", b"learn-h"))  # the switch knows h: no flood to it
    lab.expect(probe(h.mac, "ff:ff:ff:ff:ff:ff", b"learn-h"), at=[vm1, vm2])
    vm2.send(probe(vm2.mac, h.mac, b"learn-vm2"))
    h.expect(probe(vm2.mac, h.mac, b"learn-vm2"))
    assert br.fdb()[vm2.mac] == nic.name
    f = probe(vm1.mac, vm2.mac)
    vm1.send(f)
    # vm2 is behind the NIC's own port: only a hairpin port sends the frame back out of it
    lab.expect(f, at=[vm2] if hairpin else [])
    if hairpin:
        back = probe(vm2.mac, vm1.mac, b"reply")
        vm2.send(back)
        lab.expect(back, at=[vm1])


@pytest.mark.parametrize("mode", ["private", "vepa"])
def test_private_isolates_siblings_from_reflected_broadcasts(lab: Lab, mode: str) -> None:
    """private: the switch reflects a broadcast (hairpin), and the macvlan port hands it back
    to its sender alone, never to a sibling. vepa (the flip), same hairpin: the sibling gets it
    and the sender does not."""
    vm1, vm2, _br, _nic, h = two_vms(lab, mode, hairpin=True)
    f = probe(vm1.mac, "ff:ff:ff:ff:ff:ff", b"bcast")
    vm1.send(f)
    lab.expect(f, at=[h, vm1] if mode == "private" else [h, vm2])
    back = probe(vm2.mac, "ff:ff:ff:ff:ff:ff", b"bcast-back")
    vm2.send(back)
    lab.expect(back, at=[h, vm2] if mode == "private" else [h, vm1])
    # both still talk to the outside world, both ways
    to_h = probe(vm1.mac, h.mac, b"out")
    vm1.send(to_h)
    lab.expect(to_h, at=[h])
    from_h = probe(h.mac, vm1.mac, b"in")
    h.send(from_h)
    lab.expect(from_h, at=[vm1])


@pytest.mark.parametrize("hairpin", [False, True])
def test_private_unicast_isolation_is_the_switch_s(lab: Lab, hairpin: bool) -> None:
    """A unicast frame between private siblings goes out of the NIC; the kernel does not check
    where a unicast frame coming back came from, so without hairpin nobody gets it, with
    hairpin the sibling does (isolation of unicast is left to the switch)."""
    vm1, vm2, _br, _nic, h = two_vms(lab, "private", hairpin=hairpin)
    vm2.send(probe(vm2.mac, h.mac, b"learn-vm2"))
    h.expect(probe(vm2.mac, h.mac, b"learn-vm2"))
    f = probe(vm1.mac, vm2.mac)
    vm1.send(f)
    lab.expect(f, at=[vm2] if hairpin else [])


@pytest.mark.parametrize("mode", ["passthru", "bridge"])
def test_passthru_takes_every_frame_the_nic_receives(lab: Lab, mode: str) -> None:
    """passthru: the VM owns the NIC (promiscuous), so a frame for any MAC reaches it.
    bridge (the flip): a frame for a MAC that is not the VM's stays with the NIC."""
    br = lab.bridge("br0")
    nic = lab.port(br)
    h = lab.host("h1", br)
    vm = lab.vm("vm1", macvtap=nic, mode=mode)
    other = probe(h.mac, "02:00:00:00:00:42", b"not-for-vm1")
    h.send(other)
    lab.expect(other, at=[vm] if mode == "passthru" else [])
    out = probe(vm.mac, h.mac, b"out")
    vm.send(out)
    lab.expect(out, at=[h])


def test_passthru_is_one_vm_only(lab: Lab) -> None:
    br = lab.bridge("br0")
    nic = lab.port(br)
    lab.vm("vm1", macvtap=nic, mode="passthru")
    with pytest.raises(LabError, match="passthru macvtap owns its lower device alone"):
        lab.vm("vm2", macvtap=nic, mode="bridge")
    assert "vm2" not in lab.endpoints
    other = lab.port(br)
    vm3 = lab.vm("vm3", macvtap=other, mode="passthru")  # a NIC of its own: fine
    assert vm3.mode == "passthru"


def test_macvtap_on_a_host_nic_talks_to_the_host_side(lab: Lab) -> None:
    """The lower device is a host's eth0: the VM's frames leave through that veth, and the
    switch learns the VM's MAC on the host's port."""
    br = lab.bridge("br0")
    hv = lab.host("hv", br)
    peer = lab.host("peer", br)
    vm = lab.vm("vm1", macvtap=hv, mode="bridge")
    f = probe(vm.mac, peer.mac)
    vm.send(f)
    peer.expect(f)
    assert lab.where(vm.mac) is not None and lab.where(vm.mac).port == hv.port  # type: ignore[union-attr]
    back = probe(peer.mac, vm.mac, b"back")
    peer.send(back)
    vm.expect(back)
    assert vm.stats().rx_packets >= 1 and vm.stats().tx_packets >= 1


def test_broadcast_from_the_wire_reaches_every_macvtap(lab: Lab) -> None:
    vm1, vm2, _br, _nic, h = two_vms(lab, "bridge")
    f = probe(h.mac, "ff:ff:ff:ff:ff:ff", b"bcast")
    h.send(f)
    lab.expect(f, at=[vm1, vm2])


def test_macvtap_vm_set_carrier_stops_delivery(lab: Lab) -> None:
    vm1, vm2, _br, _nic, h = two_vms(lab, "bridge")
    f = probe(vm1.mac, vm2.mac)
    vm1.send(f)
    vm2.expect(f)
    vm2.set_carrier(False)
    vm1.send(f)
    lab.expect(f, at=[h])  # vm2's MAC left the macvlan port: out to the switch, flooded
    vm2.set_carrier(True)
    vm1.send(f)
    lab.expect(f, at=[vm2])


def test_bad_macvtap_requests_are_lab_errors(lab: Lab) -> None:
    br = lab.bridge("br0")
    nic = lab.port(br)
    tapvm = lab.vm("tapvm", bridge=br)
    with pytest.raises(LabError, match="mode='trunk'"):
        lab.vm("v1", macvtap=nic, mode="trunk")
    with pytest.raises(LabError, match=r"either bridge= .* or macvtap="):
        lab.vm("v2", bridge=br, macvtap=nic)
    with pytest.raises(LabError, match="a VM's NIC cannot be the lower device"):
        lab.vm("v3", macvtap=tapvm)
    with pytest.raises(LabError, match="mode= is a macvtap's"):
        lab.vm("v4", bridge=br, mode="vepa")
    with pytest.raises(LabError, match="cannot add macvtap"):
        lab.vm("v5", macvtap=nic, mtu=9000)  # larger than the NIC's 1500
    assert not {"v1", "v2", "v3", "v4", "v5"} & set(lab.endpoints)
    vm = lab.vm("v5", macvtap=nic)  # a failed call left nothing: the retry works
    assert vm.mode == "bridge"


def test_macvtap_lab_leaves_no_device_node() -> None:
    """The host's devtmpfs publishes /dev/tapIFINDEX while a lab's macvtap lives (unless a
    node of that name exists already: ifindexes are per namespace), and it is gone after."""
    import time

    with Lab() as lab:
        br = lab.bridge("br0")
        vm = lab.vm("vm1", macvtap=lab.port(br), mode="bridge")
        rdev = os.fstat(vm.tap_fd).st_rdev
        vm.send(probe(vm.mac, "ff:ff:ff:ff:ff:ff"))
        lab.settle()
        assert os.path.exists(f"/dev/tap{vm.ifindex}")
    deadline = time.monotonic() + 10  # the namespace dies asynchronously (cleanup_net)
    while nodes_of(rdev) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert nodes_of(rdev) == []


def nodes_of(rdev: int) -> list[str]:
    out = []
    for name in os.listdir("/dev"):
        if name.startswith("tap"):
            try:
                if os.stat(f"/dev/{name}").st_rdev == rdev:
                    out.append(name)
            except FileNotFoundError:
                pass
    return out


def test_settle_waits_for_the_macvlan_broadcast_queue(lab: Lab) -> None:
    """A broadcast from the wire reaches macvtaps through macvlan's broadcast queue, emptied by
    a kernel worker that no counter shows; a settle must not return before it ran. Without the
    barrier (vlab.bcqueue) about one check in seven failed here; with it, none may."""
    vm1, vm2, _br, _nic, h = two_vms(lab, "bridge")
    vm3 = lab.vm("vm3", macvtap=_nic, mode="vepa")
    for i in range(60):
        f = probe(h.mac, "ff:ff:ff:ff:ff:ff", f"bcast-{i}".encode())
        h.send(f)
        lab.settle()
        for vm in (vm1, vm2, vm3):
            vm.expect(f, timeout=0)  # already there: no waiting, no second settle
    lab.expect_quiet()  # and the barrier's markers never show up anywhere


def test_a_macvtap_vm_has_no_bridge_port_of_its_own(lab: Lab) -> None:
    br = lab.bridge("br0")
    nic = lab.port(br)
    vm = lab.vm("vm1", macvtap=nic, mode="bridge")
    with pytest.raises(LabError, match="has no port of its own on br0"):
        br.port(vm).set(hairpin=True)
    br.port(nic).set(hairpin=True)  # the port its frames enter through
    assert br.port(nic).options()["hairpin"] is True
    assert "macvtap macvtap0 mode bridge" in lab.describe()
    assert lab.where(vm.mac) is None  # not learnt yet: it has sent nothing
    vm.send(probe(vm.mac, "ff:ff:ff:ff:ff:ff", b"here I am"))
    lab.settle()
    where = lab.where(vm.mac)
    assert where is not None and where.port == nic.name and where.owner == "vm1"
