"""A reused switch namespace is indistinguishable from a fresh one — or it is not reused.

Each case builds a lab, dirties its switch namespace one way (links, addresses, routes,
sysctls including vlab's quiet ones, fdb, mdb, qdiscs, nftables, a running program, an open
socket, bridge options, the bridge's MTU), closes it and lets the pool reset and verify the
namespace. The next lab then takes it — or, if the pool dropped it, a fresh one — and its switch
namespace is compared with that of a lab built with the pool switched off, through the tools
a test would use (``ip -d``, ``bridge``, ``tc``, ``nft``, ``sysctl -a``, ``ss``, /proc), not
through the pool's own snapshot code. Each case also says whether the pool must have reused the
namespace (what a reset cleans) or dropped it (what only a fresh namespace undoes), and the
dirty namespace itself is shown to differ from a fresh one, so every comparison can fail.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import poolkit
import pytest
from scapy.layers.l2 import Ether

from vlab import Lab, nspool, spawn

pytestmark = pytest.mark.vlab

BRIDGE_MAC = "02:00:00:00:aa:01"
# qdisc handles the kernel picks itself come from one counter for the whole machine: two fresh
# namespaces differ there too (kind, device and parent are still compared)
LEAVE_OUT = poolkit.TICKING | poolkit.IFINDEX | {"handle"}


def _processes(inode: int) -> list[str]:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.stat(f"/proc/{pid}/ns/net").st_ino == inode:
                    with open(f"/proc/{pid}/comm") as fh:
                        out.append(fh.read().strip())
            except OSError:
                pass
    return sorted(out)


def state(lab: Lab) -> dict[str, Any]:
    """The switch namespace as a test's tools show it."""

    def js(*argv: str) -> Any:
        return poolkit.clean(json.loads(lab.run("switch", *argv).stdout or "[]"), LEAVE_OUT)

    sysctls = lab.run("switch", "sysctl", "-a", "--ignore", "-r", "^net\\.").stdout
    sockets = lab.run("switch", "ss", "-a", "-n", "-A", "inet,unix,packet,raw").stdout
    return {
        "links": js("ip", "-d", "-j", "link", "show"),
        "addresses": js("ip", "-j", "addr", "show"),
        "routes4": js("ip", "-4", "-j", "route", "show", "table", "all"),
        "routes6": js("ip", "-6", "-j", "route", "show", "table", "all"),
        "rules": js("ip", "-j", "rule", "show"),
        "neighbours": js("ip", "-j", "neigh", "show"),
        "fdb": js("bridge", "-j", "fdb", "show"),
        "mdb": js("bridge", "-j", "mdb", "show"),
        "qdiscs": js("tc", "-j", "qdisc", "show"),
        "nft": lab.run("switch", "nft", "list", "ruleset").stdout if shutil.which("nft") else "",
        "sysctls": sorted(line for line in sysctls.splitlines() if "stable_secret" not in line),
        "sockets": sorted(sockets.splitlines()),
        "processes": _processes(lab.namespaces()["switch"].inode),
    }


