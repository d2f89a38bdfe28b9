"""Put the pieces together: two netlink dumps, one /proc pass, QEMU command lines.

Cost does not grow with bridges: the dumps cover every bridge at once, /proc is walked once, a
QEMU command line is parsed once per process, and only fds whose tap name exists in the target
namespace are checked (see :mod:`tapns`).
"""

from __future__ import annotations

import os

from vlab.hostview import procscan, qemu_cmdline
from vlab.hostview.netlink import FdbRecord, Link, dump_fdb, dump_links
from vlab.hostview.procscan import ProcScan, TapFd
from vlab.hostview.tapns import Checker
from vlab.hostview.target import Target
from vlab.hostview.views import BridgeView, Holder, HostView, Tap, VmNic
from vlab.rtnl import Rtnl

__all__ = ["survey"]


def _dumps(rtnl: Rtnl) -> tuple[list[Link], list[FdbRecord]]:
    return dump_links(rtnl), dump_fdb(rtnl)


class _Qemus:
    """QEMU command lines by pid, read and parsed at most once each."""

    def __init__(self) -> None:
        self._seen: dict[int, qemu_cmdline.QemuCommand | None] = {}

    def get(self, pid: int) -> qemu_cmdline.QemuCommand | None:
        if pid not in self._seen:
            argv = procscan.read_cmdline(pid)
            is_qemu = argv is not None and qemu_cmdline.is_qemu(argv)
            self._seen[pid] = qemu_cmdline.parse(argv) if argv and is_qemu else None
        return self._seen[pid]


def _vm_nic(cmd: qemu_cmdline.QemuCommand, netdev: qemu_cmdline.Netdev | None) -> VmNic | None:
    if netdev is None:
        return None
    nic = cmd.nic_of(netdev)
    if nic is None:
        return VmNic(cmd.name, netdev.id, "?", None, netdev.id)
    return VmNic(cmd.name, nic.label, nic.model, nic.mac, netdev.id)


def _candidates(scan: ProcScan, taps: dict[int, Tap]) -> list[tuple[TapFd, Tap]]:
    by_name = {t.link.name: t for t in taps.values() if t.link.kind == "tun"}
    out = []
    for fd in scan.taps:
        if fd.kind == "tun" and fd.device in by_name:
            out.append((fd, by_name[fd.device]))
        elif fd.kind == "macvtap" and fd.ifindex in taps and taps[fd.ifindex].link.kind != "tun":
            out.append((fd, taps[fd.ifindex]))
    return out


def _attach_fd_holders(
    scan: ProcScan, taps: dict[int, Tap], target: Target, qemus: _Qemus, notes: list[str]
) -> None:
    checker = Checker(target.inode)
    unverifiable: list[str] = []
    try:
        for fd, tap in _candidates(scan, taps):
            verified: bool | None
            if fd.kind == "tun":
                check = checker.tun_here(fd.pid, fd.fd)
                if check.ok is False:
                    continue  # a same-named tap in another namespace
                verified = check.ok
                if check.ok is None:
                    unverifiable.append(check.why)
            else:
                name = checker.macvtap_name(fd.pid, fd.fd)
                if name is not None and name != tap.link.name:
                    continue
                verified = None if name is None else True
            cmd = qemus.get(fd.pid)
            vm = _vm_nic(cmd, cmd.netdev_of_fd(fd.fd)) if cmd else None
            tap.holders.append(
                Holder(
                    fd.pid,
                    fd.fd,
                    scan.comms.get(fd.pid, "?"),
                    scan.uids.get(fd.pid, -1),
                    cmd is not None,
                    vm,
                    verified,
                    "fd",
                )
            )
    finally:
        checker.close()
    if unverifiable:
        notes.append(
            f"{len(unverifiable)} tap fd(s) matched by name only: could not check which "
            f"namespace their device is in ({unverifiable[0]}); a same-named tap of another "
            "namespace would look the same"
        )


def _attach_cmdline_holders(scan: ProcScan, taps: dict[int, Tap], qemus: _Qemus) -> list[int]:
    """QEMUs whose fds are unreadable may still name their tap (``-netdev tap,ifname=``)."""
    by_name = {t.link.name: t for t in taps.values()}
    unreadable_qemu = []
    for pid in scan.unreadable:
        cmd = qemus.get(pid)
        if cmd is None:
            continue
        unreadable_qemu.append(pid)
        for netdev in cmd.netdevs:
            tap = by_name.get(netdev.ifname or "")
            if tap is not None and not tap.holders:
                vm = _vm_nic(cmd, netdev)
                tap.holders.append(Holder(pid, -1, "?", -1, True, vm, None, "cmdline"))
    return unreadable_qemu


def _explain_unknown(tap: Tap, scan: ProcScan, unreadable_qemu: list[int]) -> str | None:
    if tap.holders:
        return None
    if tap.link.tun_queues == 0:
        return "no process holds it (no fd attached: the tap has no carrier)"
    if unreadable_qemu:
        shown = ", ".join(f"/proc/{pid}/fd" for pid in unreadable_qemu[:3])
        more = f" and {len(unreadable_qemu) - 3} more" if len(unreadable_qemu) > 3 else ""
        return f"tap owner unknown: no permission to read {shown}{more} (run as root)"
    if scan.unreadable:
        return (
            f"tap owner unknown: no permission to read the fds of {len(scan.unreadable)} "
            "processes of other users (run as root)"
        )
    return "tap owner unknown: no visible process holds it (another PID namespace?)"


def _focus(mac: str, links: list[Link], fdb: list[FdbRecord], taps: dict[int, Tap]) -> set[int]:
    """The taps a ``where mac`` answer can involve, when the dumps already show them."""
    ports = {e.port for e in fdb if e.mac == mac} | {
        link.index for link in links if link.mac == mac
    }
    return ports & set(taps)


def survey(target: Target, mac: str | None = None) -> HostView:
    """Everything in the namespace; with ``mac``, holders are looked up only for the taps that
    MAC is found on (all taps when it is on none: it may be a quiet guest's configured NIC)."""
    dumps = target.start(_dumps)
    scan = procscan.scan()  # while the kernel answers the dumps
    links, fdb = dumps()
    by_index = {link.index: link for link in links}
    taps = {link.index: Tap(link) for link in links if link.is_tap}
    focus = _focus(mac, links, fdb, taps) if mac is not None else set()
    looked_at = {i: taps[i] for i in focus} if focus else taps
    notes: list[str] = []
    qemus = _Qemus()
    _attach_fd_holders(scan, looked_at, target, qemus, notes)
    unreadable_qemu = _attach_cmdline_holders(scan, looked_at, qemus)
    for tap in looked_at.values():
        tap.owner_unknown = _explain_unknown(tap, scan, unreadable_qemu)
    if scan.unreadable:
        notes.append(
            f"could not read the fds of {len(scan.unreadable)} processes (no permission: "
            "other users' /proc/PID/fd); run as root to see every tap's owner"
        )
    bridges = [
        BridgeView(
            link,
            [p for p in links if p.master == link.index],
            [e for e in fdb if e.bridge == link.index],
        )
        for link in links
        if link.kind == "bridge"
    ]
    return HostView(target.label, target.inode, os.geteuid(), by_index, bridges, taps, fdb, notes)
