"""The link contract: a link kind plugs into a real lab through its switch and ``lab.cables``.

``Patch`` below is a link kind the library does not have (a patch cord: a veth between two
bridges, built by its own factory), written against CONTRIBUTING's link-kind recipe only: the
switch's services (:mod:`vlab.switch`), :class:`vlab.cable.Cable` and
:class:`vlab.cable.CablePort`, and the ``lab.cables`` registry. It gets settling, ``fdb()``,
``where()``, the drawing, pcaps in a failure report, loop refusal and carrier from the lab
without the lab knowing it exists; a build that fails half-way leaves nothing behind.
"""

from __future__ import annotations

import pytest
from scapy.layers.l2 import Ether

from vlab import Lab, LabError
from vlab.bridge import Bridge
from vlab.build import check_room
from vlab.cable import Cable, CablePort, check_loop
from vlab.capture import PacketPort
from vlab.pcapng import read as read_pcapng
from vlab.switch import random_mac

pytestmark = pytest.mark.vlab


class Patch(Cable):
    """A test link kind: a patch cord between two bridges of one switch namespace."""

    kind = "patch"

    def describe(self) -> str:
        """One line, as every link gives for reports."""
        a, b = self.ports
        return f"patch {self.name}: {a.bridge.name} {a.name} -- {b.bridge.name} {b.name}"


def add_patch(lab: Lab, a: Bridge, b: Bridge, name: str, fail: bool = False) -> Patch:
    """The kind's factory: checks first, then everything through the switch it is built in."""
    switch = a.switch
    check_loop(lab, a, b, f"patch {name} between {a.name} and {b.name}")
    for br in (a, b):
        check_room(br, f"patch {name}")
    with switch.rollback():
        near, far = switch.next_name("pat"), switch.next_name("pat")
        ia, ib = switch.index(), switch.index()
        macs = random_mac("fe"), random_mac("fe")
        switch.links.add_veth(near, ia, macs[0], a.index, far, macs[1], switch.ns.fd, ib)
        switch.on_undo(lambda: switch.links.delete(ia))
        switch.links.set_link(ib, master=b.index)
        pa, pb = CablePort(a, near, ia, None, macs[0]), CablePort(b, far, ib, None, macs[1])
        patch = Patch(switch, name, (pa, pb))
        pa.cable = pb.cable = patch
        a.ports[near], b.ports[far] = pa, pb
        switch.on_undo(lambda: (a.ports.pop(near, None), b.ports.pop(far, None)))
        with switch.ns.entered():
            ios = PacketPort(near), PacketPort(far)
        for port, io in zip((pa, pb), ios, strict=True):
            switch.own_socket(io)
            patch.capture(port, io)
        if fail:
            raise LabError(f"patch {name}: failing on purpose, after its link and sockets")
        lab.cables[name] = patch
        switch.topology_changed()
    return patch


def probe(src: str, dst: str = "02:00:00:00:00:99", payload: bytes = b"patch") -> Ether:
    return Ether(src=src, dst=dst, type=0x88B5) / payload


def test_a_new_link_kind_gets_every_view_from_the_lab(lab: Lab) -> None:
    b0, b1 = lab.bridge("br0"), lab.bridge("br1")
    vm0, vm1 = lab.vm("vm0", bridge=b0), lab.vm("vm1", bridge=b1)
    patch = add_patch(lab, b0, b1, "patch0")
    f = probe(vm0.mac)
    vm0.send(f)  # the lab's readiness covers the patch's ports
    lab.expect(f, at=[vm1])
    g = probe(vm1.mac, dst=vm0.mac, payload=b"back")
    vm1.send(g)
    lab.expect(g, at=[vm0])
    near, far = patch.ports
    assert b1.fdb()[vm0.mac] == far.name and b0.fdb()[vm1.mac] == near.name
    b0.fdb_del(vm0.mac, vm0)  # only br1 knows vm0 now, behind the patch
    where = lab.where(vm0.mac)
    assert where is not None and (where.bridge, where.cable) == ("br1", "patch0")
    text = lab.describe()
    assert f"br0 [{near.name}] ===patch0=== [{far.name}] br1" in text
    assert f"{near.name:<8} cable patch0 to br1 port {far.name}" in text
    with pytest.raises(AssertionError) as err:
        vm1.expect(probe(vm0.mac, payload=b"never sent"), timeout=0.05)
    assert "pcaps" in str(err.value)
    assert lab.artifact_dir is not None
    names, records = read_pcapng(lab.artifact_dir / "lab.pcapng")
    crossed = [data for i, _ts, _sent, data in records if names[i].startswith("patch0 at br1")]
    assert crossed == [bytes(f)]  # the patch's capture, in the report's pcaps
    assert (lab.artifact_dir / f"patch0-{far.name}.pcap").exists()
    patch.set_carrier(False)  # Cable's carrier: both ends down, the bridges act at once
    h = probe(vm0.mac, payload=b"unplugged")
    vm0.send(h)
    lab.expect(h, at=[])
    assert "=/ patch0 /=" in lab.describe()


def test_a_new_link_kind_closing_a_loop_is_refused_and_a_failed_build_leaves_nothing(
    lab: Lab,
) -> None:
    b0, b1 = lab.bridge("br0"), lab.bridge("br1")
    lab.ready()
    names = set(lab.switch.links.link_states())
    with pytest.raises(LabError, match="failing on purpose"):
        add_patch(lab, b0, b1, "patch0", fail=True)
    assert set(lab.switch.links.link_states()) == names  # the veth is deleted
    assert not b0.ports and not b1.ports and not lab.cables
    add_patch(lab, b0, b1, "patch0")
    with pytest.raises(LabError, match="loop br0 - br1 - br0 with STP off"):
        lab.cable(b0, b1)  # the library's cable sees the new kind's link ...
    with pytest.raises(LabError, match="patch patch1 between br1 and br0 would make a loop"):
        add_patch(lab, b1, b0, "patch1")  # ... and the new kind sees its own
    assert list(lab.cables) == ["patch0"] and len(b0.ports) == 1
