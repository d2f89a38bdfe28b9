"""What a QEMU command line says about a VM's network: its name, netdevs and NICs.

The only place a hypervisor host records which guest NIC sits on which tap fd is QEMU's own
argv: libvirt opens the tap, passes the fd and writes ``-netdev tap,fd=N,id=hostnet0`` and
``-device virtio-net-pci,netdev=hostnet0,id=net0,mac=...``. Newer libvirt writes the same
options as JSON (``-netdev {"type":"tap","fd":"33",...}``); both forms are read here. Pure
parsing, no I/O: the caller reads ``/proc/PID/cmdline``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Netdev", "Nic", "QemuCommand", "is_qemu", "nic_model", "parse", "split_options"]


@dataclass(frozen=True)
class Netdev:
    """A host-side network backend (``-netdev``): a tap by fd, by name, or something else."""

    id: str
    type: str
    fds: tuple[int, ...] = ()
    ifname: str | None = None


@dataclass(frozen=True)
class Nic:
    """A guest NIC (``-device`` of a NIC driver, or ``-nic``) and the netdev it is wired to."""

    driver: str
    netdev: str | None
    mac: str | None
    id: str | None

    @property
    def label(self) -> str:
        """What people call the NIC: its device id (libvirt's ``net0``), else its netdev's id."""
        return self.id or self.netdev or self.driver

    @property
    def model(self) -> str:
        return nic_model(self.driver)


@dataclass(frozen=True)
class QemuCommand:
    name: str | None
    netdevs: tuple[Netdev, ...]
    nics: tuple[Nic, ...]

    def netdev_of_fd(self, fd: int) -> Netdev | None:
        return next((n for n in self.netdevs if fd in n.fds), None)

    def netdev_of_ifname(self, ifname: str) -> Netdev | None:
        return next((n for n in self.netdevs if n.ifname == ifname), None)

    def nic_of(self, netdev: Netdev) -> Nic | None:
        return next((n for n in self.nics if n.netdev == netdev.id), None)


#: Device drivers that are network cards (``-device`` also adds disks, serial ports, ...).
_NIC_PREFIXES = ("virtio-net", "e1000", "rtl8139", "vmxnet3", "ne2k", "pcnet", "i825", "igb")


def is_qemu(argv: Sequence[str]) -> bool:
    """A QEMU system emulator, whatever it renamed its thread to (``-name ...,process=``)."""
    if not argv:
        return False
    base = os.path.basename(argv[0])
    return base.startswith("qemu-system") or base in ("qemu-kvm", "kvm", "qemu")


def nic_model(driver: str) -> str:
    """``virtio-net-pci`` / ``virtio-net-pci-non-transitional`` / ``virtio-net-device`` are all
    virtio-net to the guest; other drivers are their own model."""
    return "virtio-net" if driver.startswith("virtio-net") else driver


def split_options(value: str, implied: str) -> dict[str, str]:
    """QEMU's ``a,key=value,...`` syntax: ``,,`` is a literal comma, a bare first item is
    ``implied`` (``tap`` is the ``type``, ``virtio-net-pci`` the ``driver``)."""
    items: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(value):
        c = value[i]
        if c == ",":
            if value[i + 1 : i + 2] == ",":
                current.append(",")
                i += 2
                continue
            items.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    items.append("".join(current))
    out: dict[str, str] = {}
    for n, item in enumerate(items):
        if "=" in item:
            key, _, val = item.partition("=")
            out[key] = val
        elif n == 0 and item:
            out[implied] = item
        elif item:
            out[item] = "on"  # a bare flag, e.g. ``vhost`` in old syntax
    return out


def _options(value: str, implied: str) -> dict[str, str]:
    if value.lstrip().startswith("{"):
        try:
            decoded = json.loads(value)
        except ValueError:
            return {}
        if not isinstance(decoded, dict):
            return {}
        return {str(k): _scalar(v) for k, v in decoded.items()}
    return split_options(value, implied)


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _fds(opts: dict[str, str]) -> tuple[int, ...]:
    raw = [opts.get("fd", ""), *opts.get("fds", "").split(":")]
    return tuple(int(x) for x in raw if x.isdigit())


def _mac(value: str | None) -> str | None:
    return value.lower() if value else None


def parse(argv: Sequence[str]) -> QemuCommand:
    """The VM name, netdevs and NICs of a QEMU argv; unknown options are skipped."""
    name: str | None = None
    netdevs: list[Netdev] = []
    nics: list[Nic] = []
    i = 1
    while i < len(argv):
        opt = argv[i]
        value = argv[i + 1] if i + 1 < len(argv) else None
        flag = "-" + opt.lstrip("-") if opt.startswith("-") else None
        if flag is None or value is None:
            i += 1
            continue
        if flag == "-name":
            name = _options(value, "guest").get("guest") or name
        elif flag == "-netdev":
            o = _options(value, "type")
            if "id" in o:
                netdevs.append(Netdev(o["id"], o.get("type", ""), _fds(o), o.get("ifname")))
        elif flag == "-device":
            o = _options(value, "driver")
            driver = o.get("driver", "")
            if driver.startswith(_NIC_PREFIXES) or "netdev" in o:
                nics.append(Nic(driver, o.get("netdev"), _mac(o.get("mac")), o.get("id")))
        elif flag == "-nic":  # backend and NIC in one option: the netdev gets an implied id
            o = _options(value, "type")
            ident = o.get("id") or f"nic{sum(1 for n in netdevs if n.id.startswith('nic'))}"
            netdevs.append(Netdev(ident, o.get("type", ""), _fds(o), o.get("ifname")))
            nics.append(Nic(o.get("model", "virtio-net-pci"), ident, _mac(o.get("mac")), None))
        else:
            i += 1
            continue
        i += 2
    return QemuCommand(name, tuple(netdevs), tuple(nics))
