"""Port of tools/testing/selftests/net/forwarding/bridge_igmp.sh, subtests
``v2reportleave_test``, ``v3include_test``, ``v3inc_allow_test`` and ``v3inc_block_test``
(the other IGMPv3 state transitions are not ported yet)."""

import time

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from vlab import Lab
from vlab import mcast_frames as mf

pytestmark = pytest.mark.vlab
GROUP, GROUP_MAC = "239.10.10.10", "01:00:5e:0a:0a:0a"


def build(lab: Lab, querier: bool = True):
    opts = {"multicast_query_response_interval": 0.3, "multicast_last_member_interval": 0.1}
    br = lab.bridge("br0", multicast_querier=querier, **opts)
    h1, h2 = lab.vm("h1", bridge=br), lab.vm("h2", bridge=br)
    if querier:
        br.wait_querier()
    return br, h1, h2


@pytest.fixture
def net(lab: Lab):
    return build(lab)


def until(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.01)


def seen(sender, receiver, src: str = "192.0.2.1") -> bool:
    frame = Ether(src=sender.mac, dst=GROUP_MAC) / IP(src=src, dst=GROUP) / UDP(dport=4096)
    sender.send(frame)
    sender.lab.settle()
    got = [f for f in receiver.frames() if bytes(f) == bytes(frame)]
    return bool(got)


def report(host, rtype: int, sources: list[str]) -> None:
    host.send(mf.igmp_v3(host.mac, rtype, GROUP, sources))
    host.lab.settle()


def sources(br) -> set[str]:
    star = [e for e in br.mdb() if e.group == GROUP and e.source is None]
    return {s.address for e in star for s in e.sources}


@pytest.mark.parametrize("querier", [True, False])
def test_v2reportleave(lab: Lab, querier: bool) -> None:
    """Without a querier (the flip) the group is flooded to h2 after it left: the check fails."""
    br, h1, h2 = build(lab, querier)
    h2.send(mf.igmp_v2(h2.mac, GROUP))
    lab.settle()
    assert any(e.group == GROUP and e.port == h2.port for e in br.mdb())
    assert seen(h1, h2)
    h2.send(mf.igmp_v2(h2.mac, GROUP, leave=True))
    until(lambda: not any(e.group == GROUP for e in br.mdb()))
    if querier:
        assert not any(e.group == GROUP for e in br.mdb()) and not seen(h1, h2)
    else:
        assert seen(h1, h2)  # what "not seen" above rules out


def include(br, h1) -> None:
    br.set(multicast_igmp_version=3)
    report(h1, mf.IS_INCLUDE, ["192.0.2.1", "192.0.2.2", "192.0.2.3"])
    star = next(e for e in br.mdb() if e.group == GROUP and e.source is None)
    assert star.mode == "include" and all(s.timer > 0 for s in star.sources)


def check_fwd(br, h1, h2, yes: set[str], no: set[str]) -> None:
    assert sources(br) == yes
    assert {e.source for e in br.mdb() if e.source and not e.flags & 8} == yes  # not blocked
    assert all(seen(h2, h1, s) for s in yes) and not any(seen(h2, h1, s) for s in no)


def test_v3include(net) -> None:
    br, h1, h2 = net
    include(br, h1)
    check_fwd(br, h1, h2, {"192.0.2.1", "192.0.2.2", "192.0.2.3"}, {"192.0.2.100"})


def test_v3inc_allow(net) -> None:
    br, h1, h2 = net
    include(br, h1)
    report(h1, mf.ALLOW, ["192.0.2.10", "192.0.2.11", "192.0.2.12"])
    X = {"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.10", "192.0.2.11", "192.0.2.12"}
    check_fwd(br, h1, h2, X, {"192.0.2.100"})


@pytest.mark.parametrize("block", [True, False])
def test_v3inc_block(net, block: bool) -> None:
    """``block=False`` is the flip: 192.0.2.1 stays, and the source-list check fails."""
    br, h1, h2 = net
    include(br, h1)
    if block:
        report(h1, mf.BLOCK, ["192.0.2.1", "192.0.2.20", "192.0.2.30"])
    until(lambda: sources(br) == {"192.0.2.2", "192.0.2.3"})
    if block:
        check_fwd(br, h1, h2, {"192.0.2.2", "192.0.2.3"}, {"192.0.2.100", "192.0.2.1"})
    else:
        with pytest.raises(AssertionError):
            check_fwd(br, h1, h2, {"192.0.2.2", "192.0.2.3"}, {"192.0.2.100", "192.0.2.1"})
