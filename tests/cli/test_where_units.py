"""Host inspection's pure parts: QEMU command lines, fdinfo, netlink decoding, the schema
validator and the one-line answer. No root, no kernel objects."""

from __future__ import annotations

import copy
import json
import struct

import pytest

from vlab.hostview import jsonout, locate, qemu_cmdline, render, schema
from vlab.hostview.netlink import Link, parse_fdb, parse_link
from vlab.hostview.procscan import macvtap_index, parse_fdinfo_iff
from vlab.hostview.views import BridgeView, Holder, HostView, Tap, VmNic
from vlab.rtnl import NLA_F_NESTED, nla

# -- QEMU command lines --------------------------------------------------------------------

LIBVIRT_KEYVAL = [
    "/usr/bin/qemu-system-x86_64",
    "-name", "guest=web1,debug-threads=on",
    "-machine", "pc-q35-7.2,usb=off",
    "-netdev", "tap,fd=32,id=hostnet0,vhost=on,vhostfd=34",
    "-device", "virtio-net-pci,netdev=hostnet0,id=net0,mac=52:54:00:12:34:56,bus=pci.1,addr=0x0",
    "-netdev", "tap,fds=40:41,id=hostnet1",
    "-device", "e1000,netdev=hostnet1,id=net1,mac=52:54:00:AB:CD:EF",
    "-device", "virtio-blk-pci,drive=disk0,id=virtio-disk0",
]  # fmt: skip

LIBVIRT_JSON = [
    "/usr/libexec/qemu-kvm",
    "-name", "guest=db1,debug-threads=on",
    "-netdev", '{"type":"tap","fd":"33","vhost":true,"vhostfd":"35","id":"hostnet0"}',
    "-device",
    '{"driver":"virtio-net-pci","netdev":"hostnet0","id":"net0","mac":"52:54:00:aa:bb:cc",'
    '"bus":"pci.1","addr":"0x0"}',
]  # fmt: skip


def test_libvirt_keyval_command_line() -> None:
    cmd = qemu_cmdline.parse(LIBVIRT_KEYVAL)
    assert cmd.name == "web1"
    net = cmd.netdev_of_fd(32)
    assert net is not None and net.id == "hostnet0" and net.type == "tap"
    nic = cmd.nic_of(net)
    assert nic is not None
    assert (nic.label, nic.model, nic.mac) == ("net0", "virtio-net", "52:54:00:12:34:56")
    multi = cmd.netdev_of_fd(41)  # a multiqueue tap: one fd per queue
    assert multi is not None and multi.fds == (40, 41)
    e1000 = cmd.nic_of(multi)
    assert e1000 is not None and e1000.model == "e1000" and e1000.mac == "52:54:00:ab:cd:ef"
    assert cmd.netdev_of_fd(34) is None  # the vhost fd is not the tap
    assert [n.driver for n in cmd.nics] == ["virtio-net-pci", "e1000"]  # the disk is no NIC


def test_libvirt_json_command_line() -> None:
    cmd = qemu_cmdline.parse(LIBVIRT_JSON)
    assert qemu_cmdline.is_qemu(LIBVIRT_JSON)
    net = cmd.netdev_of_fd(33)
    assert cmd.name == "db1" and net is not None
    nic = cmd.nic_of(net)
    assert nic is not None and (nic.label, nic.mac) == ("net0", "52:54:00:aa:bb:cc")


def test_vlab_guest_and_plain_forms() -> None:
    argv = [
        "qemu-system-x86_64", "-name", "vlab-vm1,process=vlab-vm1",
        "-netdev", "tap,id=net0,fd=7",
        "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:00:00:10,romfile=",
    ]  # fmt: skip
    cmd = qemu_cmdline.parse(argv)
    assert cmd.name == "vlab-vm1"  # a bare first item of -name is the guest name
    net = cmd.netdev_of_fd(7)
    assert net is not None
    nic = cmd.nic_of(net)
    assert nic is not None and nic.id is None and nic.label == "net0"  # no id: the netdev's
    plain = qemu_cmdline.parse(["qemu-system-aarch64", "--name", "web1", "-nic",
                                "tap,ifname=vnet7,model=e1000,mac=52:54:00:00:00:77"])  # fmt: skip
    assert plain.name == "web1"
    tap = plain.netdev_of_ifname("vnet7")
    assert tap is not None
    nic7 = plain.nic_of(tap)
    assert nic7 is not None and nic7.model == "e1000" and nic7.mac == "52:54:00:00:00:77"


