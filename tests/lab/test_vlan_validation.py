"""VLAN mistakes are LabErrors before anything is built, on any kernel (VLAN filtering or not).

Each refusal is checked before the kernel could be asked, so these run on the 6.18 host (which
has no VLAN filtering) as well as in the guest; the positive twins live in
tests/kernel/test_vlan_bridge.py, which needs a kernel with the feature.
"""

from __future__ import annotations

import pytest

from vlab import Lab, LabError
from vlab.errors import Unsupported

pytestmark = pytest.mark.vlab


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"default_pvid": 5}, "need a VLAN-aware bridge"),
        ({"vlan_protocol": "802.1ad"}, "need a VLAN-aware bridge"),
        ({"vlan_filtering": False, "default_pvid": 5}, "need a VLAN-aware bridge"),
        ({"vlan_filtering": True, "vlan_protocol": "802.1x"}, "choose '802.1Q'"),
        ({"vlan_filtering": True, "default_pvid": 4095}, "out of range"),
        ({"vlan_filtering": True, "multicast_vlan_snooping": 2}, "true or false"),
    ],
)
def test_bad_vlan_bridge_options_build_nothing(
    lab: Lab, options: dict[str, object], message: str
) -> None:
    with pytest.raises(LabError, match=message) as info:
        lab.bridge("br0", **options)
    assert not isinstance(info.value, Unsupported)
    assert lab.bridges == {}
    assert "br0" not in lab.run("switch", "ip", "-o", "link").stdout


@pytest.mark.parametrize(
    ("vid", "message"),
    [
        (0, "out of range"),
        (4095, "out of range"),
        (True, "not an integer"),
        ("10-5", "runs backwards"),
        ("ten", "not a VLAN or range"),
        (range(10, 20, 2), "step 1"),
        ([], "no VLAN given"),
    ],
)
def test_bad_vids_are_refused_first(lab: Lab, vid: object, message: str) -> None:
    br = lab.bridge("br0")
    vm = lab.vm("vm1", bridge=br)
    with pytest.raises(LabError, match=message):
        br.port(vm).vlan_add(vid)


def test_vlan_calls_on_a_vlan_unaware_bridge_are_refused(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm = lab.vm("vm1", bridge=br)
    for call in (
        lambda: br.port(vm).vlan_add(10),
        lambda: br.port(vm).vlan_del(10),
        lambda: br.port(vm).vlan_set(10, state="blocking"),
        lambda: br.vlan_add(10),
        lambda: br.vlan_global_set(10, multicast_snooping=False),
        lambda: br.fdb(vlan=10),
        lambda: br.fdb_add("02:00:00:00:00:01", vm, vlan=10),
        lambda: br.set(default_pvid=3),
    ):
        with pytest.raises(LabError, match="VLAN-aware") as info:
            call()
        assert not isinstance(info.value, Unsupported)
    # the positive twin on this bridge: the same calls without VLANs work
    br.fdb_add("02:00:00:00:00:01", vm)
    assert br.fdb()["02:00:00:00:00:01"] == vm.port


def test_one_pvid_per_port(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm = lab.vm("vm1", bridge=br)
    with pytest.raises(LabError, match="a port has one PVID"):
        br.port(vm).vlan_add("10-12", pvid=True)
    with pytest.raises(LabError, match="pvid='yes'"):
        br.port(vm).vlan_add(10, pvid="yes")


def test_fdb_and_where_take_one_vlan(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm = lab.vm("vm1", bridge=br)
    with pytest.raises(LabError, match="one VLAN ID"):
        br.fdb_add("02:00:00:00:00:01", vm, vlan="10-20")  # type: ignore[arg-type]
    with pytest.raises(LabError, match="one VLAN ID"):
        lab.where("02:00:00:00:00:01", vlan=[10])  # type: ignore[arg-type]
    with pytest.raises(LabError, match="out of range"):
        lab.where("02:00:00:00:00:01", vlan=5000)


def test_host_vlan_arguments_are_checked_before_a_link_is_made(lab: Lab) -> None:
    br = lab.bridge("br0")
    h = lab.host("h1", bridge=br)
    before = h.run("ip", "-o", "link").stdout
    for kwargs, message in (
        ({"vid": 0}, "out of range"),
        ({"vid": "10"}, "one VLAN ID"),
        ({"vid": 10, "ip": "192.0.2.1"}, "prefix"),
        ({"vid": 10, "protocol": "802.1x"}, "choose '802.1Q'"),
    ):
        with pytest.raises(LabError, match=message):
            h.vlan(**kwargs)  # type: ignore[arg-type]
    assert h.run("ip", "-o", "link").stdout == before