def diff(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two states differ, as paths (empty when equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in diff(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in diff(x, y, f"{path}[{i}]")
        ]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def build(lab: Lab) -> None:
    """The same lab every time: same names, same MACs (an uplink's port MAC is random)."""
    br = lab.bridge("br0", mac=BRIDGE_MAC)
    for i in range(3):
        lab.vm(f"vm{i}", bridge=br, mac=f"52:54:00:00:aa:0{i}")
    lab.ready()
    deadline = time.monotonic() + 5
    while "NO-CARRIER" in lab.run("switch", "ip", "-o", "link", "show", "br0").stdout:
        assert time.monotonic() < deadline, "br0 never got carrier"
        time.sleep(0.005)  # the bridge's own carrier follows its ports asynchronously


@pytest.fixture(autouse=True)
def _pool_on() -> Iterator[None]:
    pool = nspool.pool()
    was, pool.enabled = pool.enabled, True
    try:
        yield
    finally:
        pool.enabled = was
        assert pool.drain()  # no resetter left inside a namespace
        _empty_pool()


@pytest.fixture
def fresh_state() -> Iterator[dict[str, Any]]:
    pool = nspool.pool()
    pool.enabled = False
    try:
        with Lab() as lab:
            build(lab)
            seen = state(lab)
    finally:
        pool.enabled = True
    yield seen


def _settle_pool(before: dict[str, int]) -> str:
    """Wait until the pool has dealt with what it was given: "reused" or "discarded"."""
    pool = nspool.pool()
    assert pool.drain(), "the pool did not reset the namespace in time"
    done = {k: pool.stats[k] - before[k] for k in ("reused", "discarded")}
    assert sum(done.values()) == 1, done
    return "reused" if done["reused"] else "discarded"


def _empty_pool() -> None:
    pool = nspool.pool()
    while (shell := pool.take()) is not None:
        shell.close()


class Dirt:
    """One way of dirtying a switch namespace, and what the pool must do about it."""

    def __init__(
        self,
        outcome: str,
        apply: Callable[[Lab], Callable[[], None] | None],
        visible: bool = True,
    ) -> None:
        self.outcome = outcome
        self.apply = apply
        self.visible = visible  # False: no tool shows it (test_mtu_set_once_... shows it matters)


def _sysctls(lab: Lab) -> None:
    lab.run("switch", "sysctl", "-w", "net.ipv4.ip_forward=1")
    lab.run("switch", "sysctl", "-w", "net.ipv6.conf.default.disable_ipv6=0")  # a quiet one
    lab.run("switch", "sysctl", "-w", "net.ipv4.conf.br0.arp_ignore=1")


def _quiet_sysctl(lab: Lab) -> None:
    lab.run("switch", "sysctl", "-w", "net.ipv4.igmp_link_local_mcast_reports=1")


def _program(lab: Lab) -> Callable[[], None]:
    proc = spawn.popen(lab.namespaces()["switch"], ["sleep", "60"])

    def stop() -> None:
        proc.kill()
        proc.communicate()

    return stop


def _socket(lab: Lab) -> Callable[[], None]:
    with lab.namespaces()["switch"].entered():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("0.0.0.0", 0))
    return sock.close


def _options(lab: Lab) -> None:
    lab.bridges["br0"].set(stp=True, ageing_time=12, forward_delay=4, group_fwd_mask=0x4000)


def _querier(lab: Lab) -> None:
    # the querier needs IPv6 on the bridge device (an MLD querier without it never queries):
    # its sysctls and own group joins are what only a fresh namespace undoes
    lab.bridges["br0"].set(multicast_querier=True)


def _links(lab: Lab) -> None:
    lab.run("switch", "ip", "link", "add", "x0", "type", "veth", "peer", "name", "x1")
    lab.run("switch", "ip", "link", "set", "x0", "master", "br0", "up")


def _fdb(lab: Lab) -> None:
    lab.run(
        "switch", "bridge", "fdb", "add", "02:00:00:00:bb:01", "dev", "vnet0", "master", "static"
    )


def _mdb(lab: Lab) -> None:
    lab.run(
        "switch",
        "bridge",
        "mdb",
        "add",
        "dev",
        "br0",
        "port",
        "vnet0",
        "grp",
        "239.1.1.1",
        "permanent",
    )


def _mdb_host(lab: Lab) -> None:
    lab.run("switch", "bridge", "mdb", "add", "dev", "br0", "port", "br0", "grp", "239.1.1.2")


def _address(lab: Lab) -> None:
    lab.run("switch", "ip", "addr", "add", "192.0.2.1/24", "dev", "br0")
    lab.run("switch", "ip", "route", "add", "198.51.100.0/24", "dev", "br0")


def _qdisc(lab: Lab) -> None:
    tbf = ("tbf", "rate", "1mbit", "burst", "10k", "latency", "50ms")
    lab.run("switch", "tc", "qdisc", "add", "dev", "br0", "root", *tbf)


def _nft(lab: Lab) -> None:
    if shutil.which("nft") is None:
        pytest.skip("needs nft (Debian: nftables)")
    lab.run("switch", "nft", "add", "table", "bridge", "t")


def _lo_up(lab: Lab) -> None:
    lab.run("switch", "ip", "link", "set", "lo", "up")


def _mtu(lab: Lab) -> None:
    lab.run("switch", "ip", "link", "set", "br0", "mtu", "1400")
    lab.run("switch", "ip", "link", "set", "br0", "mtu", "1500")


DIRT: dict[str, Dirt] = {
    "nothing": Dirt("reused", lambda lab: None, visible=False),
    "bridge options": Dirt("reused", lambda lab: _options(lab)),
    "multicast querier": Dirt("discarded", lambda lab: _querier(lab)),
    "extra links and ports": Dirt("reused", lambda lab: _links(lab)),
    "fdb entry on a port": Dirt("reused", lambda lab: _fdb(lab)),
    "mdb entry on a port": Dirt("reused", lambda lab: _mdb(lab)),
    "mdb entry of the bridge itself": Dirt("discarded", lambda lab: _mdb_host(lab)),
    "address and route": Dirt("discarded", lambda lab: _address(lab)),
    "sysctls": Dirt("discarded", lambda lab: _sysctls(lab)),
    "a quiet sysctl": Dirt("discarded", lambda lab: _quiet_sysctl(lab)),
    "qdisc": Dirt("discarded", lambda lab: _qdisc(lab)),
    "nft table": Dirt("discarded", lambda lab: _nft(lab)),
    "lo up": Dirt("discarded", lambda lab: _lo_up(lab)),
    "bridge MTU changed and back": Dirt("discarded", lambda lab: _mtu(lab), visible=False),
    "running program": Dirt("discarded", _program),
    "open socket": Dirt("discarded", _socket),
}


@pytest.fixture(scope="module", autouse=True)
def _needs_tools() -> None:
    for tool in ("ip", "bridge", "tc", "sysctl", "ss"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (iproute2, procps)")


@pytest.mark.parametrize("dirt", list(DIRT))
def test_a_reused_switch_namespace_is_like_a_fresh_one(
    dirt: str, fresh_state: dict[str, Any]
) -> None:
    pool = nspool.pool()
    with Lab() as warm:  # the pool's reference exists before the case begins
        build(warm)
    assert pool.drain()
    _empty_pool()
    before = dict(pool.stats)
    undo: Callable[[], None] | None = None
    try:
        with Lab() as dirty:
            build(dirty)
            undo = DIRT[dirt].apply(dirty)
            if DIRT[dirt].visible:
                assert diff(state(dirty), fresh_state) != []  # the comparison below can fail
            inode = dirty.namespaces()["switch"].inode
        outcome = _settle_pool(before)
        if undo is not None:
            undo()
            undo = None
        assert outcome == DIRT[dirt].outcome, pool.last_discard
        with Lab() as reused:
            build(reused)
            assert (reused.namespaces()["switch"].inode == inode) == (outcome == "reused")
            assert diff(state(reused), fresh_state) == []
    finally:
        if undo is not None:
            undo()
        _empty_pool()


def test_a_lab_that_looks_before_building_never_sees_the_dormant_bridge(
    fresh_state: dict[str, Any],
) -> None:
    with Lab() as warm:
        build(warm)
    assert nspool.pool().drain()
    assert nspool.pool().ready, nspool.pool().last_discard
    with Lab() as lab:
        assert lab._shell is not None and lab._shell.dormant
        links = lab.run("switch", "ip", "-o", "link").stdout
        assert nspool.SPARE_NAME not in links and "br0" not in links
        build(lab)
        assert diff(state(lab), fresh_state) == []


def test_a_link_made_before_any_bridge_does_not_collide_with_the_dormant_one() -> None:
    """The dormant bridge holds the first ifindex: a host in no bridge, built first, gets it
    only once the dormant bridge is gone (it was EEXIST); a later bridge is a fresh one."""
    with Lab() as warm:
        build(warm)
    assert nspool.pool().drain()
    assert nspool.pool().ready, nspool.pool().last_discard
    with Lab() as lab:
        assert lab._shell is not None and lab._shell.dormant  # the positive case: it is there
        host = lab.host("h1", bridge=None)
        assert not lab._shell.dormant
        br = lab.bridge("br0")
        vm = lab.vm("vm1", bridge=br)
        assert nspool.SPARE_NAME not in lab.run("switch", "ip", "-o", "link").stdout
        frame = Ether(src=host.mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / b"lone"
        host.send(frame)
        host.peer.expect(frame)
        vm.expect_none()  # the peer is in no bridge


def test_mtu_set_once_makes_a_bridge_stop_following_its_ports() -> None:
    """Why an MTU change, even undone, costs the namespace its reuse: the kernel remembers it
    (BROPT_MTU_SET_BY_USER) and no dump shows it, but the bridge behaves differently."""
    for touched in (False, True):
        with Lab() as lab:
            br = lab.bridge("br0")
            if touched:
                lab.run("switch", "ip", "link", "set", "br0", "mtu", "1400")
                lab.run("switch", "ip", "link", "set", "br0", "mtu", "1500")
            lab.vm("vm0", bridge=br, mtu=9000)
            mtu = lab.run("switch", "cat", "/sys/class/net/br0/mtu", check=False).stdout.strip()
            if not mtu:
                mtu = json.loads(lab.run("switch", "ip", "-j", "link", "show", "br0").stdout)[0][
                    "mtu"
                ]
            assert int(mtu) == (1500 if touched else 9000)


# --- labs that only used vlab's API: the cheaper check ---------------------------------------


def _api_options(lab: Lab) -> None:
    br = lab.bridges["br0"]
    br.set(ageing_time=12, group_fwd_mask=0x4000, multicast_snooping=False)
    br.port(lab.endpoints["vm0"]).set(learning=False, flood=False)


def _api_fdb(lab: Lab) -> None:
    lab.bridges["br0"].fdb_add("02:00:00:00:bb:01", lab.endpoints["vm0"])


def _api_mdb(lab: Lab) -> None:
    lab.bridges["br0"].mdb_add("239.1.1.1", lab.endpoints["vm1"])


def _api_host_join(lab: Lab) -> None:
    lab.bridges["br0"].mdb_add("239.1.1.2", lab.bridges["br0"], permanent=False)


def _api_address(lab: Lab) -> None:
    lab.bridges["br0"].add_address("192.0.2.1/24")


def _api_neighbour(lab: Lab) -> None:
    lab.bridges["br0"].neigh_add("192.0.2.7", "02:00:00:00:bb:07")


def _api_local(lab: Lab) -> None:
    # a packet socket on the bridge device, closed with the lab
    assert lab.bridges["br0"].local is not None


# Through vlab's API only (the namespace is never handed out, no sysctl is written): the pool
# skips the sysctl, nftables, xtables and process sections, which nothing here can change.
API_DIRT: dict[str, tuple[str, Callable[[Lab], None]]] = {
    "bridge and port options": ("reused", _api_options),
    "fdb entry": ("reused", _api_fdb),
    "mdb entry on a port": ("reused", _api_mdb),
    "bridge socket (br.local())": ("reused", _api_local),
    "host join of the bridge itself": ("discarded", _api_host_join),
    "address on the bridge": ("discarded", _api_address),
    "neighbour on the bridge (gone when it is set down)": ("reused", _api_neighbour),
}


def _api_build(lab: Lab) -> None:
    br = lab.bridge("br0", mac=BRIDGE_MAC)
    for i in range(3):
        lab.vm(f"vm{i}", bridge=br, mac=f"52:54:00:00:aa:0{i}")
    lab.uplink(br)
    lab.ready()


@pytest.mark.parametrize("dirt", list(API_DIRT))
def test_a_lab_built_through_the_api_gets_the_cheap_check_and_is_still_like_a_fresh_one(
    dirt: str, fresh_state: dict[str, Any]
) -> None:
    pool = nspool.pool()
    with Lab() as warm:
        _api_build(warm)
    assert pool.drain()
    _empty_pool()
    before = dict(pool.stats)
    outcome, apply = API_DIRT[dirt]
    with Lab() as dirty:
        _api_build(dirty)
        clean = nspool.snapshot(dirty._switch, full=False)
        apply(dirty)
        # the cheap check sees the dirt (so the reset, not luck, is what removed it)
        assert nspool.differences(clean, nspool.snapshot(dirty._switch, full=False)) != []
        assert not dirty._switch.ns.touched  # what decides the cheap check
        inode = dirty._switch.ns.inode
    assert _settle_pool(before) == outcome, pool.last_discard
    assert pool.stats.get("full checks", 0) == before.get("full checks", 0)
    with Lab() as reused:
        build(reused)
        assert (reused.namespaces()["switch"].inode == inode) == (outcome == "reused")
        assert diff(state(reused), fresh_state) == []  # sysctls, processes, nft included


def _left_open(kind: str) -> socket.socket | None:
    """A socket of ``kind`` opened in the calling thread's namespace, as a leak would leave it."""
    if kind == "none":
        return None
    if kind == "udp":
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.bind(("::", 0))
    elif kind == "tcp":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("0.0.0.0", 0))
        sock.listen()
    elif kind == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    elif kind == "netlink":
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    else:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    return sock


@pytest.mark.parametrize("kind", ["none", "udp", "tcp", "unix", "netlink", "packet"])
def test_a_socket_left_open_in_an_untouched_namespace_is_caught_by_the_cheap_check(
    kind: str,
) -> None:
    """The cheap check counts every protocol's sockets (the kernel's per-namespace counters):
    one left open by a leak, of any kind, drops the namespace; with none (the control) it is
    reused, so the count of the pool's own sockets is right."""
    pool = nspool.pool()
    with Lab() as warm:
        _api_build(warm)
    assert pool.drain()
    _empty_pool()
    before = dict(pool.stats)
    with Lab() as lab:
        _api_build(lab)
        with lab._switch.ns.entered():
            sock = _left_open(kind)
        assert not lab._switch.ns.touched  # what decides the cheap check
    try:
        outcome = _settle_pool(before)
        assert pool.stats.get("full checks", 0) == before.get("full checks", 0)
        if kind == "none":
            assert outcome == "reused", pool.last_discard
        else:
            assert outcome == "discarded"
            assert pool.last_discard == ["protocols"]
    finally:
        if sock is not None:
            sock.close()


def test_a_sysctl_write_or_a_look_inside_makes_the_pool_check_everything() -> None:
    pool = nspool.pool()
    with Lab() as warm:
        _api_build(warm)
    assert pool.drain()
    for touch in ("sysctl", "run", "namespaces", "spawn"):
        before = dict(pool.stats)
        with Lab() as lab:
            _api_build(lab)
            assert not lab._switch.ns.touched
            if touch == "sysctl":
                lab._switch.ns.sysctl("net.ipv4.conf.br0.arp_ignore", 0)  # the default again
            elif touch == "run":
                lab.run("switch", "true")
            elif touch == "namespaces":
                lab.namespaces()
            else:
                lab.spawn("switch", ["true"]).wait()
            assert lab._switch.ns.touched, touch
        assert pool.drain()
        assert pool.stats.get("full checks", 0) == before.get("full checks", 0) + 1, touch
        # an unchanged value, a program that is gone: the full check finds nothing to object to
        assert pool.stats["reused"] == before["reused"] + 1, (touch, pool.last_discard)
    _empty_pool()


def test_a_closed_labs_objects_never_reach_the_namespace_the_next_lab_reuses() -> None:
    pool = nspool.pool()
    with Lab() as warm:
        _api_build(warm)
    assert pool.drain()
    _empty_pool()
    with Lab() as old:
        _api_build(old)
        stale_rtnl, stale_ns = old.switch.rtnl, old.switch.ns
    assert pool.drain() and pool.ready, pool.last_discard
    with Lab() as new:
        assert new.switch.ns.inode == stale_ns.inode  # the same namespace, reused
        _api_build(new)
        with pytest.raises(OSError):  # its closed socket, not the new lab's
            stale_rtnl.bridge_data(nspool.BRIDGE_INDEX)
        assert stale_ns.fd == -1  # nor can a program be started there through it
        assert new.switch.rtnl.bridge_data(nspool.BRIDGE_INDEX)  # the positive case


def test_a_host_on_no_bridge_first_in_a_reused_namespace() -> None:
    """The dormant bridge holds the first ifindex: a lone host made before any bridge gets it."""
    pool = nspool.pool()
    with Lab() as warm:
        _api_build(warm)
    assert pool.drain() and pool.ready, pool.last_discard
    with Lab() as lab:
        assert lab._shell is not None and lab._shell.dormant
        h1 = lab.host("h1", bridge=None)
        frame = Ether(src=h1.peer.mac, dst=h1.mac) / b"over the cable"
        h1.peer.send(frame)
        h1.expect(frame)
        assert nspool.SPARE_NAME not in lab.switch.links.link_states()