def test_option_syntax_edges() -> None:
    assert qemu_cmdline.split_options("tap,id=a,,b,script=no", "type") == {
        "type": "tap",
        "id": "a,b",  # ",," is a literal comma
        "script": "no",
    }
    assert qemu_cmdline.split_options("virtio-net-pci,romfile=", "driver")["romfile"] == ""
    assert qemu_cmdline.parse(["qemu-system-x86_64", "-netdev", "{broken"]).netdevs == ()
    assert qemu_cmdline.parse(["qemu-system-x86_64", "-name"]).name is None  # no value
    assert not qemu_cmdline.is_qemu(["/usr/bin/python3", "-m", "vlab"])
    assert not qemu_cmdline.is_qemu([])


# -- /proc ---------------------------------------------------------------------------------


def test_fdinfo_iff_line() -> None:
    text = "pos:\t0\nflags:\t02004002\nmnt_id:\t27\nino:\t1045\niff:\tvnet3\n"
    assert parse_fdinfo_iff(text) == "vnet3"
    assert parse_fdinfo_iff("pos:\t0\nflags:\t02\niff:\t\n") is None  # detached queue
    assert parse_fdinfo_iff("pos:\t0\nflags:\t02\n") is None  # not a tun fd
    assert macvtap_index("/dev/tap12") == 12
    assert macvtap_index("/dev/tape") is None and macvtap_index("/dev/net/tun") is None


# -- netlink decoding ----------------------------------------------------------------------


def _ndmsg(state: int, flags: int, ifindex: int, *attrs: bytes) -> bytes:
    return struct.pack("=BxxxiHBB", 7, ifindex, state, flags, 0) + b"".join(attrs)


def test_fdb_entry_decoding() -> None:
    mac = nla(2, bytes.fromhex("525400123456"))
    master = nla(9, struct.pack("=I", 3))
    cache = nla(3, struct.pack("=IIII", 0, 250, 1200, 0))  # used 2.5 s, updated 12 s ago
    vlan = nla(5, struct.pack("=H", 10))
    e = parse_fdb(_ndmsg(0x02, 0x04, 5, mac, master, cache, vlan), ticks=100)
    assert e is not None
    assert (e.mac, e.port, e.bridge, e.vlan, e.how) == ("52:54:00:12:34:56", 5, 3, 10, "learnt")
    assert (e.updated, e.used) == (12.0, 2.5)
    static = parse_fdb(_ndmsg(0x40, 0x04 | 0x40, 5, mac, master), ticks=100)
    assert static is not None and static.how == "static" and static.flags == ("sticky",)
    assert static.vlan is None and static.updated is None
    locked = parse_fdb(_ndmsg(0x02, 0x04, 5, mac, master, nla(15, struct.pack("=I", 2))), 100)
    assert locked is not None and locked.flags == ("locked",)
    local = parse_fdb(_ndmsg(0x80, 0x04, 3, mac, master), ticks=100)
    assert local is not None and local.how == "local"
    assert parse_fdb(_ndmsg(0x80, 0x02, 5, mac), ticks=100) is None  # "self": no master


def test_link_decoding_tap_and_port() -> None:
    tun_data = nla(3, b"\x02") + nla(8, struct.pack("=I", 2)) + nla(6, b"\x01")
    info = nla(1, b"tun\0") + nla(2 | NLA_F_NESTED, tun_data)
    info += nla(4, b"bridge\0") + nla(5 | NLA_F_NESTED, nla(1, b"\x03"))
    body = struct.pack("=BxHiII", 0, 1, 9, 0, 0)
    body += nla(3, b"vnet3\0") + nla(1, bytes.fromhex("fe5400123456"))
    body += nla(10, struct.pack("=I", 4)) + nla(18 | NLA_F_NESTED, info)
    link = parse_link(body)
    assert (link.index, link.name, link.mac, link.master) == (9, "vnet3", "fe:54:00:12:34:56", 4)
    assert (link.kind, link.tun_type, link.tun_queues, link.tun_persist) == ("tun", "tap", 2, True)
    assert link.port_state == "forwarding" and link.is_tap
    tun_l3 = parse_link(
        struct.pack("=BxHiII", 0, 1, 10, 0, 0)
        + nla(18 | NLA_F_NESTED, nla(1, b"tun\0") + nla(2 | NLA_F_NESTED, nla(3, b"\x01")))
    )
    assert tun_l3.tun_type == "tun" and not tun_l3.is_tap  # an L3 tun is no VM NIC


# -- a synthetic host: the answer and its JSON ---------------------------------------------

