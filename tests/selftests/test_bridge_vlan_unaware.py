"""Port of tools/testing/selftests/net/forwarding/bridge_vlan_unaware.sh, subtests
``ping_ipv4``, ``ping_ipv6``, ``learning`` and ``flooding`` (lib.sh's learning_test and
flood_test, without their ageing wait: an fdb flush stands for it)."""

import pytest
from scapy.layers.l2 import Ether

from vlab import Lab

pytestmark = pytest.mark.vlab


@pytest.fixture
def net(lab: Lab):
    br = lab.bridge("br0", ageing_time=10, multicast_snooping=False)
    h1 = lab.host("h1", br, ip=["192.0.2.1/24", "2001:db8:1::1/64"])
    h2 = lab.host("h2", br, ip=["192.0.2.2/24", "2001:db8:1::2/64"])
    return br, h1, h2


def test_ping_ipv4_ipv6(net) -> None:
    _br, h1, _h2 = net
    assert h1.ping("192.0.2.2") and h1.ping("2001:db8:1::2")


@pytest.mark.parametrize("flip", [False, True])
def test_learning(net, flip: bool) -> None:
    br, h1, h2 = net
    mac = "de:ad:be:ef:13:37"
    for learning in (True, False, True):
        br.fdb_flush()
        br.port(h1).set(learning=learning != flip)
        h1.send(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff"))
        h2.send(Ether(src=h2.mac, dst=mac) / b"to the learnt port only")
        if flip:
            with pytest.raises(AssertionError):
                assert (mac in br.fdb()) is learning
            continue
        assert (mac in br.fdb()) is learning
        h1.expect(Ether(src=h2.mac, dst=mac) / b"to the learnt port only")


@pytest.mark.parametrize(
    ("option", "dst"), [("flood", "02:00:00:00:99:99"), ("mcast_flood", "01:00:5e:00:00:99")]
)
@pytest.mark.parametrize("flip", [False, True])
def test_flooding(net, option: str, dst: str, flip: bool) -> None:
    br, h1, h2 = net
    for on in (False, True):
        br.port(h2).set(**{option: on != flip})
        frame = Ether(src=h1.mac, dst=dst) / f"flood {option} {on}".encode()
        h1.send(frame)
        if flip:
            with pytest.raises(AssertionError):
                h2.expect(frame, timeout=0.2) if on else h2.expect_none(frame)
        else:
            h2.expect(frame) if on else h2.expect_none(frame)
