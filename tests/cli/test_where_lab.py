"""``vlab where`` and ``vlab show --host`` against a lab with real QEMU guests, from outside.

Two guests on two bridges; the CLI runs as a separate process and is pointed at the lab's switch
namespace through ``/proc/<this pid>/fd/<N>`` (the lab holds its namespaces by fd), exactly as
one would point it at a hypervisor's namespace. It must find each guest by its MAC with its QEMU
pid, tap and bridge, change nothing it looks at, say so when nobody has a MAC, emit JSON that
its schema accepts, and, run as ``nobody``, say what it could not read.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import ROOT, vlab_argv
from pyroute2 import IPRoute
from scapy.layers.l2 import Ether
from test_rootless import NOBODY
from test_rootless import venv as venv

from vlab import Lab
from vlab.hostview import inspect_host, schema
from vlab.hostview.netlink import dump_fdb, dump_links
from vlab.hostview.target import open_target
from vlab.netns import setns
from vlab.qemu import qemu_unavailable

pytestmark = [
    pytest.mark.vlab,
    pytest.mark.qemu,
    pytest.mark.skipif(qemu_unavailable() is not None, reason=str(qemu_unavailable())),
]
WEB, DB = "52:54:00:18:00:01", "52:54:00:18:00:02"
NOBODY_HAS = "02:00:00:18:00:99"


class Site:
    """The lab as a host to inspect: two guests on two bridges, an emulated VM, an uplink."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.br0, self.br1 = lab.bridge("br0"), lab.bridge("br1")
        self.web = lab.vm("web1", bridge=self.br0, mac=WEB, guest="qemu")
        self.db = lab.vm("db1", bridge=self.br1, mac=DB, guest="qemu")
        self.emu = lab.vm("emu1", bridge=self.br0)  # its tap fd is held by this process only
        self.up = lab.uplink(self.br0)
        self.fd = lab.namespaces()["switch"].fd
        self.path = f"/proc/{os.getpid()}/fd/{self.fd}"

    def speak(self) -> None:
        """Every guest sends a frame so its bridge learns its MAC on its tap."""
        for vm in (self.web, self.db):
            vm.run("ip link set eth0 up && arping -c 1 -w 1 -I eth0 192.0.2.1")
        self.emu.send(Ether(src=self.emu.mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / b"hi")
        self.lab.settle()
        deadline = time.monotonic() + 10
        while not {WEB, DB} <= set(self.br0.fdb()) | set(self.br1.fdb()):
            assert time.monotonic() < deadline, "the bridges never learnt the guests' MACs"
            time.sleep(0.05)

    def vlab(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*vlab_argv(), *args], capture_output=True, text=True, timeout=60, cwd=ROOT
        )

    def snapshot(self) -> dict[str, Any]:
        """Links, addresses and fdb of the switch namespace as iproute2 prints them.

        Only the bridge's running timers (``*_timer``: countdowns the kernel moves by itself
        every tick) are left out; everything else must be equal byte for byte.
        """
        out: dict[str, Any] = {}
        for cmd in (("ip", "-d", "-j", "link"), ("ip", "-j", "addr"), ("bridge", "-j", "fdb")):
            text = self.lab.run("switch", *cmd).stdout
            out[" ".join(cmd)] = re.sub(r'"[a-z_]+_timer":[0-9.]+,?', "", text)
        return out


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with Lab(name="where") as lab:
        s = Site(lab)
        s.speak()
        yield s


def test_where_finds_each_guest_by_its_mac(site: Site) -> None:
    for vm, tap, bridge in ((site.web, "vnet0", "br0"), (site.db, "vnet1", "br1")):
        assert vm.port == tap and vm.guest is not None
        done = site.vlab("where", vm.mac, "--netns", site.path)
        assert done.returncode == 0, done.stderr
        line = done.stdout.splitlines()[0]
        assert line.startswith(
            f"{vm.mac} is VM vlab-{vm.name}'s NIC net0 (virtio-net, QEMU pid {vm.guest.pid}, fd "
        ), line
        assert f"on tap {tap} (tap MAC {vm.tap_mac}) on bridge {bridge}, learnt " in line, line
    emulated = site.vlab("where", site.emu.mac, "--netns", site.path).stdout
    assert f"is behind tap vnet2 (tap MAC {site.emu.tap_mac}; held by pid {os.getpid()}" in emulated
    tap_mac = site.vlab("where", site.web.tap_mac, "--netns", site.path).stdout
    assert "own MAC of tap vnet0" in tap_mac and f"NIC net0, MAC {WEB}" in tap_mac


