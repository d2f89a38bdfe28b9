"""Options really change kernel state (read back through pyroute2, an independent decoder) and
really change forwarding (frames); bad options never reach the kernel."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
from pyroute2 import IPRoute
from scapy.layers.l2 import Ether

from vlab import Lab, LabError

pytestmark = pytest.mark.vlab
PROBE = 0x88B5


def probe(src: str, dst: str) -> Ether:
    return Ether(src=src, dst=dst, type=PROBE) / b"opt"


def _slave_or_bridge_data(lab: Lab, name: str, key: str) -> dict[str, Any]:
    """pyroute2's view of a link's bridge data, queried from inside the switch namespace.

    pyroute2 0.9 keeps a socket per *thread*, created where that thread is at first use: so it
    is opened, used and closed entirely inside the namespace.
    """
    with lab._switch.ns.entered(), IPRoute() as ipr:
        link = ipr.get_links(ipr.link_lookup(ifname=name)[0])[0]
        return dict(link.get_attr("IFLA_LINKINFO").get_attr(key)["attrs"])


def br_info(lab: Lab, name: str) -> dict[str, Any]:
    return _slave_or_bridge_data(lab, name, "IFLA_INFO_DATA")


def port_info(lab: Lab, name: str) -> dict[str, Any]:
    return _slave_or_bridge_data(lab, name, "IFLA_INFO_SLAVE_DATA")


def test_bridge_options_reach_the_kernel(lab: Lab) -> None:
    lab.bridge(
        "br0",
        ageing_time=42.5,
        forward_delay=4,
        group_fwd_mask=0x4008,
        multicast_snooping=False,
        multicast_igmp_version=3,
        group_address="01:80:c2:00:00:0e",
    )
    info = br_info(lab, "br0")
    assert info["IFLA_BR_AGEING_TIME"] == 4250  # centiseconds
    assert info["IFLA_BR_FORWARD_DELAY"] == 400
    assert info["IFLA_BR_GROUP_FWD_MASK"] == 0x4008
    assert info["IFLA_BR_MCAST_SNOOPING"] == 0
    assert info["IFLA_BR_MCAST_IGMP_VERSION"] == 3
    assert info["IFLA_BR_GROUP_ADDR"] == "01:80:c2:00:00:0e"


def test_options_pyroute2_cannot_say(lab: Lab) -> None:
    br = lab.bridge("br0", fdb_max_learned=2, no_linklocal_learn=True)
    assert br.options()["fdb_max_learned"] == 2
    assert br.options()["no_linklocal_learn"] is True
    br.set(no_linklocal_learn=False, fdb_max_learned=0)
    assert br.options()["no_linklocal_learn"] is False
    assert br.options()["fdb_max_learned"] == 0


def test_port_options_reach_the_kernel(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm = lab.vm("vm1", bridge=br)
    br.port(vm).set(
        learning=False,
        flood=False,
        mcast_flood=False,
        bcast_flood=False,
        isolated=True,
        hairpin=True,
        group_fwd_mask=0x4,
        neigh_suppress=True,
    )
    info = port_info(lab, vm.port)
    assert info["IFLA_BRPORT_LEARNING"] == 0
    assert info["IFLA_BRPORT_UNICAST_FLOOD"] == 0
    assert info["IFLA_BRPORT_MCAST_FLOOD"] == 0
    assert info["IFLA_BRPORT_BCAST_FLOOD"] == 0
    assert info["IFLA_BRPORT_ISOLATED"] == 1
    assert info["IFLA_BRPORT_MODE"] == 1
    assert info["IFLA_BRPORT_GROUP_FWD_MASK"] == 0x4
    assert info["IFLA_BRPORT_NEIGH_SUPPRESS"] == 1
    br.port(vm).set(locked=True, learning=True, mab=True, state="learning")
    info = port_info(lab, vm.port)
    assert (info["IFLA_BRPORT_LOCKED"], info["IFLA_BRPORT_MAB"]) == (1, 1)
    assert info["IFLA_BRPORT_STATE"] == 2
    assert br.port(vm).options()["state"] == "learning"


def test_flood_off_keeps_unknown_unicast_away(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm1, vm2, vm3 = (lab.vm(f"vm{i}", bridge=br) for i in (1, 2, 3))
    f = probe(vm1.mac, "02:00:00:00:00:77")
    vm1.send(f)  # control: floods to both
    vm2.expect(f)
    vm3.expect(f)
    br.port(vm2).set(flood=False)
    vm1.send(f)
    vm3.expect(f)
    vm2.expect_none()


def test_learning_off_learns_nothing(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm1, vm2 = lab.vm("vm1", bridge=br), lab.vm("vm2", bridge=br)
    br.port(vm1).set(learning=False)
    vm1.send(probe(vm1.mac, vm2.mac))
    vm2.expect(probe(vm1.mac, vm2.mac))
    assert vm1.mac not in br.fdb()
    vm2.send(probe(vm2.mac, vm1.mac))  # control: the other port still learns
    assert br.fdb()[vm2.mac] == vm2.port


def test_ageing_time_zero_disables_learning(lab: Lab) -> None:
    br = lab.bridge("br0", ageing_time=0)
    vm1, vm2, vm3 = (lab.vm(f"vm{i}", bridge=br) for i in (1, 2, 3))
    vm1.send(probe(vm1.mac, vm2.mac))
    vm2.expect(probe(vm1.mac, vm2.mac))
    vm3.expect(probe(vm1.mac, vm2.mac))
    back = probe(vm2.mac, vm1.mac)
    vm2.send(back)
    vm1.expect(back)
    vm3.expect(back)  # nothing was learnt: even the reply floods
    assert br.fdb() == {}


def test_hairpin_reflects_known_unicast(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm1 = lab.vm("vm1", bridge=br)
    br.fdb_add("52:54:00:aa:aa:aa", vm1)
    f = probe(vm1.mac, "52:54:00:aa:aa:aa")
    vm1.send(f)
    vm1.expect_none()  # control: never back out of the ingress port
    br.port(vm1).set(hairpin=True)
    vm1.send(f)
    vm1.expect(f)


def test_static_and_sticky_entries(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm1, vm2 = lab.vm("vm1", bridge=br), lab.vm("vm2", bridge=br)
    br.fdb_add("52:54:00:00:00:aa", vm1)
    br.fdb_add("52:54:00:00:00:bb", vm1, sticky=True)
    entries = {e.mac: e for e in br.fdb_entries()}
    assert entries["52:54:00:00:00:aa"].static and not entries["52:54:00:00:00:aa"].sticky
    assert entries["52:54:00:00:00:bb"].sticky
    vm2.send(probe("52:54:00:00:00:aa", "ff:ff:ff:ff:ff:ff"))
    vm2.send(probe("52:54:00:00:00:bb", "ff:ff:ff:ff:ff:ff"))
    fdb = br.fdb()
    assert fdb["52:54:00:00:00:aa"] == vm2.port  # static entries roam
    assert fdb["52:54:00:00:00:bb"] == vm1.port  # sticky ones do not


def test_no_linklocal_learn_changes_learning(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm1 = lab.vm("vm1", bridge=br)
    lldp = Ether(src=vm1.mac, dst="01:80:c2:00:00:0e", type=0x88CC) / (b"\x00" * 20)
    vm1.send(lldp)
    assert vm1.mac in br.fdb()  # control: link-local frames are learnt from by default
    br.fdb_flush()
    br.set(no_linklocal_learn=True)
    vm1.send(lldp)
    assert vm1.mac not in br.fdb()


def test_fdb_max_learned_caps_learning(lab: Lab) -> None:
    br = lab.bridge("br0", fdb_max_learned=2)
    vm1 = lab.vm("vm1", bridge=br)
    for i in range(4):
        vm1.send(probe(f"52:54:00:00:01:{i:02x}", "ff:ff:ff:ff:ff:ff"))
    assert len(br.fdb()) == 2
    assert br.n_learned() == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ageing": 3}, "did you mean 'ageing_time'"),
        ({"group_fwd_mask": 0x1}, "bits 0-2"),
        ({"forward_delay": 1}, "out of range"),
        ({"stp": "yes"}, "true or false"),
        ({"group_address": "01:80:c2:00:00:01"}, "only 01:80:c2:00:00:00"),
        ({"mac": "zz"}, "not a MAC"),
    ],
)
def test_bad_bridge_options_are_lab_errors(lab: Lab, options: dict[str, Any], message: str) -> None:
    with pytest.raises(LabError, match=message):
        lab.bridge("br0", **options)
    assert "br0" not in lab.bridges
    lab.bridge("br0")  # nothing half-built is left behind under that name


def test_bad_port_options_are_lab_errors(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm = lab.vm("vm1", bridge=br)
    with pytest.raises(LabError, match="valid options: learning"):
        br.port(vm).set(lerning=False)
    with pytest.raises(LabError, match="bit 1"):
        br.port(vm).set(group_fwd_mask=0x2)
    with pytest.raises(LabError, match="disabled, listening"):
        br.port(vm).set(state="sleeping")
    with pytest.raises(LabError, match="not a port of br0"):
        br.port("vnet9")


def test_kernel_refusals_are_lab_errors(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm = lab.vm("vm1", bridge=br)
    with pytest.raises(LabError, match=r"EINVAL|Invalid argument"):
        br.port(vm).set(mab=True)  # mab needs locked: the kernel says EINVAL


def test_bad_names_and_references(lab: Lab) -> None:
    br = lab.bridge("br0")
    with pytest.raises(LabError, match="already used"):
        lab.vm("br0", bridge=br)
    with pytest.raises(LabError, match="1-15 characters"):
        lab.vm("a-very-long-vm-name", bridge=br)
    with pytest.raises(LabError, match="unknown bridge"):
        lab.vm("vm1", bridge="br9")
    with pytest.raises(LabError, match="not a MAC"):
        lab.host("h1", bridge=br, mac="52:54:00")


def test_nothing_touches_the_host_namespace(lab: Lab) -> None:
    before = set(socket.if_nameindex())
    br = lab.bridge("br0")
    lab.vm("vm1", bridge=br)
    lab.host("h1", bridge=br)
    lab.uplink(br)
    assert set(socket.if_nameindex()) == before


def test_ipv6_neighbour_keeps_the_lab_quiet(lab: Lab) -> None:
    """IPv6 goes on for the bridge device alone; its MLD reports stay in the pcap only."""
    br = lab.bridge("br0")
    up = lab.uplink(br)
    br.neigh_add("2001:db8::1", "52:54:00:00:00:aa")
    br.neigh_add("192.0.2.1", "52:54:00:00:00:bb")
    with pytest.raises(LabError, match="not an IPv4 or IPv6 address"):
        br.neigh_add("2001:db8::zz", "52:54:00:00:00:aa")
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline and not any(
        not sent and data[12:14] == b"\x86\xdd" for _t, sent, data in up.log
    ):
        time.sleep(0.05)
    lab.expect_quiet()
    reports = [data for _t, sent, data in up.log if not sent and data[12:14] == b"\x86\xdd"]
    assert reports, "the bridge sent no MLD report: this test no longer shows the filter works"


def test_bad_endpoint_arguments_are_lab_errors_and_build_nothing(lab: Lab) -> None:
    br = lab.bridge("br0")
    for make in (
        lambda: lab.vm("vm1", bridge=br, mtu="9000"),  # type: ignore[arg-type]
        lambda: lab.host("h1", bridge=br, mtu=-1),
        lambda: lab.uplink(br, mtu=1500.5),  # type: ignore[arg-type]
    ):
        with pytest.raises(LabError, match="mtu"):
            make()
    assert br.ports == {} and lab.endpoints == {}
    vm = lab.vm("vm1", bridge=br, mtu=9000)
    with pytest.raises(LabError, match="number of seconds"):
        vm.expect(b"\x00" * 14, timeout="1")  # type: ignore[arg-type]


def test_programs_in_the_lab_fail_as_lab_errors(lab: Lab) -> None:
    lab.bridge("br0")
    assert "br0" in lab.run("switch", "ip", "-o", "link").stdout
    with pytest.raises(LabError, match=r"did not finish within 0\.2 s"):
        lab.run("switch", "sleep", "5", timeout=0.2)
    with pytest.raises(LabError, match="cannot run '/etc/passwd'"):
        lab.run("switch", "/etc/passwd")
    with pytest.raises(LabError, match="nothing to run"):
        lab.run("switch")
    with pytest.raises(LabError, match="unknown node 'nowhere'"):
        lab.run("nowhere", "true")


def test_asking_for_the_default_vlan_unaware_bridge_works_everywhere(lab: Lab) -> None:
    br = lab.bridge("br0", vlan_filtering=False)  # kernels without the feature refuse even "0"
    br.set(vlan_filtering=False)
    assert br.options()["vlan_filtering"] is False
