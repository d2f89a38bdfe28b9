"""Cables between bridges: frames cross, every view covers the cable ports, loops are refused."""

from __future__ import annotations

import pytest
from scapy.layers.l2 import Ether

from vlab import VM, Bridge, Lab, LabError
from vlab.cable import Cable, CablePort
from vlab.pcapng import read as read_pcapng

pytestmark = pytest.mark.vlab


def probe(src: str, dst: str = "02:00:00:00:00:99", payload: bytes = b"cable") -> Ether:
    return Ether(src=src, dst=dst, type=0x88B5) / payload


def two(lab: Lab, **port_options: object) -> tuple[Bridge, Bridge, VM, VM, Cable]:
    b0, b1 = lab.bridge("br0"), lab.bridge("br1")
    vm0, vm1 = lab.vm("vm0", bridge=b0), lab.vm("vm1", bridge=b1)
    return b0, b1, vm0, vm1, lab.cable(b0, b1, **port_options)


def test_frames_cross_and_each_bridge_learns_behind_the_cable(lab: Lab) -> None:
    b0, b1, vm0, vm1, cable = two(lab)
    assert [p.bridge for p in cable.ports] == [b0, b1]
    assert all(isinstance(p, CablePort) for p in cable.ports)
    f = probe(vm0.mac)
    vm0.send(f)
    lab.expect(f, at=[vm1])  # unknown unicast flooded across the cable, once
    assert b0.fdb()[vm0.mac] == vm0.port
    assert b1.fdb()[vm0.mac] == cable.ports[1].name  # learnt behind br1's cable port
    back = probe(vm1.mac, dst=vm0.mac)
    vm1.send(back)
    lab.expect(back, at=[vm0])
    assert b0.fdb()[vm1.mac] == cable.ports[0].name
    assert cable.port(b1) is cable.ports[1] and cable.ports[0].peer is cable.ports[1]


def test_port_options_apply_to_both_ends(lab: Lab) -> None:
    b0, b1, vm0, _vm1, cable = two(lab, learning=False)
    assert [p.options()["learning"] for p in cable.ports] == [False, False]
    vm0.send(probe(vm0.mac))
    lab.settle()
    assert vm0.mac in b0.fdb() and vm0.mac not in b1.fdb()  # the cable end did not learn
    cable.ports[1].set(learning=True)  # the ports are ordinary Port objects
    vm0.send(probe(vm0.mac, payload=b"again"))
    lab.settle()
    assert b1.fdb()[vm0.mac] == cable.ports[1].name
    rx = cable.ports[1].stats().rx_packets
    assert rx >= 2  # what br1 got from the cable


def test_where_names_the_cable_when_only_a_cable_leads_there(lab: Lab) -> None:
    b0, _b1, vm0, _vm1, cable = two(lab)
    vm0.send(probe(vm0.mac))
    lab.settle()
    here = lab.where(vm0.mac)
    assert here is not None and (here.bridge, here.port, here.cable) == ("br0", vm0.port, None)
    b0.fdb_del(vm0.mac, vm0)  # now only br1 knows it, behind its cable port
    there = lab.where(vm0.mac)
    assert there is not None
    assert (there.bridge, there.port, there.cable) == ("br1", cable.ports[1].name, cable.name)
    assert f"cable {cable.name}" in str(there)


def test_set_carrier_unplugs_both_ends(lab: Lab) -> None:
    _b0, b1, vm0, vm1, cable = two(lab)
    f = probe(vm0.mac)
    vm0.send(f)
    lab.expect(f, at=[vm1])
    assert vm0.mac in b1.fdb()
    cable.set_carrier(False)
    links = lab.switch.links
    assert [links.link_state(p.index)[2] for p in cable.ports] == [False, False]  # no carrier
    assert all(p.options()["state"] == "disabled" for p in cable.ports)
    assert vm0.mac not in b1.fdb()  # learnt behind the cable: flushed with the carrier
    g = probe(vm0.mac, payload=b"unplugged")
    vm0.send(g)
    lab.expect(g, at=[])  # nothing crosses
    cable.set_carrier(True)
    h = probe(vm0.mac, payload=b"plugged")
    vm0.send(h)
    lab.expect(h, at=[vm1])
    assert [links.link_state(p.index)[2] for p in cable.ports] == [True, True]


def test_describe_and_artifacts_cover_the_cable(lab: Lab, tmp_path: object) -> None:
    _b0, _b1, vm0, vm1, cable = two(lab)
    f, g = probe(vm0.mac), probe(vm1.mac, payload=b"other way")
    vm0.send(f)
    vm1.send(g)
    lab.settle()
    text = lab.describe()
    assert "cab0a    cable cable0 to br1 port cab0b" in text
    assert "br0 [cab0a] ===cable0=== [cab0b] br1" in text
    out = lab.write_artifacts()
    a, b = (out / f"{cable.name}-{p.name}.pcap" for p in cable.ports)
    assert a.exists() and b.exists()
    names, records = read_pcapng(out / "lab.pcapng")
    crossing = {names[i]: data for i, _ts, _sent, data in records if names[i].startswith("cable0")}
    assert crossing["cable0 at br1 (cab0b)"] == bytes(f)  # what br1 received from br0
    assert crossing["cable0 at br0 (cab0a)"] == bytes(g)  # and the other way
    cable.set_carrier(False)
    assert "=/ cable0 /=" in lab.describe()


