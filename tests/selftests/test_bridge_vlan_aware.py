"""Port of tools/testing/selftests/net/forwarding/bridge_vlan_aware.sh, subtests ``ping_ipv4``,
``ping_ipv6``, ``learning``, ``flooding`` (as in bridge_vlan_unaware.sh, on a VLAN-aware
bridge), ``vlan_deletion``, ``extern_learn`` (its ageing wait shortened by a 1 s ageing time),
``other_tpid``, ``8021p`` and ``drop_untagged``. Needs VLAN filtering: a skip elsewhere."""

import time

import pytest
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether

from vlab import Lab

pytestmark = pytest.mark.vlab
MAC = "de:ad:be:ef:13:37"


@pytest.fixture
def net(lab: Lab):
    br = lab.bridge("br0", vlan_filtering=True, ageing_time=10, multicast_snooping=False)
    h1 = lab.host("h1", br, ip=["192.0.2.1/24", "2001:db8:1::1/64"])
    h2 = lab.host("h2", br, ip=["192.0.2.2/24", "2001:db8:1::2/64"])
    return br, h1, h2


def test_ping_and_vlan_deletion(net) -> None:
    br, h1, _h2 = net
    assert h1.ping("192.0.2.2") and h1.ping("2001:db8:1::2")
    br.port(h1).vlan_add(10)
    br.port(h1).vlan_del(10)  # deleting another VLAN leaves the PVID's alone
    assert h1.ping("192.0.2.2") and h1.ping("2001:db8:1::2")


@pytest.mark.parametrize("flip", [False, True])
def test_learning_and_flooding(net, flip: bool) -> None:
    br, h1, h2 = net
    for learning in (True, False):
        br.fdb_flush()
        br.port(h1).set(learning=learning != flip)
        h1.send(Ether(src=MAC, dst="ff:ff:ff:ff:ff:ff"))
        learnt = MAC in br.fdb(vlan=1)
        assert learnt is (learning != flip)
        if flip:
            with pytest.raises(AssertionError):
                assert learnt is learning
    for on in (False, True):
        br.port(h2).set(flood=on != flip)
        frame = Ether(src=h1.mac, dst="02:00:00:00:99:99") / f"flood {on}".encode()
        h1.send(frame)
        h2.expect(frame) if on != flip else h2.expect_none(frame)


def test_extern_learn_roams_but_does_not_age(net) -> None:
    br, h1, h2 = net
    br.set(ageing_time=1)
    br.fdb_add(MAC, h1, static=False, extern_learn=True, vlan=1)
    time.sleep(2.5)  # over twice the ageing time: a learnt entry would be gone
    assert br.fdb(vlan=1)[MAC] == h1.port
    h2.send(Ether(src=MAC, dst="ff:ff:ff:ff:ff:ff") / b"roam")
    assert br.fdb(vlan=1)[MAC] == h2.port


def test_extern_learn_flip_a_learnt_entry_ages(net) -> None:
    br, h1, _h2 = net
    br.set(ageing_time=1)
    h1.send(Ether(src=MAC, dst="ff:ff:ff:ff:ff:ff"))
    assert MAC in br.fdb(vlan=1)
    time.sleep(2.5)
    assert MAC not in br.fdb(vlan=1)  # what the check above rules out for extern_learn


def qinq(src: str) -> Ether:
    """802.1ad VID 3 + 802.1Q VID 5: untagged for an 802.1Q bridge."""
    return Ether(src=src, dst=MAC) / Dot1AD(vlan=3) / Dot1Q(vlan=5, type=0x0800) / (b"\xaa" * 9)


@pytest.mark.parametrize("pvid", [True, False])
def test_other_tpid_is_untagged(net, pvid: bool) -> None:
    br, h1, h2 = net
    if not pvid:  # the flip: no PVID, so the "untagged" frame is dropped
        br.port(h1).vlan_del(1)
    h1.send(qinq(h1.mac))
    if pvid:
        h2.expect(qinq(h1.mac))
        assert br.fdb(vlan=1)[h1.mac] == h1.port  # learnt in the PVID, not in 3 or 5
        assert h1.mac not in br.fdb(vlan=3) and h1.mac not in br.fdb(vlan=5)
    else:
        h2.expect_none(qinq(h1.mac))


def prio_tagged(src: str) -> Ether:
    return Ether(src=src, dst=MAC) / Dot1Q(vlan=0, type=0x0800) / (b"\xaa" * 9)


def untagged(src: str) -> Ether:
    return Ether(src=src, dst=MAC, type=0x0800) / (b"\xaa" * 9)


def test_8021p_accepted_with_any_default_pvid(net) -> None:
    br, h1, h2 = net
    for default in (1, 10):
        br.set(default_pvid=default)
        assert br.port(h1).vlans() == {default: {"pvid": True, "untagged": True}}
        h1.send(prio_tagged(h1.mac))
        h2.expect(untagged(h1.mac))  # egress untagged in the PVID


def both_dropped(h1, h2, flip: bool = False) -> None:
    assert h1.ping("192.0.2.2", timeout=0.3) is flip
    for frame in (untagged(h1.mac), prio_tagged(h1.mac)):
        h1.send(frame)
        if flip:
            h2.expect(untagged(h1.mac))
        else:
            h2.expect_none(untagged(h1.mac))


@pytest.mark.parametrize("flip", [False, True])
def test_drop_untagged(net, flip: bool) -> None:
    """``flip``: with the PVID in place the same checks see the traffic arrive."""
    br, h1, h2 = net
    port = br.port(h1)
    port.vlan_add(1, untagged=True, pvid=flip)  # the default PVID, as a non-PVID VLAN
    both_dropped(h1, h2, flip)
    port.vlan_add(1, pvid=True, untagged=True)
    if not flip:
        port.vlan_del(1)  # VID 1 deleted altogether
        both_dropped(h1, h2)
        port.vlan_add(1, pvid=True, untagged=True)
        br.set(default_pvid=0)  # takes VLAN 1 away from ports that had it as the default
        assert 1 not in port.vlans()
        port.set_up(False)  # down and up again: nothing re-enables untagged reception
        port.set_up(True)
        both_dropped(h1, h2)
        port.detach()  # rejoining without a default PVID brings none
        port.attach(br)
        assert port.vlans() == {}
        both_dropped(h1, h2)
