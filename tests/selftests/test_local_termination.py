"""Port of tools/testing/selftests/net/forwarding/local_termination.sh, subtests ``standalone``
and ``vlan_unaware_bridge``: which frames reach a standalone interface (``h1.peer``) and a
bridge device (``br.local``): unicast to its own MAC, to a secondary MAC (a macvlan upper) and
to unknown MACs, multicast to joined and unknown groups, in promiscuous and all-multicast mode,
and (standalone) PTP over L2, IPv4 and IPv6. The script's pings to a chosen MAC are sent as the
frames they are. VLAN subtests are not ported."""

import contextlib

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from vlab import Lab
from vlab.mcast_frames import group_mac

pytestmark = pytest.mark.vlab
MACVLAN, UNKNOWN_UC = (
    "00:00:de:ad:be:ef",
    ["de:ad:be:ef:ee:03", "de:ad:be:ef:ee:04", "de:ad:be:ef:ee:05"],
)
JOINED_V4, UNKNOWN_V4 = "225.1.2.3", ["225.1.2.4", "225.1.2.5", "225.1.2.6"]
JOINED_V6, UNKNOWN_V6 = "ff2e::102:304", ["ff2e::102:305", "ff2e::102:306", "ff2e::102:307"]
PTP_L2 = [("01:1b:19:00:00:00", [0x00, 0x08]), ("01:80:c2:00:00:0e", [0x02])]
PTP_IP = [("224.0.1.129", [0x00, 0x08]), ("224.0.0.107", [0x02])]
PTP_IP += [("ff0e::181", [0x00, 0x08]), ("ff02::6b", [0x02])]


def run_test(lab: Lab, h1, rcv, unicast_flt: bool, ptp: bool) -> None:  # type: ignore[no-untyped-def]
    seen, unseen = [], []

    def send(frame, received=True):  # type: ignore[no-untyped-def]
        h1.send(frame)
        (seen if received else unseen).append(frame)

    @contextlib.contextmanager
    def while_on(on, off):  # type: ignore[no-untyped-def]
        on()
        yield
        lab.settle()  # every frame sent meanwhile has reached rcv
        off()

    def uc(dmac):  # type: ignore[no-untyped-def]
        return Ether(src=h1.mac, dst=dmac) / IP(src="192.0.2.1", dst="192.0.2.2") / ICMP()

    def mc(group, body=b"mc", dst=None):  # type: ignore[no-untyped-def]
        ip = (
            IPv6(src="2001:db8:1::1", dst=group) if ":" in group else IP(src="192.0.2.1", dst=group)
        )
        return Ether(src=h1.mac, dst=dst or group_mac(group)) / ip / UDP(dport=319) / body

    send(uc(rcv.mac))
    send(uc(MACVLAN), MACVLAN in rcv.rx_filter().macs)
    send(uc(UNKNOWN_UC[0]), not unicast_flt)
    with while_on(lambda: rcv.set_promisc(True), lambda: rcv.set_promisc(False)):
        for frame in (uc(UNKNOWN_UC[1]), mc(UNKNOWN_V4[1]), mc(UNKNOWN_V6[1])):
            send(frame)
    for group in (JOINED_V4, JOINED_V6):
        with while_on(lambda: rcv.join(group), lambda: rcv.leave(group)):  # noqa: B023
            send(mc(group))
    send(mc(UNKNOWN_V4[0]))  # the script's xfail: no querier, so flooded, filtered by nobody
    send(mc(UNKNOWN_V6[0]))
    with while_on(lambda: rcv.set_allmulti(True), lambda: rcv.set_allmulti(False)):
        send(uc(UNKNOWN_UC[2]), not unicast_flt)
        send(mc(UNKNOWN_V4[2]))
        send(mc(UNKNOWN_V6[2]))
    for group, kinds in PTP_L2 + PTP_IP if ptp else []:
        with while_on(lambda: rcv.join(group), lambda: rcv.leave(group)):  # noqa: B023
            for kind in kinds:
                ptp_msg = bytes([kind, 2]) + bytes(42)
                if group.count(":") == 5:
                    send(Ether(src=h1.mac, dst=group, type=0x88F7) / ptp_msg)
                else:
                    send(mc(group, ptp_msg))
    for frame in seen:
        rcv.expect(frame)
    for frame in unseen:
        rcv.expect_none(frame)


def test_standalone(lab: Lab) -> None:
    h1 = lab.host("h1", bridge=None)
    h1.peer.add_mac(MACVLAN)
    run_test(lab, h1, h1.peer, unicast_flt=False, ptp=True)  # a veth filters no unicast


def test_standalone_catches_frames_that_never_reach_it(lab: Lab) -> None:
    h1, h2 = lab.host("h1", bridge=None), lab.host("h2", bridge=None)
    with pytest.raises(AssertionError):
        run_test(lab, h1, h2.peer, unicast_flt=False, ptp=False)


@pytest.mark.parametrize("secondary", [True, False])
def test_vlan_unaware_bridge(lab: Lab, secondary: bool) -> None:
    """Without the secondary MAC (the flip) the bridge device is not promiscuous: unicast to
    that MAC and to unknown ones no longer reaches it, unless in promiscuous mode."""
    br = lab.bridge("br0", mac="00:00:de:ad:be:ee")
    h1 = lab.host("h1", bridge=br)
    if secondary:
        br.local.add_mac(MACVLAN)
    assert br.local.rx_filter().promiscuity == int(secondary)
    run_test(lab, h1, br.local, unicast_flt=not secondary, ptp=False)
