"""Misuse of the public API: after close, wrong types and values, half-built state.

Every mistake here must end in a :class:`vlab.LabError` that names the fix, before anything is
built, and leave the lab exactly as it was (a retry works). A closed lab's objects must never
reach into whatever lab reuses their fd numbers.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from scapy.layers.l2 import Ether

from vlab import Lab, LabError, nspool, reaper
from vlab.errors import Unsupported

pytestmark = pytest.mark.vlab

BCAST = "ff:ff:ff:ff:ff:ff"


def probe(src: str, payload: bytes = b"probe") -> Ether:
    return Ether(src=src, dst="02:00:00:00:00:99", type=0x88B5) / payload


def switch_links(lab: Lab) -> list[str]:
    out = lab.run("switch", "ip", "-o", "link", "show").stdout.splitlines()
    return sorted(line.split(":")[1].strip().split("@")[0] for line in out)


def fd_count() -> int:
    nspool.empty()  # earlier labs' switch namespaces, reset and pooled in the background
    reaper.drain()  # packet sockets are closed in the background
    return len(os.listdir("/proc/self/fd"))


# --- 1. use after close ------------------------------------------------------------------------


def _closed_calls(lab: Lab) -> dict[str, Callable[[], Any]]:
    br = lab.bridge("br0")
    vm = lab.vm("vm1", bridge=br)
    host = lab.host("h1", bridge=br)
    up = lab.uplink(br)
    port = br.port(vm)
    f = probe(vm.mac)
    calls: dict[str, Callable[[], Any]] = {
        "lab.bridge": lambda: lab.bridge("br1"),
        "lab.vm": lambda: lab.vm("vm2", bridge=br),
        "lab.host": lambda: lab.host("h2", bridge=br),
        "lab.uplink": lambda: lab.uplink(br, name="up2"),
        "lab.ready": lambda: lab.ready(),
        "lab.settle": lambda: lab.settle(),
        "lab.expect_quiet": lambda: lab.expect_quiet(),
        "lab.where": lambda: lab.where(vm.mac),
        "lab.fdb_text": lambda: lab.fdb_text(),
        "lab.run": lambda: lab.run("switch", "true"),
        "lab.guest_dir": lambda: lab.guest_dir(),
        "br.set": lambda: br.set(ageing_time=10),
        "br.options": lambda: br.options(),
        "br.n_learned": lambda: br.n_learned(),
        "br.port": lambda: br.port(vm),
        "br.fdb": lambda: br.fdb(),
        "br.fdb_entries": lambda: br.fdb_entries(),
        "br.fdb_add": lambda: br.fdb_add("02:00:00:00:00:42", vm),
        "br.fdb_del": lambda: br.fdb_del("02:00:00:00:00:42", vm),
        "br.fdb_flush": lambda: br.fdb_flush(),
        "br.neigh_add": lambda: br.neigh_add("192.0.2.1", "02:00:00:00:00:42"),
        "port.set": lambda: port.set(learning=False),
        "port.options": lambda: port.options(),
        "vm.wait_ready": lambda: vm.wait_ready(),
        "vm.run": lambda: vm.run("true"),
        "host.run": lambda: host.run("true"),
        "up.run": lambda: up.run("true"),
    }
    for ep in (vm, host, up):
        calls[f"{ep.name}.send"] = lambda ep=ep: ep.send(f)
        calls[f"{ep.name}.expect"] = lambda ep=ep: ep.expect(f, timeout=0)
        calls[f"{ep.name}.expect_none"] = lambda ep=ep: ep.expect_none()
        calls[f"{ep.name}.frames"] = lambda ep=ep: ep.frames()
        calls[f"{ep.name}.clear"] = lambda ep=ep: ep.clear()
        calls[f"{ep.name}.set_carrier"] = lambda ep=ep: ep.set_carrier(False)
    return calls


def test_every_method_of_a_closed_lab_raises_lab_error() -> None:
    lab = Lab("closed")
    calls = _closed_calls(lab)
    lab.close()
    wrong = {}
    for name, call in calls.items():
        try:
            call()
        except LabError as exc:
            if "lab 'closed' is closed" not in str(exc):
                wrong[name] = f"LabError without the closed note: {exc}"
        except BaseException as exc:  # the point is what else escapes
            wrong[name] = f"{type(exc).__name__}: {exc}"
        else:
            wrong[name] = "succeeded"
    assert wrong == {}
    lab.close()  # idempotent
    assert "vm1" in lab.describe()  # post-mortem text (failure reports) stays available


def test_closed_endpoint_never_reaches_the_lab_that_reuses_its_fds() -> None:
    old = Lab("old")
    old_br = old.bridge("br0")
    old_vm = old.vm("vm1", bridge=old_br)
    old_host = old.host("h1", bridge=old_br)
    old.ready()
    old.close()
    with Lab("new") as new:
        br = new.bridge("br0")
        vm = new.vm("vm1", bridge=br)
        host = new.host("h1", bridge=br)
        new.ready()
        f = probe(host.mac, b"for the new lab")
        host.send(f)
        new.settle()
        for call in (old_vm.clear, old_host.clear, lambda: old_vm.send(probe(old_vm.mac))):
            with pytest.raises(LabError, match="is closed"):
                call()
        assert vm.expect(f).load == b"for the new lab"  # not eaten by the old endpoint
        vm.expect_none()  # and nothing injected by it
        host.expect_none()


def test_expect_waiting_in_a_thread_ends_with_lab_error_when_the_lab_closes() -> None:
    old = Lab("old")
    br = old.bridge("br0")
    waiter = old.vm("vm1", bridge=br)
    old.ready()
    outcome: list[BaseException | None] = []

    def wait() -> None:
        try:
            waiter.expect(probe("02:00:00:00:00:01"), timeout=10)
            outcome.append(None)
        except BaseException as exc:  # recorded and asserted below
            outcome.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.2)
    start = time.monotonic()
    old.close()
    with Lab("new") as new:  # its tap likely gets the waiter's old fd number
        nbr = new.bridge("br0")
        vm = new.vm("vm1", bridge=nbr)
        host = new.host("h1", bridge=nbr)
        f = Ether(src=host.mac, dst=BCAST, type=0x88B5) / b"x"
        host.send(f)
        thread.join(5)
        assert not thread.is_alive(), "expect() still waiting after its lab closed"
        assert time.monotonic() - start < 3
        vm.expect(f)  # the new lab's frame was not read by the old lab's waiter
    assert len(outcome) == 1 and isinstance(outcome[0], LabError), outcome
    assert "is closed" in str(outcome[0])


# --- 8. raw exceptions for user mistakes --------------------------------------------------------

MISTAKES: dict[str, tuple[Callable[[Any], Any], str]] = {
    "expect timeout nan": (lambda t: t["vm"].expect(t["f"], timeout=float("nan")), "timeout"),
    "expect timeout inf": (lambda t: t["vm"].expect(t["f"], timeout=float("inf")), "timeout"),
    "expect timeout 1e300": (lambda t: t["vm"].expect(t["f"], timeout=1e300), "timeout"),
    "expect timeout -1": (lambda t: t["vm"].expect(t["f"], timeout=-1), "timeout"),
    "settle timeout None": (lambda t: t["lab"].settle(timeout=None), "timeout"),
    "settle timeout nan": (lambda t: t["lab"].settle(timeout=float("nan")), "timeout"),
    "settle timeout -1": (lambda t: t["lab"].settle(timeout=-1), "timeout"),
    "ready timeout None": (lambda t: t["lab"].ready(timeout=None), "timeout"),
    "ready timeout inf": (lambda t: t["lab"].ready(timeout=float("inf")), "timeout"),
    "mask [None]": (lambda t: t["vm"].expect(t["f"], mask=[None]), "field name"),
    "mask 5": (lambda t: t["vm"].expect(t["f"], mask=5), "mask="),
    "fdb_add to None": (lambda t: t["br"].fdb_add("02:00:00:00:00:42", None), "port(None)"),
    "port 5": (lambda t: t["br"].port(5), "give an endpoint"),
    "set_carrier no": (lambda t: t["vm"].set_carrier("no"), "True or False"),
    "set_carrier None": (lambda t: t["host"].set_carrier(None), "True or False"),
    "run int argument": (lambda t: t["lab"].run("switch", "echo", 5), "give strings"),
    "run NUL argument": (lambda t: t["lab"].run("switch", "echo", "a\0b"), "NUL"),
    "host run NUL": (lambda t: t["host"].run("echo", "a\0b"), "NUL"),
    "run node None": (lambda t: t["lab"].run(None, "true"), "unknown node"),
    "run timeout nan": (lambda t: t["lab"].run("switch", "true", timeout=float("nan")), "timeout"),
    "Lab artifacts 5": (lambda t: Lab(artifacts=5), "directory path"),
    "Lab name None": (lambda t: Lab(name=None), "printable string"),
    "Lab name empty": (lambda t: Lab(name=""), "printable string"),
    "Lab quiet no": (lambda t: Lab(quiet="no"), "True or False"),
}


@pytest.fixture
def things(lab: Lab) -> dict[str, Any]:
    br = lab.bridge("br0")
    vm = lab.vm("vm1", bridge=br)
    host = lab.host("h1", bridge=br)
    return {"lab": lab, "br": br, "vm": vm, "host": host, "f": probe(vm.mac)}


@pytest.mark.parametrize("case", list(MISTAKES))
def test_user_mistake_is_a_lab_error_naming_the_fix(things: dict[str, Any], case: str) -> None:
    call, hint = MISTAKES[case]
    before = fd_count()
    with pytest.raises(LabError) as caught:
        call(things)
    assert hint in str(caught.value)
    assert not isinstance(caught.value, Unsupported)
    assert fd_count() == before  # a refused Lab() built nothing either


def test_endpoint_of_another_lab_is_refused_by_a_bridge(lab: Lab) -> None:
    br = lab.bridge("br0")
    mine = lab.vm("vm1", bridge=br)
    with Lab("other") as other:
        their_br = other.bridge("br0")
        theirs = other.vm("vm1", bridge=their_br)  # same port name (vnet0) as mine
        with pytest.raises(LabError, match="belongs to lab 'other'"):
            br.port(theirs)
        with pytest.raises(LabError, match="belongs to lab 'other'"):
            br.fdb_add("02:00:00:00:00:42", theirs)
        with pytest.raises(LabError, match="belongs to another lab"):
            lab.vm("vm2", bridge=their_br)
        assert br.port(mine).endpoint is mine and their_br.port(theirs).endpoint is theirs


def test_endpoint_on_another_bridge_of_the_same_lab_is_refused(lab: Lab) -> None:
    br0, br1 = lab.bridge("br0"), lab.bridge("br1")
    lab.vm("vm1", bridge=br0)
    vm2 = lab.vm("vm2", bridge=br1)
    lab.vm("vm3", bridge=br0)  # vnet2 on br0; vm2 is vnet1 on br1
    with pytest.raises(LabError, match="cabled to br1, not to br0"):
        br0.port(vm2)
    assert br1.port(vm2).name == vm2.port


# --- 9. validation gaps -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["br0\n", "vm\n", "a b", "", "x" * 16, "-a"])
def test_bad_names_are_refused(lab: Lab, name: str) -> None:
    with pytest.raises(LabError, match="not usable"):
        lab.bridge(name)
    br = lab.bridge("br0")
    for build in (lambda: lab.vm(name, bridge=br), lambda: lab.host(name, bridge=br)):
        with pytest.raises(LabError, match="not usable"):
            build()


@pytest.mark.parametrize("name", ["vnet0", "vnet12", "veth0", "eth0", "eth3", "lo"])
def test_bridge_named_like_vlab_links_is_refused(lab: Lab, name: str) -> None:
    with pytest.raises(LabError, match="vlab gives its own links"):
        lab.bridge(name)
    br = lab.bridge("br0")
    lab.vm("vm1", bridge=br)
    lab.host("h1", bridge=br)
    lab.uplink(br)


def test_mtu_limits_are_the_kernels(lab: Lab) -> None:
    br = lab.bridge("br0", mtu=65535)
    links = switch_links(lab)
    for mtu in (65522, 65535):
        with pytest.raises(LabError, match=r"tap: allowed 68\.\.65521"):
            lab.vm("vm1", bridge=br, mtu=mtu)
    assert switch_links(lab) == links, "a refused VM left a tap behind"
    assert lab.vm("vm1", bridge=br, mtu=65521).port == "vnet0"  # the name was not used up
    lab.host("h1", bridge=br, mtu=65535)  # a veth takes up to 65535
    lab.uplink(br, mtu=65535)
    with pytest.raises(LabError, match=r"allowed 68\.\.65535"):
        lab.host("h2", bridge=br, mtu=65536)


@pytest.mark.parametrize(
    "mac", [BCAST, "00:00:00:00:00:00", "01:00:5e:00:00:01", "33:33:00:00:00:01"]
)
def test_non_unicast_endpoint_macs_are_refused_before_anything_is_built(lab: Lab, mac: str) -> None:
    br = lab.bridge("br0")
    spaces, links = set(lab.namespaces()), switch_links(lab)
    for kind, build in (
        ("vm", lambda: lab.vm("e1", bridge=br, mac=mac)),
        ("host", lambda: lab.host("e1", bridge=br, mac=mac)),
        ("uplink", lambda: lab.uplink(br, mac=mac)),
    ):
        with pytest.raises(LabError, match="unicast MAC") as caught:
            build()
        assert caught.value.args[0].startswith(kind)
        assert set(lab.namespaces()) == spaces and switch_links(lab) == links
    # and the retries work, with the names that would have been used
    vm, host, up = lab.vm("e1", bridge=br), lab.host("h1", bridge=br), lab.uplink(br)
    assert (vm.port, host.port, up.port) == ("vnet0", "veth0", "eth0")
    f = probe(host.mac)
    host.send(f)
    vm.expect(f)
    up.expect(f)


def test_bridge_port_limit_is_a_lab_error_before_the_kernel_says_exchange_full(lab: Lab) -> None:
    br = lab.bridge("br0")
    for i in range(1023):
        lab.vm(f"v{i}", bridge=br)
    with pytest.raises(LabError, match=r"already has 1023 ports.*another bridge"):
        lab.vm("one-more", bridge=br)
    lab.vm("one-more", bridge=lab.bridge("br1"))


# --- 5. a failed build leaves nothing -----------------------------------------------------------


def test_refused_host_then_retry(lab: Lab) -> None:
    br = lab.bridge("br0")
    up = lab.uplink(br)
    with pytest.raises(LabError):
        lab.host("h1", bridge=br, mac="01:00:5e:00:00:01")
    h1 = lab.host("h1", bridge=br)
    f = Ether(src=h1.mac, dst=BCAST, type=0x88B5) / b"after a refusal"
    h1.send(f)
    up.expect(f)


def test_refused_uplink_does_not_break_later_uplinks(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm = lab.vm("vm1", bridge=br)
    with pytest.raises(LabError):
        lab.uplink(br, mac=BCAST)
    with pytest.raises(LabError):
        lab.uplink(br, mtu=10)
    up = lab.uplink(br)
    up2 = lab.uplink(lab.bridge("br1"))
    f = probe(vm.mac)
    vm.send(f)
    up.expect(f)
    up2.expect_none()


def test_kernel_refusal_mid_build_rolls_back_namespace_veth_and_counters(lab: Lab) -> None:
    br = lab.bridge("br0")
    lab.run("switch", "ip", "link", "add", "veth0", "type", "bridge")  # the next host's port name
    reaper.drain()  # earlier tests' sockets close in the background: not this test's fds
    spaces, fds = set(lab.namespaces()), fd_count()
    with pytest.raises(LabError, match="cannot cable veth0"):
        lab.host("h1", bridge=br)
    reaper.drain()
    assert set(lab.namespaces()) == spaces, "the refused host's namespace is still held"
    assert fd_count() == fds and "h1" not in lab.endpoints and br.ports == {}
    lab.run("switch", "ip", "link", "del", "veth0")
    h1 = lab.host("h1", bridge=br)  # the retry gets the same name and works
    assert h1.port == "veth0"
    vm = lab.vm("vm1", bridge=br)
    f = probe(h1.mac)
    h1.send(f)
    vm.expect(f)


def test_kernel_refusal_of_a_tap_leaves_no_fd(lab: Lab) -> None:
    br = lab.bridge("br0")
    lab.run("switch", "ip", "link", "add", "vnet0", "type", "bridge")
    fds = fd_count()
    with pytest.raises(LabError, match="vnet0"):
        lab.vm("vm1", bridge=br)
    assert fd_count() == fds and lab._taps == [] and "vm1" not in lab.endpoints
    lab.run("switch", "ip", "link", "del", "vnet0")
    assert lab.vm("vm1", bridge=br).port == "vnet0"