def test_where_explains_the_two_macs(site: Site) -> None:
    done = site.vlab("where", DB, "--explain", "--netns", site.path)
    assert done.returncode == 0, done.stderr
    assert f"guest MAC {DB}: the VM's own NIC" in done.stdout
    assert f"tap MAC {site.db.tap_mac}: the host-side end" in done.stdout
    assert "learns it on port\n    vnet1" in done.stdout


def test_a_mac_nobody_has_says_so(site: Site) -> None:
    done = site.vlab("where", NOBODY_HAS, "--netns", site.path)
    assert done.returncode == 1 and done.stdout == ""
    assert f"{NOBODY_HAS} is nowhere in network namespace {site.path}" in done.stderr
    assert "2 bridge(s)" in done.stderr and "3 tap(s)" in done.stderr
    as_json = site.vlab("where", NOBODY_HAS, "--json", "--netns", site.path)
    assert as_json.returncode == 1
    doc = json.loads(as_json.stdout)
    assert doc["found"] is False and doc["locations"] == [] and schema.validate(doc) == []
    bad = site.vlab("where", "52:54:00:zz:00:01")
    assert bad.returncode == 1 and "is not a MAC address" in bad.stderr
    notns = site.vlab("where", WEB, "--netns", "/etc/hostname")
    assert notns.returncode == 1 and "is not a network namespace" in notns.stderr


def test_inspection_changes_nothing(site: Site) -> None:
    before = site.snapshot()
    for args in (
        ("where", WEB),
        ("where", DB, "--json", "--explain"),
        ("where", NOBODY_HAS),
        ("show", "--host"),
        ("show", "--host", "--json"),
    ):
        site.vlab(*args, "--netns", site.path)
    after = site.snapshot()
    assert after == before
    # the comparison sees a change when there is one
    site.lab.run("switch", "bridge", "fdb", "add", NOBODY_HAS, "dev", "vnet2", "master", "static")
    try:
        assert site.snapshot() != before
    finally:
        site.lab.run("switch", "bridge", "fdb", "del", NOBODY_HAS, "dev", "vnet2", "master")
    assert site.snapshot() == before


def test_json_matches_the_schema_and_the_kernel(site: Site) -> None:
    shown = site.vlab("show", "--host", "--json", "--netns", site.path)
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert schema.validate(doc) == []
    taps = {t["name"]: t for t in doc["taps"]}
    qemu = [h for h in taps["vnet0"]["holders"] if h["qemu"]]
    assert site.web.guest is not None and [h["pid"] for h in qemu] == [site.web.guest.pid]
    assert qemu[0]["vm"] == {
        "vm": "vlab-web1", "nic": "net0", "model": "virtio-net", "mac": WEB, "netdev": "net0",
    }  # fmt: skip
    assert qemu[0]["verified"] is True  # its device proven to be in this namespace
    assert {h["pid"] for h in taps["vnet2"]["holders"]} == {os.getpid()}
    assert {b["name"]: sorted(p["name"] for p in b["ports"]) for b in doc["bridges"]} == {
        "br0": ["eth0", "vnet0", "vnet2"],
        "br1": ["vnet1"],
    }
    # the fdb as pyroute2 decodes it, independently of vlab's decoder
    with site.lab.namespaces()["switch"].entered(), IPRoute() as ipr:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        theirs = {
            (m.get_attr("NDA_LLADDR"), names[m["ifindex"]])
            for m in ipr.fdb("dump")
            if m.get_attr("NDA_MASTER")
        }
        ports = {
            (names[link["index"]], names[link.get_attr("IFLA_MASTER")])
            for link in ipr.get_links()
            if link.get_attr("IFLA_MASTER")
        }
        kinds = {
            names[link["index"]]: link.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_KIND")
            for link in ipr.get_links()
            if link.get_attr("IFLA_LINKINFO")
        }
    ours = {(e["mac"], e["port"]) for b in doc["bridges"] for e in b["fdb"]}
    assert ours == theirs
    assert {(p["name"], b["name"]) for b in doc["bridges"] for p in b["ports"]} == ports
    assert {t["name"] for t in doc["taps"]} == {n for n, k in kinds.items() if k == "tun"}
    where = json.loads(site.vlab("where", WEB, "--json", "--netns", site.path).stdout)
    assert schema.validate(where) == [] and where["found"] is True
    first = where["locations"][0]
    assert (first["what"], first["bridge"], first["port"]) == ("guest", "br0", "vnet0")
    assert first["fdb"]["how"] == "learnt" and first["fdb"]["updated_s"] >= 0


