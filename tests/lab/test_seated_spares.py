"""Spares seated in a reused namespace's bridge (vlab.nsspares): a lab takes them where they sit.

A closed lab's taps and uplink veth stay ports of the dormant bridge, down; the next lab that
attaches them in the order they are numbered changes nothing but their MAC and state. Whatever
else it does, the bridge, its ports and its forwarding must be those of a fresh lab built the
same way: port numbers, port options, local fdb entries, the bridge's MTU, frames sent to a MAC
that a spare nobody took still has.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import poolkit
import pytest
from scapy.layers.l2 import Ether

from vlab import Lab, nspool

pytestmark = [pytest.mark.vlab, pytest.mark.usefixtures("pool")]

BRIDGE_MAC = "02:00:00:00:cc:01"
# what ticks, counts or numbers links, and:
LEAVE_OUT = (
    poolkit.TICKING
    | poolkit.IFINDEX
    | {
        "link_netnsid",
        "tso_max_size",  # see vlab/nspool.py: a bridge that once had ports, until one joins
        # set by the kernel's deferred link-watch work, up to a second after a change, so it
        # races a view taken right after the build (a CI run under load once saw br0 and vnet2
        # UP where the fresh lab still said UNKNOWN); what it settles to: test_nspool.py
        "operstate",
    }
)


def view(lab: Lab) -> dict[str, Any]:
    """The bridge and its ports as the tools show them (the uplink port's random MAC named),
    once the lab is ready, as a test's first send finds it.

    Right after a build, a port whose carrier just came on may still be ``disabled`` and the
    bridge NO-CARRIER: the bridge acts on carrier in deferred link-watch work, which a loaded
    machine runs late (a CI run so caught the reused lab's uplink port, not the fresh one's).
    Both labs are read after ``ready()``; what a build must leave is what sending then finds.
    """
    lab.ready()
    ports = lab.bridges["br0"].ports
    names = {p.mac: f"mac of {p.name}" for p in ports.values() if p.name.startswith("eth")}

    def js(*argv: str) -> Any:
        text = lab.run("switch", *argv).stdout or "[]"
        for mac, name in names.items():
            text = text.replace(mac, name)
        return poolkit.clean(json.loads(text), LEAVE_OUT)

    return {
        "links": js("ip", "-d", "-j", "link", "show"),
        "ports": js("bridge", "-d", "-j", "link", "show"),
        "fdb": js("bridge", "-j", "fdb", "show", "br", "br0"),
        "vlans": js("bridge", "-j", "vlan", "show"),
    }


def previous(lab: Lab) -> None:
    """What the lab before left: three VMs' taps and an uplink's veth, seated in that order."""
    br = lab.bridge("br0", mac=BRIDGE_MAC)
    for i in range(3):
        lab.vm(f"vm{i}", bridge=br, mac=f"52:54:00:00:cc:{i:02x}")
    lab.uplink(br)


def smaller(lab: Lab) -> None:
    br = lab.bridge("br0", mac=BRIDGE_MAC)
    lab.vm("vm0", bridge=br, mac="52:54:00:00:cc:00")
    lab.uplink(br)


def uplink_first(lab: Lab) -> None:
    br = lab.bridge("br0", mac=BRIDGE_MAC)
    lab.uplink(br)
    for i in range(3):
        lab.vm(f"vm{i}", bridge=br, mac=f"52:54:00:00:cc:{i:02x}")


def jumbo(lab: Lab) -> None:
    br = lab.bridge("br0", mac=BRIDGE_MAC)
    for i in range(2):
        lab.vm(f"vm{i}", bridge=br, mac=f"52:54:00:00:cc:{i:02x}", mtu=9000)


def with_a_bare_port(lab: Lab) -> None:
    br = lab.bridge("br0", mac=BRIDGE_MAC)
    lab.vm("vm0", bridge=br, mac="52:54:00:00:cc:00")
    lab.port(br, mac="02:00:00:00:cc:99")
    lab.vm("vm1", bridge=br, mac="52:54:00:00:cc:01")


def with_port_options(lab: Lab) -> None:
    previous(lab)
    lab.bridges["br0"].ports["vnet1"].set(learning=False, flood=False, priority=5)


def with_a_port_moved_out_and_back(lab: Lab) -> None:
    previous(lab)
    port = lab.bridges["br0"].ports["vnet0"]
    port.detach()
    port.attach(lab.bridges["br0"])


SHAPES: dict[str, Callable[[Lab], None]] = {
    "the same": previous,
    "smaller": smaller,
    "uplink first": uplink_first,
    "jumbo MTU": jumbo,
    "a bare port between": with_a_bare_port,
}
# labs whose ports leave the state of a fresh port behind: the next lab must not see it
BEFORE: dict[str, Callable[[Lab], None]] = {
    "a lab like it": previous,
    "port options set": with_port_options,
    "a port moved out and back": with_a_port_moved_out_and_back,
}


def fresh_view(shape: Callable[[Lab], None]) -> dict[str, Any]:
    pool = nspool.pool()
    pool.enabled = False
    try:
        with Lab() as lab:
            shape(lab)
            return view(lab)
    finally:
        pool.enabled = True


@pytest.mark.parametrize("before", list(BEFORE))
@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_lab_on_seated_spares_is_a_fresh_lab(before: str, shape: str) -> None:
    pool = nspool.pool()
    expected = fresh_view(SHAPES[shape])
    with Lab() as first:
        BEFORE[before](first)
    assert pool.drain()
    assert pool.stats.get("reused", 0) >= 1, pool.last_discard
    with Lab() as lab:
        assert lab._shell is not None and lab._shell.seats  # the spares sit in its bridge
        SHAPES[shape](lab)
        assert view(lab) == expected


def test_the_same_lab_again_joins_no_port_to_the_bridge() -> None:
    """The point of seating: a lab like the one before takes every spare where it sits."""
    pool = nspool.pool()
    with Lab() as first:
        previous(first)
    assert pool.drain()
    with Lab() as lab:
        assert lab._shell is not None
        seats = dict(lab._shell.seats)
        previous(lab)
        assert lab._shell.seated_taken == len(seats) == 4
        assert lab._shell.seats == {}


@pytest.mark.parametrize("released", [True, False], ids=["released", "control"])
def test_a_frame_to_a_mac_an_untaken_spare_kept_is_flooded(released: bool) -> None:
    """vnet2, which the smaller lab does not take, still has the MAC the lab before gave it; as a
    port of the bridge it would have a local fdb entry for it, and the bridge would keep a frame
    sent there. The lab's first frame has the seated spares leave first, so the frame is
    flooded as in a fresh bridge. The control leaves them seated: the frame never comes."""
    pool = nspool.pool()
    with Lab() as first:
        previous(first)
        old_mac = first.bridges["br0"].ports["vnet2"].mac
    assert pool.drain()
    with Lab() as lab:
        br = lab.bridge("br0", mac=BRIDGE_MAC)
        vm0 = lab.vm("vm0", bridge=br)
        vm1 = lab.vm("vm1", bridge=br)
        assert lab._shell is not None and lab._shell.seats  # vnet2 and eth0 still sit there
        if not released:
            lab._guard.settle = None
        frame = bytes(Ether(dst=old_mac, src=vm1.mac, type=0x88B5)) + b"s" * 46
        vm1.send(frame)
        if released:
            vm0.expect(frame)
        else:
            vm0.expect_none(frame)
