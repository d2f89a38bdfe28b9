"""Group joins of a bridged host's own stack: the bridge snoops the host's real report and
forwards the group to it (receive filters in general: tests/lab/test_unbridged.py)."""

from __future__ import annotations

import time

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from vlab import Lab
from vlab.mcast_frames import group_mac

pytestmark = pytest.mark.vlab


def groups(br, port: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [e.group for e in br.mdb() if e.port == port]


@pytest.mark.parametrize("group", ["239.1.2.3", "ff0e::1:2"])
@pytest.mark.parametrize("joined", [True, False])
def test_a_hosts_own_join_is_snooped(lab: Lab, group: str, joined: bool) -> None:
    """Not joined (the flip), the group's traffic does not reach the host."""
    br = lab.bridge("br0", multicast_querier=True, multicast_query_response_interval=0.5)
    src, h = lab.vm("src", bridge=br), lab.host("h", bridge=br)
    br.wait_querier()
    if joined:
        h.join(group)
        assert group_mac(group) in h.rx_filter().groups
    deadline = time.monotonic() + 3.0  # the join's report goes out on a timer of its own
    while joined and group not in groups(br, h.port) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (group in groups(br, h.port)) is joined  # with IPv6 its solicited-node group too
    ip = IPv6(src="2001:db8::9", dst=group) if ":" in group else IP(src="192.0.2.9", dst=group)
    frame = Ether(src=src.mac, dst=group_mac(group)) / ip / UDP(dport=5000) / b"data"
    src.send(frame)
    if joined:
        h.expect(frame)
    else:
        h.expect_none(frame)
