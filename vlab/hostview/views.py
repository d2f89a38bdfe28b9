"""What an inspection found: bridges with their ports and fdb, taps with the processes holding
them and, for QEMU, the VM and NIC on the other end. Plain data; :mod:`survey` fills it in."""

from __future__ import annotations

from dataclasses import dataclass, field

from vlab.hostview.netlink import FdbRecord, Link

__all__ = ["BridgeView", "Holder", "HostView", "Tap", "VmNic"]


@dataclass(frozen=True)
class VmNic:
    """The guest NIC a QEMU process wired to a tap fd (from its command line)."""

    vm: str | None  # -name guest=web1 / -name web1
    nic: str  # the NIC's device id, else its netdev id
    model: str  # virtio-net, e1000, ...
    mac: str | None  # the guest's MAC: -device ...,mac=
    netdev: str


@dataclass(frozen=True)
class Holder:
    """A process holding a tap: ``fd`` is its fd number (-1 when found only by ifname= on the
    command line of a QEMU whose fds could not be read)."""

    pid: int
    fd: int
    comm: str
    uid: int
    qemu: bool
    vm: VmNic | None
    verified: bool | None  # the fd's device proven to be in this namespace; None: not checkable
    source: str  # "fd" (read from /proc/PID/fd) or "cmdline" (QEMU's -netdev ifname=)


@dataclass
class Tap:
    link: Link
    holders: list[Holder] = field(default_factory=list)
    owner_unknown: str | None = None  # why no holder could be named

    @property
    def qemu(self) -> Holder | None:
        """The QEMU holder with a NIC on this tap, if any (vlab itself may also hold it)."""
        return next((h for h in self.holders if h.vm is not None), None) or next(
            (h for h in self.holders if h.qemu), None
        )


@dataclass
class BridgeView:
    link: Link
    ports: list[Link]
    fdb: list[FdbRecord]


@dataclass
class HostView:
    netns: str  # how the user named it
    inode: int
    uid: int
    links: dict[int, Link]
    bridges: list[BridgeView]
    taps: dict[int, Tap]  # by ifindex
    fdb: list[FdbRecord]
    notes: list[str] = field(default_factory=list)

    def link_name(self, index: int) -> str:
        link = self.links.get(index)
        return link.name if link else f"if{index}"
