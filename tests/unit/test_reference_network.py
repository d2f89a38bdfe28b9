"""NetworkModel: bridges joined by cables, loop-free or with the ports STP blocks; the drawn
networks the forwarding machine runs on."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from scapy.layers.l2 import Ether

from vlab.errors import LabError
from vlab.network_strategies import CABLE_FLAGS, NetworkTopology, network_topologies
from vlab.reference.bridge import BridgeModel
from vlab.reference.network import CableModel, ModelLoop, NetworkModel


def frame(src: str, dst: str = "ff:ff:ff:ff:ff:ff") -> bytes:
    return bytes(Ether(src=src, dst=dst, type=0x88B5) / b"x")


A, B, C = "52:54:00:00:00:0a", "52:54:00:00:00:0b", "52:54:00:00:00:0c"


def bridge(i: int, *ports: str) -> BridgeModel:
    return BridgeModel(
        f"02:00:00:00:fe:0{i}", {p: f"fe:00:00:00:0{i}:{n:02x}" for n, p in enumerate(ports)}
    )


def triangle(blocked: tuple[tuple[str, str], ...] = ()) -> NetworkModel:
    bridges = {
        "br0": bridge(0, "a", "c01", "c20"),
        "br1": bridge(1, "b", "c01", "c12"),
        "br2": bridge(2, "c", "c12", "c20"),
    }
    cables = [
        CableModel("c01", ("br0", "c01"), ("br1", "c01")),
        CableModel("c12", ("br1", "c12"), ("br2", "c12")),
        CableModel("c20", ("br2", "c20"), ("br0", "c20")),
    ]
    return NetworkModel(bridges, cables, blocked)


def chain() -> NetworkModel:
    bridges = {"br0": bridge(0, "a", "t"), "br1": bridge(1, "t", "b", "c")}
    return NetworkModel(bridges, [CableModel("trunk", ("br0", "t"), ("br1", "t"))])


def test_floods_across_and_learns_behind_the_cable() -> None:
    net = chain()
    assert net.deliver("a", frame(A, "02:00:00:00:00:99")) == {"b", "c"}
    assert net.fdb("br1")[A] == "t" and net.fdb("br0")[A] == "a"
    assert net.deliver("b", frame(B, A)) == {"a"}  # known on both bridges
    assert net.deliver("a", frame(A, B)) == {"b"}


def test_unplugged_cable_carries_nothing_and_flushes() -> None:
    net = chain()
    net.deliver("a", frame(A))
    net.set_carrier("trunk", False)
    assert A not in net.fdb("br1")
    assert net.deliver("a", frame(A)) == set()
    net.set_carrier("trunk", True)
    assert net.deliver("a", frame(A)) == {"b", "c"}


def test_a_loop_nothing_blocks_is_refused_and_a_blocked_port_resolves_it() -> None:
    with pytest.raises(ModelLoop, match="twice"):
        triangle().deliver("a", frame(A))
    net = triangle(blocked=(("br2", "c12"),))
    assert net.deliveries("a", frame(A)) == {"b": 1, "c": 1}  # each endpoint exactly once
    assert net.fdb("br2")[A] == "c20"  # learnt where it came in, never on the blocked port
    assert net.deliveries("c", frame(C, A)) == {"a": 1}  # back the same way, known now


def test_bad_networks_are_refused() -> None:
    with pytest.raises(LabError, match="has no port"):
        NetworkModel({"br0": bridge(0, "a")}, [CableModel("x", ("br0", "t"), ("br0", "a"))])
    with pytest.raises(LabError, match="is on br0 and on br1"):
        NetworkModel({"br0": bridge(0, "a"), "br1": bridge(1, "a")}, [])


@settings(max_examples=50, database=None, deadline=None)
@given(network_topologies())
def test_drawn_networks_are_trees_of_two_or_three_bridges(net: NetworkTopology) -> None:
    n = len(net.bridges)
    assert 2 <= n <= 3 and len(net.cables) == n - 1  # a tree: one cable fewer than bridges
    joined = {0}
    for a, b, options in net.cables:
        assert a < b and a in joined  # each bridge cabled to one drawn before it: no loop
        joined.add(b)
        assert {flag for flag, _ in options} <= set(CABLE_FLAGS)
        assert all(value is False for _, value in options)
    assert joined == set(range(n))  # connected
    assert len(set(net.endpoints())) == sum(net.vms) and all(1 <= v <= 2 for v in net.vms)
    assert len({net.mac(vm) for vm in net.endpoints()}) == sum(net.vms)
