"""NetworkModel: bridges joined by cables, loop-free or with the ports STP blocks."""

from __future__ import annotations

import pytest
from scapy.layers.l2 import Ether

from vlab.errors import LabError
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
    assert A not in net.fdb("br2") or net.fdb("br2")[A] == "c20"  # never learnt on the blocked port


def test_bad_networks_are_refused() -> None:
    with pytest.raises(LabError, match="has no port"):
        NetworkModel({"br0": bridge(0, "a")}, [CableModel("x", ("br0", "t"), ("br0", "a"))])
    with pytest.raises(LabError, match="is on br0 and on br1"):
        NetworkModel({"br0": bridge(0, "a"), "br1": bridge(1, "a")}, [])