def test_netns_by_pid_and_other_namespaces_taps_are_not_ours(site: Site) -> None:
    """A process living in the namespace names it too; and a same-named tap elsewhere (another
    lab's vnet0) is told apart by the kernel, not confused with this one."""
    fd = site.fd
    sleeper = subprocess.Popen(["sleep", "60"], preexec_fn=lambda: setns(fd), pass_fds=(fd,))
    try:
        with Lab(name="other") as other:
            decoy = other.vm("decoy", bridge=other.bridge("br0"))  # vnet0 again, elsewhere
            assert decoy.port == "vnet0"
            done = site.vlab("where", WEB, "--netns", str(sleeper.pid))
            assert done.returncode == 0, done.stderr
            assert "on tap vnet0" in done.stdout and "on bridge br0" in done.stdout
            view = inspect_host(site.path)
            vnet0 = next(t for t in view.taps.values() if t.link.name == "vnet0")
            assert site.web.guest is not None
            holders = {h.pid for h in vnet0.holders}
            assert holders == {os.getpid(), site.web.guest.pid}
            fds = {h.fd for h in vnet0.holders if h.pid == os.getpid()}
            assert fds == {site.web.tap_fd} and decoy.tap_fd not in fds
            elsewhere = inspect_host(f"/proc/{os.getpid()}/fd/{other.namespaces()['switch'].fd}")
            (decoy_tap,) = elsewhere.taps.values()
            assert [(h.pid, h.fd) for h in decoy_tap.holders] == [(os.getpid(), decoy.tap_fd)]
    finally:
        sleeper.kill()
        sleeper.wait()


def test_one_dump_per_table(site: Site) -> None:
    """Links and fdb of every bridge come from one dump each, whatever the number of bridges."""
    target = open_target(site.path)
    try:
        counts: list[int] = []

        def dumps(rtnl: Any) -> None:
            sent = rtnl._send
            rtnl._send = lambda *a: (counts.append(a[0]), sent(*a))[1]
            dump_links(rtnl)
            dump_fdb(rtnl)

        target.query(dumps)
    finally:
        target.close()
    assert counts == [18, 30]  # RTM_GETLINK, RTM_GETNEIGH


def test_as_nobody_it_says_what_it_could_not_read(
    site: Site,
    venv: Path,
) -> None:
    env = ["env", "-i", f"PATH={venv / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"]
    nobody = ["runuser", "-u", NOBODY, "--", *env, "vlab"]
    # nobody is put into the switch namespace by root (setns before runuser drops privileges)
    done = site.lab.run("switch", *nobody, "where", WEB, check=False)
    assert done.returncode == 0, done.stderr
    line = done.stdout.splitlines()[0]
    assert line.startswith(f"{WEB} is behind tap vnet0 (tap MAC {site.web.tap_mac}; "), line
    assert re.search(r"tap owner unknown: no permission to read /proc/\d+/fd", line), line
    assert "(run as root)" in line and "on bridge br0, learnt" in line
    assert "could not read the fds of" in done.stdout  # the note at the end
    shown = site.lab.run("switch", *nobody, "show", "--host", "--json", check=False)
    doc = json.loads(shown.stdout)
    assert schema.validate(doc) == [] and doc["uid"] != 0
    assert all(t["holders"] == [] and t["owner_unknown"] for t in doc["taps"])
    # and pointing it at a root process's namespace fd is refused with the reason
    denied = subprocess.run(
        ["runuser", "-u", NOBODY, "--", *env, "vlab", "where", WEB, "--netns", site.path],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert denied.returncode == 1
    assert "no permission to open it" in denied.stderr and "run as root" in denied.stderr