def test_a_failed_expect_reports_the_cables(lab: Lab) -> None:
    _b0, _b1, vm0, vm1, cable = two(lab)
    f = probe(vm0.mac)
    vm0.send(f)
    lab.expect(f, at=[vm1])
    never = probe(vm0.mac, payload=b"never")
    with pytest.raises(AssertionError, match=r"vm1 .* did not receive") as err:
        vm1.expect(never, timeout=0.05)
    directory = lab.artifact_dir
    assert directory is not None and str(directory) in str(err.value)
    topology = (directory / "topology.txt").read_text()
    assert "br0 [cab0a] ===cable0=== [cab0b] br1" in topology  # the report draws the cable
    assert f"{vm0.mac} {cable.port('br1').name} learnt" in topology  # and its fdb names its end
    names, records = read_pcapng(directory / "lab.pcapng")
    assert [data for i, _ts, _sent, data in records if names[i] == "cable0 at br1 (cab0b)"] == [
        bytes(f)
    ]


def test_settle_waits_for_a_frame_held_in_a_cable_queue(lab: Lab) -> None:
    _b0, _b1, vm0, vm1, cable = two(lab)
    # a shaper on br0's end holds frames crossing to br1 for ~0.4 s
    dev = cable.ports[0].name
    lab.run("switch", "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", "8kbit",
            "burst", "1600", "latency", "2s")  # fmt: skip
    filler = probe(vm0.mac, payload=b"x" * 400)
    late = probe(vm0.mac, payload=b"late")
    vm0.send(filler)
    vm0.send(late)
    lab.settle()  # must not return while the cable's qdisc still holds the late frame
    got = [bytes(p) for p in vm1.frames()]
    assert got == [bytes(filler), bytes(late)]


def test_several_cables_between_two_bridges_need_stp(lab: Lab) -> None:
    b0, b1 = lab.bridge("br0"), lab.bridge("br1")
    lab.cable(b0, b1)
    with pytest.raises(LabError, match=r"loop br0 - br1 - br0 with STP off on br0, br1.*stp=True"):
        lab.cable(b0, b1)
    assert len(lab.cables) == 1 and len(b0.ports) == 1  # the refused cable left nothing
    s0, s1 = lab.bridge("sw0", stp=True), lab.bridge("sw1", stp=True)
    lab.cable(s0, s1)
    lab.cable(s0, s1)  # a loop of two bridges, STP on both: allowed
    assert len(s0.ports) == 2
    with pytest.raises(LabError, match="stp=False on sw0 would make a loop"):
        s0.set(stp=False)
    assert s0.options()["stp"] is True


def test_the_triangle_without_stp_is_refused(lab: Lab) -> None:
    b0, b1, b2 = (lab.bridge(f"br{i}") for i in range(3))
    lab.cable(b0, b1)
    lab.cable(b1, b2)
    with pytest.raises(LabError) as err:
        lab.cable(b2, b0)
    assert "loop br2 - br1 - br0 - br2" in str(err.value)
    assert "broadcast storm" in str(err.value) and "stp=True" in str(err.value)
    b1.set(stp=True)  # STP on one bridge of the loop is not enough
    with pytest.raises(LabError, match="STP off on br2, br0"):
        lab.cable(b2, b0)
    b0.set(stp=True)
    b2.set(stp=True)
    lab.cable(b2, b0)  # every bridge of the loop runs STP: the same cable is accepted


def test_bad_cables_are_refused_before_anything_is_built(lab: Lab) -> None:
    b0, b1 = lab.bridge("br0"), lab.bridge("br1")
    with pytest.raises(LabError, match="unknown port option"):
        lab.cable(b0, b1, lerning=False)
    with pytest.raises(LabError, match="to itself"):
        lab.cable(b0, b0)
    with pytest.raises(LabError, match="unknown bridge 'br9'"):
        lab.cable(b0, "br9")
    lab.cable(b0, b1, name="trunk")
    lab.bridge("br2")
    with pytest.raises(LabError, match="already used"):
        lab.cable("br1", "br2", name="trunk")
    assert list(lab.cables) == ["trunk"] and list(b0.ports) == ["cab0a"]
    with pytest.raises(LabError, match="already used"):
        lab.vm("trunk", bridge=b0)  # cables share the lab's names
    with pytest.raises(LabError, match="end of cable trunk"):
        lab.cables["trunk"].ports[0].detach()  # moving an end could close a loop unseen
