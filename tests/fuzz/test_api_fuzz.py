"""Fuzzing the public API: any call, with any arguments, open or closed, succeeds or is a LabError.

Each example builds a lab and drives a random sequence of calls to every public method of the
lab, its bridges, ports and endpoints, with arguments drawn from both sides: plausible values
(names, MACs, MTUs, frames, options the lab knows) and wrong ones (None, nan, huge numbers, bytes,
NUL bytes and newlines in strings, objects of another lab or of the wrong kind). Somewhere in the
sequence the lab may be closed, so the later calls exercise use after close. The only outcomes
allowed are a return or a LabError (plus the AssertionError that the assertion methods exist to
raise); anything else, and any fd or namespace the process still holds once the lab is closed,
fails the example.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fuzzkit import budget, net_fds
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.l2 import Ether

from vlab import Lab, LabError, nspool, reaper
from vlab.bridge import Bridge, Port
from vlab.endpoints import VM, Endpoint
from vlab.options import BRIDGE_OPTIONS, PORT_OPTIONS

pytestmark = pytest.mark.vlab
ASSERTING = {"expect", "expect_none", "expect_quiet"}  # AssertionError is their job
OPS_PER_LAB = 14


def fd_count() -> int:
    nspool.empty()  # closed labs' switch namespaces wait there for reuse, on purpose
    reaper.drain()
    return len(os.listdir("/proc/self/fd"))


JUNK: list[Any] = [
    None,
    True,
    0,
    -1,
    5,
    2**64,
    float("nan"),
    float("inf"),
    -0.0,
    1e300,
    "",
    "\n",
    "br0\n",
    "a\0b",
    "x" * 300,
    "é",
    b"bytes",
    [None],
    {"a": 1},
    object(),
]
NAMES = ["br0", "br1", "vm1", "vm2", "h1", "up2", "vnet0", "eth0", "lo", "switch", "upstream"]
MACS = [
    "52:54:00:00:00:01",
    "02:00:00:00:00:02",
    "ff:ff:ff:ff:ff:ff",
    "00:00:00:00:00:00",
    "01:00:5e:00:00:01",
    "52-54-00-00-00-03",
    "52:54:00:00:00",
]
MTUS = [68, 1500, 9000, 65521, 65522, 65535, 67, 0]
TIMEOUTS = [0, 0.01, 0.05]
VALUE_SAMPLES = [0, 1, 2, 10, 0.5, 300, True, False, "forwarding", "disabled", "x", -3, 2**40]


def frames(src: str = "02:00:00:00:00:01") -> st.SearchStrategy[Any]:
    return st.sampled_from(
        [
            Ether(src=src, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / b"fuzz",
            Ether(src=src, dst="02:00:00:00:00:99", type=0x88B5),
            b"\x00" * 13,
            b"\x02" * 14,
            b"\x02" * 70000,
            "not a frame",
            None,
        ]
    )


class World:
    """The lab under test and the objects it has handed out, plus a closed lab's leftovers."""

    def __init__(self, lab: Lab, stale: list[Any]) -> None:
        self.lab = lab
        self.objects: list[Any] = list(stale)

    def bridges(self) -> list[Any]:
        return list(self.lab.bridges.values())

    def endpoints(self) -> list[Any]:
        return list(self.lab.endpoints.values())

    def ports(self) -> list[Any]:
        return [p for br in self.lab.bridges.values() for p in br.ports.values()]

    def receivers(self, kind: type) -> list[Any]:
        """Objects of ``kind`` a method can be called on: this lab's and the stale lab's."""
        mine = {Lab: [self.lab], Bridge: self.bridges(), Port: self.ports()}.get(kind)
        own = self.endpoints() if mine is None else mine
        return own + [o for o in self.objects if isinstance(o, kind)]


def value(data: st.DataObject, world: World, *plausible: Any) -> Any:
    """A plausible value, one of the world's objects, or junk."""
    pools: list[Any] = [*plausible] or [None]
    choice = data.draw(st.integers(0, 9))
    if choice < 7:
        return data.draw(st.sampled_from(pools))
    if choice < 9 and (world.objects or world.endpoints() or world.bridges()):
        return data.draw(
            st.sampled_from(world.objects + world.endpoints() + world.bridges() + world.ports())
        )
    return data.draw(st.sampled_from(JUNK))


def options(data: st.DataObject, world: World, table: dict[str, Any]) -> dict[str, Any]:
    keys = data.draw(st.lists(st.sampled_from([*table, "no_such_option"]), max_size=2, unique=True))
    return {key: value(data, world, *VALUE_SAMPLES) for key in keys}


