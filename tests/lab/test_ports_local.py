"""The bridge device as an endpoint (br.local), backup ports and admin-down ports."""

from __future__ import annotations

import time

import pytest
from scapy.layers.l2 import Ether

from vlab import Lab, LabError

pytestmark = pytest.mark.vlab


def test_local_receives_what_the_bridge_delivers_up_and_sends_through_it(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm1, vm2 = lab.vm("vm1", bridge=br), lab.vm("vm2", bridge=br)
    local = br.local  # it receives from its first use on
    vm2.send(Ether(src=vm2.mac, dst="02:00:00:00:00:99") / b"learn vm2")
    vm1.frames()  # settles: the flood of that frame is consumed
    local.frames()
    to_bridge = Ether(src=vm1.mac, dst=br.mac) / b"for the bridge itself"
    vm1.send(to_bridge)
    local.expect(to_bridge)
    vm2.expect_none(to_bridge)  # delivered up, not forwarded
    other = Ether(src=vm1.mac, dst=vm2.mac) / b"between ports"
    vm1.send(other)
    vm2.expect(other)
    local.expect_none(other)  # known unicast to another port never goes up
    from_bridge = Ether(src=br.mac, dst=vm2.mac) / b"from the bridge"
    local.send(from_bridge)
    vm2.expect(from_bridge)
    vm1.expect_none(from_bridge)
    assert br.local is local
    with pytest.raises(LabError, match="no cable"):
        br.local.set_carrier(False)


@pytest.mark.parametrize("backup", [True, False])
def test_backup_port_takes_a_down_ports_traffic(lab: Lab, backup: bool) -> None:
    """Without a backup port (the flip) the frame is lost: the check at vm2 fails."""
    br = lab.bridge("br0")
    vm1, vm2, vm3 = (lab.vm(n, bridge=br) for n in ("vm1", "vm2", "vm3"))
    mac = "02:00:00:00:00:42"
    br.fdb_add(mac, vm1)
    if backup:
        br.port(vm1).set_backup(vm2)
    assert br.port(vm1).options()["backup_port"] == (vm2.port if backup else None)
    vm1.set_carrier(False)
    frame = Ether(src=vm3.mac, dst=mac) / b"to a port that is down"
    vm3.send(frame)
    if backup:
        vm2.expect(frame)
    else:
        vm2.expect_none(frame)


def test_admin_down_port_keeps_its_carrier_and_forwards_nothing(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm1, vm2 = lab.vm("vm1", bridge=br), lab.vm("vm2", bridge=br)
    br.port(vm2).set_up(False)
    frame = Ether(src=vm1.mac, dst="ff:ff:ff:ff:ff:ff") / b"flood"
    vm1.send(frame)
    vm2.expect_none(frame)
    assert vm2.carrier
    br.port(vm2).set_up(True)
    vm1.send(frame)
    vm2.expect(frame)


def test_bare_port_has_its_mac_as_a_local_entry_and_moves_between_bridges(lab: Lab) -> None:
    br0, br1 = lab.bridge("br0"), lab.bridge("br1")
    mac = "02:00:00:00:00:77"
    port = lab.port(br0, mac=mac)
    entries = {e.mac: e for e in br0.fdb_entries()}
    assert entries[mac].local and entries[mac].port == port.name
    port.detach()
    assert mac not in {e.mac for e in br0.fdb_entries()} and port.name not in br0.ports
    port.attach(br1)
    assert mac in br1.fdb(local=True) and port.bridge is br1
    with pytest.raises(LabError, match="detach"):
        port.attach(br0)


@pytest.mark.parametrize("move", [True, False])
def test_an_endpoints_port_moved_to_another_bridge_forwards_there(lab: Lab, move: bool) -> None:
    """Not moved (the flip), vm2 stays on br0 and never sees vm3's broadcast."""
    br0, br1 = lab.bridge("br0"), lab.bridge("br1")
    vm2, vm3 = lab.vm("vm2", bridge=br0), lab.vm("vm3", bridge=br1)
    if move:
        br0.port(vm2).detach().attach(br1)
        assert vm2.bridge is br1 and br1.port(vm2).name == vm2.port
    frame = Ether(src=vm3.mac, dst="ff:ff:ff:ff:ff:ff") / b"on br1"
    vm3.send(frame)
    if move:
        vm2.expect(frame)
    else:
        vm2.expect_none(frame)


def test_bridge_addresses_make_it_answer_pings(lab: Lab) -> None:
    br = lab.bridge("br0")
    host = lab.host("h", bridge=br, ip=["192.0.2.2/24", "2001:db8::2/64"])
    assert not host.ping("192.0.2.1", timeout=0.2)  # nobody has that address yet
    br.add_address("192.0.2.1/24")
    br.add_address("2001:db8::1/64")
    assert {"192.0.2.1/24", "2001:db8::1/64"} <= set(br.addresses())
    assert host.ping("192.0.2.1") and host.ping("2001:db8::1")


@pytest.mark.parametrize("joined", [True, False])
def test_bridge_device_group_joins_read_back_as_host_joins(lab: Lab, joined: bool) -> None:
    """A group the bridge device joins is on its multicast list and a host join in its mdb;
    not joined (the flip), neither."""
    br = lab.bridge("br0")
    lab.host("h", bridge=br)
    if joined:
        br.local.join("239.1.2.3")
    assert ("01:00:5e:01:02:03" in br.local.rx_filter().groups) is joined
    deadline = time.monotonic() + 2.0  # the join's report goes out on a timer of its own
    while joined and not any(e.port == "br0" for e in br.mdb()) and time.monotonic() < deadline:
        time.sleep(0.01)
    lab.settle()
    host_joins = [e.group for e in br.mdb() if e.port == "br0"]
    assert host_joins == (["239.1.2.3"] if joined else [])


def test_bridge_device_promisc_and_allmulti_read_back(lab: Lab) -> None:
    br = lab.bridge("br0")
    br.local.set_promisc(True)
    br.local.set_allmulti(True)
    flags = lab.run("switch", "ip", "-o", "link", "show", "dev", "br0").stdout
    assert br.local.rx_filter().promisc and br.local.rx_filter().allmulti
    assert "PROMISC" in flags and "ALLMULTI" in flags
    br.local.set_promisc(False)
    assert not br.local.rx_filter().promisc and br.local.rx_filter().allmulti