BR = Link(2, "br0", "02:00:00:00:00:01", "bridge", 0, 0, "up", 1500)
TAP = Link(9, "vnet3", "fe:54:00:12:34:56", "tun", 2, 0, "unknown", 1500, "forwarding", "tap", 1)
GUEST = "52:54:00:12:34:56"


def _view(holders: list[Holder], owner_unknown: str | None = None) -> HostView:
    def entry(mac: str, port: int, state: int) -> object:
        body = _ndmsg(state, 0x04, port, nla(2, bytes.fromhex(mac.replace(":", ""))))
        return parse_fdb(
            body
            + nla(9, struct.pack("=I", 2))
            + nla(3, b"\0" * 4 + struct.pack("=III", 0, 1200, 0)),
            100,
        )

    fdb = [entry(GUEST, 9, 0x02), entry(TAP.mac, 9, 0x80), entry(BR.mac, 2, 0x80)]
    tap = Tap(TAP, holders, owner_unknown)
    return HostView(
        "(current)", 4026531840, 0, {2: BR, 9: TAP}, [BridgeView(BR, [TAP], fdb)], {9: tap}, fdb
    )  # type: ignore[arg-type]


QEMU = Holder(
    4242,
    32,
    "qemu-system-x86",
    107,
    True,
    VmNic("web1", "net0", "virtio-net", GUEST, "hostnet0"),
    True,
    "fd",
)


def test_where_line_names_vm_tap_and_bridge() -> None:
    view = _view([QEMU])
    line = render.where_line(locate(view, GUEST))
    assert line == (
        "52:54:00:12:34:56 is VM web1's NIC net0 (virtio-net, QEMU pid 4242, fd 32) on tap vnet3 "
        "(tap MAC fe:54:00:12:34:56) on bridge br0, learnt 12 s ago"
    )
    tap_line = render.where_line(locate(view, TAP.mac))
    assert "own MAC of tap vnet3" in tap_line and f"VM web1's NIC net0, MAC {GUEST}" in tap_line
    assert "own MAC of bridge br0" in render.where_line(locate(view, BR.mac))
    assert not locate(view, "02:00:00:00:00:99").found
    explained = render.explain(locate(view, GUEST))
    assert f"guest MAC {GUEST}" in explained and "tap MAC fe:54:00:12:34:56" in explained


def test_where_line_says_what_it_could_not_read() -> None:
    why = "tap owner unknown: no permission to read /proc/4242/fd (run as root)"
    line = render.where_line(locate(_view([], why), GUEST))
    assert line.startswith(f"{GUEST} is behind tap vnet3 (tap MAC fe:54:00:12:34:56; {why})")


def test_schema_accepts_documents_and_catches_violations() -> None:
    view = _view([QEMU])
    answer = locate(view, GUEST)
    docs = [jsonout.show_doc(view), jsonout.where_doc(view, answer, render.where_line(answer))]
    for doc in docs:
        assert schema.validate(json.loads(json.dumps(doc))) == []
    broken = copy.deepcopy(docs[1])
    broken["locations"][0]["tap"]["holders"][0]["pid"] = "4242"
    del broken["locations"][0]["fdb"]["how"]
    broken["extra"] = 1
    errors = schema.validate(broken)
    assert any("pid" in e and "not integer" in e for e in errors), errors
    assert any("missing 'how'" in e for e in errors), errors
    assert any("'extra'" in e for e in errors), errors
    bad_mac = copy.deepcopy(docs[0])
    bad_mac["bridges"][0]["fdb"][0]["mac"] = "52-54-00-12-34-56"
    assert schema.validate(bad_mac)
    with pytest.raises(ValueError, match="not supported"):
        schema.validate({}, {"format": "date"})


def test_the_documented_schema_is_the_shipped_one() -> None:
    from cli_helpers import ROOT

    text = (ROOT / "docs" / "host-inspection.md").read_text()
    block = text.split("```json\n", 1)[1].split("\n```", 1)[0]
    assert json.loads(block) == schema.load()


def test_cli_refuses_mixed_or_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    from vlab.cli import main

    assert main(["show", "--host", "--pid", "1"]) == 1
    assert "drop --pid/--lab" in capsys.readouterr().err
    assert main(["show", "--json"]) == 1
    assert "--json needs --host" in capsys.readouterr().err
    assert main(["where", "52:54:00:00:00:01", "--netns", "999999999"]) == 1
    assert "no such process" in capsys.readouterr().err
    assert main(["where", "nonsense"]) == 1
    assert "is not a MAC address" in capsys.readouterr().err