def call(data: st.DataObject, world: World) -> tuple[str, Callable[[], Any]]:
    """One public call with drawn arguments, as (method name, thunk)."""
    lab = world.lab

    def v(*plausible: Any) -> Any:
        return value(data, world, *plausible)

    br = v(*world.bridges(), "br0")
    ep = v(*world.endpoints(), None)
    kinds = {"lab": Lab, "bridge": Bridge, "port": Port, "endpoint": Endpoint}
    weights = ["lab", "lab", "bridge", "port", "endpoint", "endpoint", "endpoint"]
    target = data.draw(st.sampled_from([k for k in weights if world.receivers(kinds[k])]))
    obj = data.draw(st.sampled_from(world.receivers(kinds[target])))
    if target == "lab":
        lab = obj
        ops: dict[str, Callable[[], Any]] = {
            "bridge": lambda: lab.bridge(v(*NAMES), **options(data, world, BRIDGE_OPTIONS)),
            "vm": lambda: lab.vm(v(*NAMES), bridge=br, mac=v(None, *MACS), mtu=v(None, *MTUS)),
            "host": lambda: lab.host(v(*NAMES), bridge=br, mac=v(None, *MACS), mtu=v(None, *MTUS)),
            "uplink": lambda: lab.uplink(br, mac=v(None, *MACS), mtu=v(None, *MTUS), name=v(None)),
            "ready": lambda: lab.ready(timeout=v(*TIMEOUTS, 1)),
            "settle": lambda: lab.settle(timeout=v(1, 2)),
            "expect_quiet": lambda: lab.expect_quiet(),
            "where": lambda: lab.where(v(*MACS)),
            "describe": lambda: lab.describe(),
            "fdb_text": lambda: lab.fdb_text(),
            "run": lambda: lab.run(v("switch", "upstream", "h1"), v("true", "false"), v("x")),
        }
    elif target == "bridge":
        ops = {
            "set": lambda: obj.set(**options(data, world, BRIDGE_OPTIONS)),
            "options": lambda: obj.options(),
            "n_learned": lambda: obj.n_learned(),
            "port": lambda: obj.port(ep),
            "fdb": lambda: obj.fdb(local=v(False, True)),
            "fdb_entries": lambda: obj.fdb_entries(),
            "fdb_add": lambda: obj.fdb_add(v(*MACS), ep, static=v(True), sticky=v(False)),
            "fdb_del": lambda: obj.fdb_del(v(*MACS), ep),
            "fdb_flush": lambda: obj.fdb_flush(),
            "neigh_add": lambda: obj.neigh_add(v("192.0.2.1", "2001:db8::1", "x"), v(*MACS)),
        }
    elif target == "port":
        ops = {
            "set": lambda: obj.set(**options(data, world, PORT_OPTIONS)),
            "options": lambda: obj.options(),
        }
    else:
        src = obj.mac
        ops = {
            "send": lambda: obj.send(data.draw(frames(src))),
            "expect": lambda: obj.expect(
                data.draw(frames()), timeout=v(*TIMEOUTS), mask=v(None, ["Raw.load"])
            ),
            "expect_none": lambda: obj.expect_none(v(None), mask=v(None)),
            "frames": lambda: obj.frames(),
            "clear": lambda: obj.clear(),
            "set_carrier": lambda: obj.set_carrier(v(True, False)),
            "describe": lambda: obj.describe(),
            "run": lambda: obj.run(v("true", "ip -o link"), timeout=v(1)),
        }
        if isinstance(obj, VM):
            ops["wait_ready"] = lambda: obj.wait_ready(timeout=v(None, 1))
    name = data.draw(st.sampled_from(sorted(ops)))
    return name, ops[name]


@pytest.fixture(autouse=True, scope="module")
def _artifacts_stay_in_pytest_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Labs here have no ``artifacts=``: their failure pcaps would go to /tmp, one dir each.

    One lab is built, settled and run in first, so the process-wide helpers it starts once
    (the CPU barrier's namespace and sockets, the spawning thread) are not counted as leaks.
    """
    before = tempfile.tempdir
    tempfile.tempdir = str(tmp_path_factory.mktemp("fuzz-artifacts"))
    with Lab("warm-up") as lab:
        lab.vm("vm1", bridge=lab.bridge("br0"))
        lab.settle()
        lab.run("switch", "true")
    try:
        yield
    finally:
        tempfile.tempdir = before


def _stale_objects() -> list[Any]:
    """Objects of a lab that is already closed: they must be refused wherever they go."""
    with Lab("stale") as stale:
        br = stale.bridge("br0")
        return [stale, br, stale.vm("vm1", bridge=br), br.port("vnet0")]


@given(data=st.data())
@budget(ci_examples=40)
def test_any_call_succeeds_or_is_a_lab_error(data: st.DataObject) -> None:
    fds, spaces = fd_count(), net_fds()
    ctor: dict[str, Any] = data.draw(
        st.sampled_from(
            [{}, {"name": "fuzz"}, {"name": None}, {"artifacts": 5}, {"quiet": "no"}, {"name": ""}]
        )
    )
    try:
        lab = Lab(**ctor)
    except LabError:
        assert fd_count() == fds
        lab = Lab("fuzz")
    world = World(lab, _stale_objects() if data.draw(st.booleans()) else [])
    steps = data.draw(st.integers(1, OPS_PER_LAB))
    close_at = data.draw(st.integers(0, 2 * steps))  # past the end: never closed early
    try:
        if data.draw(st.booleans()):  # a valid start, so endpoint calls have endpoints
            br = lab.bridge("br0")
            lab.vm("vm1", bridge=br)
            lab.host("h1", bridge=br)
            lab.uplink(br)
        for step in range(steps):
            if step == close_at:
                lab.close()
            name, thunk = call(data, world)
            try:
                thunk()
            except LabError:
                pass
            except AssertionError:
                if name not in ASSERTING:
                    raise
    finally:
        lab.close()
        world.objects.clear()
    assert fd_count() == fds, "a closed lab left fds open"
    assert net_fds() == spaces, "a closed lab left a namespace held"
