"""Port of tools/testing/selftests/net/forwarding/bridge_mld.sh, subtests ``mldv2include_test``
and ``mldv2inc_allow_test`` (the other MLDv2 transitions are not ported yet). It needs the MLD
querier, which in a quiet lab works only since vlab gives the bridge a link-local address."""

import pytest
from scapy.layers import inet6 as v6
from scapy.layers.inet import UDP
from scapy.layers.l2 import Ether

from vlab import Lab
from vlab import mcast_frames as mf

pytestmark = pytest.mark.vlab
GROUP, GROUP_MAC = "ff02::cc", "33:33:00:00:00:cc"
X = {"2001:db8:1::1", "2001:db8:1::2", "2001:db8:1::3"}


def build(lab: Lab, querier: bool = True):
    opts = {"multicast_mld_version": 2, "multicast_query_response_interval": 0.3}
    br = lab.bridge("br0", multicast_querier=querier, **opts)
    h1, h2 = lab.vm("h1", bridge=br), lab.vm("h2", bridge=br)
    if querier:
        br.wait_querier()
    return br, h1, h2


def report(host, rtype: int, sources: set[str]) -> None:
    host.send(mf.mld_v2(host.mac, rtype, GROUP, sources))
    host.lab.settle()


def seen(sender, receiver, src: str) -> bool:
    frame = Ether(src=sender.mac, dst=GROUP_MAC) / v6.IPv6(src=src, dst=GROUP) / UDP(dport=4096)
    sender.send(frame)
    sender.lab.settle()
    return any(bytes(f) == bytes(frame) for f in receiver.frames())


def check(br, h1, h2, yes: set[str]) -> None:
    star = next(e for e in br.mdb() if e.group == GROUP and e.source is None)
    assert star.mode == "include" and {s.address for s in star.sources} >= yes
    assert all(s.timer > 0 for s in star.sources)
    assert yes <= {e.source for e in br.mdb() if e.group == GROUP and e.source}
    assert all(seen(h2, h1, s) for s in yes) and not seen(h2, h1, "2001:db8:1::100")


@pytest.mark.parametrize("querier", [True, False])
def test_mldv2include(lab: Lab, querier: bool) -> None:
    """Without a querier (the flip) the group is flooded from any source: the check fails."""
    br, h1, h2 = build(lab, querier)
    report(h1, mf.IS_INCLUDE, X)
    if querier:
        check(br, h1, h2, X)
    else:
        with pytest.raises(AssertionError):
            check(br, h1, h2, X)


def test_mldv2inc_allow(lab: Lab) -> None:
    br, h1, h2 = build(lab)
    report(h1, mf.IS_INCLUDE, X)
    allowed = {"2001:db8:1::10", "2001:db8:1::11", "2001:db8:1::12"}
    report(h1, mf.ALLOW, allowed)
    check(br, h1, h2, X | allowed)
