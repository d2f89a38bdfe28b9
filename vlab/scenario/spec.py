"""The pure-data form of a scenario: what the file says, with nothing built yet.

These objects are what the loader produces, what :func:`dump_scenario` writes back and what other
code (the property-test machine saving a shrunk failing example) constructs directly. They hold
only strings, numbers and tuples, so two scenarios compare equal exactly when they mean the same
thing; source positions ride along for error messages but are excluded from comparison.

MAC-valued frame fields are strings that are either a literal MAC (``"52:54:00:00:00:01"``) or a
reference resolved against the lab when the step runs: ``vm1.mac`` (an endpoint's own MAC),
``vm1.port_mac`` (the MAC of the bridge port it is cabled to) or ``br0.mac`` (the bridge's MAC).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from vlab.scenario.errors import Position

OptionValue: TypeAlias = bool | int | float | str
"""A bridge or port option value in the friendly units of the public API (seconds, booleans)."""

Options: TypeAlias = tuple[tuple[str, OptionValue], ...]
"""Options in the order written; a tuple of pairs keeps scenarios hashable and ordered."""

# Every located object has ``where``: its source position, kept for messages and excluded from
# ``==`` and ``repr`` so a scenario built in code equals the same scenario loaded from a file.


# --- frames -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Vlan:
    """An 802.1Q tag (or 802.1ad with ``tpid=0x88a8``), optionally over an inner 802.1Q tag
    ``inner`` (QinQ); the VLAN-unaware bridge passes tags through untouched."""

    id: int
    prio: int = 0
    tpid: int = 0x8100
    inner: int | None = None


@dataclass(frozen=True)
class TextPayload:
    """Payload given as readable text (UTF-8 encoded on the wire)."""

    text: str


@dataclass(frozen=True)
class HexPayload:
    """Payload given byte for byte."""

    data: bytes


@dataclass(frozen=True)
class SizePayload:
    """Payload of a given length whose content does not matter (a repeating 00..ff pattern)."""

    size: int


Payload: TypeAlias = TextPayload | HexPayload | SizePayload


@dataclass(frozen=True)
class Arp:
    """An ARP request or reply; MACs default to the frame's source and to zeros/broadcast."""

    op: Literal["request", "reply"]
    sender_ip: str
    target_ip: str
    sender_mac: str | None = None
    target_mac: str | None = None


@dataclass(frozen=True)
class Udp:
    """A UDP header inside an :class:`Ipv4` helper."""

    sport: int
    dport: int


@dataclass(frozen=True)
class Ipv4:
    """An IPv4 packet, optionally carrying UDP; the payload is the innermost data."""

    src: str
    dst: str
    ttl: int = 64
    udp: Udp | None = None
    payload: Payload | None = None


IgmpRecordType: TypeAlias = Literal["is_in", "is_ex", "to_in", "to_ex", "allow", "block"]


@dataclass(frozen=True)
class IgmpRecord:
    """One group record of an IGMPv3 report."""

    type: IgmpRecordType
    group: str
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class Igmp:
    """An IGMP message: v2 report/leave/query by group, or a v3 report made of records.

    ``source_ip`` is the IP source address of the packet (the reporting host).
    """

    version: Literal[2, 3] = 2
    report: str | None = None
    leave: str | None = None
    query: str | None = None
    records: tuple[IgmpRecord, ...] = ()
    source_ip: str = "192.0.2.1"


@dataclass(frozen=True)
class Lldp:
    """A minimal LLDPDU (chassis, port, TTL, end) sent to 01:80:c2:00:00:0e by default."""

    chassis: str | None = None
    port: str = "1"
    ttl: int = 120


@dataclass(frozen=True)
class Eapol:
    """An EAPOL frame (802.1X) sent to the PAE group 01:80:c2:00:00:03 by default."""

    type: Literal["start", "logoff"] = "start"


@dataclass(frozen=True)
class Stp:
    """An 802.1D BPDU (LLC 42/42) sent to 01:80:c2:00:00:00 by default."""

    type: Literal["config", "tcn"] = "config"
    root_priority: int = 32768
    root_mac: str | None = None
    cost: int = 0
    port_id: int = 0x8001


@dataclass(frozen=True)
class NdOption:
    """A raw neighbour-discovery option; ``length`` is in units of 8 bytes as on the wire.

    It is written exactly as given, so malformed options (zero length, running past the packet)
    can be expressed: those are the bugs the bridge's ND suppression had.
    """

    type: int
    length: int
    data: bytes = b""


@dataclass(frozen=True)
class Ipv6Ns:
    """An ICMPv6 neighbour solicitation for ``target``, to its solicited-node group by default."""

    src: str
    target: str
    dst: str | None = None
    options: tuple[NdOption, ...] = ()


Helper: TypeAlias = Arp | Ipv4 | Igmp | Lldp | Eapol | Stp | Ipv6Ns


@dataclass(frozen=True)
class FrameSpec:
    """A frame declared field by field, or ``raw`` bytes taken verbatim.

    Exactly one body is used: ``raw``, a ``helper``, or ``payload`` (with ``ethertype``, default
    0x88b5, the IEEE local-experimental type, so test frames never look like real protocols).
    """

    src: str | None = None
    dst: str | None = None
    ethertype: int | None = None
    vlan: Vlan | None = None
    payload: Payload | None = None
    helper: Helper | None = None
    raw: bytes | None = None


FrameRef: TypeAlias = str | FrameSpec
"""A frame inline, or the name of one declared under ``frames:``."""


# --- topology ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointSpec:
    """A VM (tap), host (namespace + veth) or uplink cabled to a bridge."""

    name: str
    mac: str | None = None
    port: Options = ()
    mtu: int | None = None  # of the cable/tap; frames up to mtu + 14 (+ 4 tagged) can be sent
    where: Position | None = field(default=None, compare=False, repr=False)
    ip: tuple[str, ...] = ()  # a host's addresses ("192.0.2.1/24"); hosts only
    macvtap: str | None = None  # a VM's lower device (a nic, host or uplink of its bridge)
    mode: str | None = None  # the macvtap's mode (bridge, vepa, private, passthru)
    vlans: tuple[VlanMember, ...] | None = None  # exactly these VLANs (None: the default PVID)


@dataclass(frozen=True)
class VlanMember:
    """Membership of VLANs ``first``..``last`` (one VLAN when equal) of a port or the bridge."""

    first: int
    last: int
    pvid: bool = False
    untagged: bool = False

    @property
    def vids(self) -> str:
        """``"10"`` or ``"10-20"``, as written in a file and passed to ``vlan_add``."""
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"


@dataclass(frozen=True)
class FdbEntrySpec:
    """A user fdb entry; ``at`` names the endpoint whose port the MAC is behind."""

    mac: str
    at: str
    sticky: bool = False
    static: bool = True
    where: Position | None = field(default=None, compare=False, repr=False)
    vlan: int | None = None  # its VLAN on a VLAN-aware bridge


@dataclass(frozen=True)
class NicSpec:
    """A bare port of a bridge (``nics:``): the hypervisor NIC macvtap VMs are stacked on."""

    name: str
    mac: str | None = None
    port: Options = ()
    where: Position | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class VxlanSpec:
    """A VXLAN link from this bridge to ``peer``, a bridge on another hypervisor.

    ``underlay`` names the two endpoints that watch the underlay (at this bridge's hypervisor,
    then at the peer's), or is empty.
    """

    peer: str
    vni: int
    dstport: int = 4789
    learning: bool = True
    underlay: tuple[str, ...] = ()
    where: Position | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class BridgeSpec:
    """A bridge, its options and what is cabled to it, created in this order: nics, tap vms,
    hosts, uplink, macvtap vms (their lower device exists by then)."""

    name: str
    options: Options = ()
    vms: tuple[EndpointSpec, ...] = ()
    hosts: tuple[EndpointSpec, ...] = ()
    uplink: EndpointSpec | None = None
    fdb: tuple[FdbEntrySpec, ...] = ()
    where: Position | None = field(default=None, compare=False, repr=False)
    vlans: tuple[VlanMember, ...] | None = None  # the bridge device's own VLANs ("self")
    nics: tuple[NicSpec, ...] = ()
    hypervisor: str | None = None  # None: the lab's own switch namespace
    vxlan: tuple[VxlanSpec, ...] = ()

    def endpoints(self) -> tuple[EndpointSpec, ...]:
        """Every endpoint of this bridge in creation order."""
        return self.vms + self.hosts + ((self.uplink,) if self.uplink else ())


@dataclass(frozen=True)
class CableSpec:
    """A cable between two bridges (``cables:``): a veth whose ends are ports of both, with
    the same port options on each end."""

    name: str
    between: tuple[str, str]
    options: Options = ()
    where: Position | None = field(default=None, compare=False, repr=False)


# --- steps ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """Send a frame from an endpoint (into the bridge)."""

    source: str
    frame: FrameRef
    note: str | None = None
    where: Position | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Expect:
    """The frame (default: the one sent last) arrives at each of ``at``.

    ``only`` also requires that it arrives at no other endpoint. ``ignore`` lists scapy
    ``Layer.field`` names left out of the comparison (for fields the kernel fills in).
    """

    at: tuple[str, ...]
    frame: FrameRef | None = None
    only: bool = False
    ignore: tuple[str, ...] = ()
    note: str | None = None
    where: Position | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ExpectNone:
    """Nothing (or not this frame) arrives at ``at``; an empty ``at`` means every endpoint."""

    at: tuple[str, ...] = ()
    frame: FrameRef | None = None
    note: str | None = None
    where: Position | None = field(default=None, compare=False, repr=False)


FdbKind: TypeAlias = Literal["any", "learnt", "static", "sticky", "local", "locked"]


@dataclass(frozen=True)
class FdbCheckEntry:
    """An fdb entry to look for; ``at`` is an endpoint name or the bridge's own name (local)."""

    mac: str
    at: str | None = None
    kind: FdbKind = "any"
    vlan: int | None = None  # only an entry in this VLAN counts


@dataclass(frozen=True)
class Fdb:
    """The bridge's fdb contains and lacks the given entries."""

    bridge: str
    contains: tuple[FdbCheckEntry, ...] = ()
    lacks: tuple[FdbCheckEntry, ...] = ()
    note: str | None = None
    where: Position | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class FdbAdd:
    """Add a user fdb entry while the scenario runs."""

    entry: FdbEntrySpec
    note: str | None = None
    where: Position | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class FdbDel:
    """Remove the entry for ``mac`` behind an endpoint's port."""

    mac: str
    at: str
    note: str | None = None
    where: Position | None = field(default=None, compare=False, repr=False)
    vlan: int | None = None


@dataclass(frozen=True)
class FdbFlush:
    """Forget every dynamic entry of a bridge (static and local ones stay)."""

    bridge: str
    note: str | None = None
    where: Position | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class SetBridge:
    """Change bridge options; ``rejected`` means the kernel must refuse the change."""

    bridge: str
    options: Options
    rejected: bool = False
    note: str | None = None
    where: Position | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class SetPort:
    """Change the options of the bridge port an endpoint is cabled to."""

    at: str
    options: Options
    rejected: bool = False
    note: str | None = None
    where: Position | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Carrier:
    """Take an endpoint's link down or bring it back up (the bridge port sees carrier change)."""

    at: str
    up: bool
    note: str | None = None
    where: Position | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Converge:
    """Wait until STP has settled (``lab.converge``): every STP port forwarding or blocking."""

    timeout: float | None = None
    note: str | None = None
    where: Position | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Wait:
    """Let lab time pass (ageing, STP timers, IGMP intervals)."""

    seconds: float
    note: str | None = None
    where: Position | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Neigh:
    """Add a neighbour entry (IPv4 or IPv6 -> MAC) on the bridge, as neigh_suppress consults."""

    bridge: str
    ip: str
    mac: str
    note: str | None = None
    where: Position | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class VlanAdd:
    """Join VLANs (``at``: an endpoint's port, or the bridge itself)."""

    at: str
    member: VlanMember
    note: str | None = None
    where: Position | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class VlanDel:
    """Leave VLANs ``first``..``last``."""

    at: str
    first: int
    last: int
    note: str | None = None
    where: Position | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class VlanSet:
    """The per-VLAN STP state of VLANs ``first``..``last`` on ``at``."""

    at: str
    first: int
    last: int
    state: str
    note: str | None = None
    where: Position | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class VlanGlobal:
    """Per-VLAN multicast options of a bridge (``bridge vlan global set``)."""

    bridge: str
    first: int
    last: int
    options: Options
    note: str | None = None
    where: Position | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Vlans:
    """``at``'s VLANs, read back from the kernel, are exactly ``members``."""

    at: str
    members: tuple[VlanMember, ...]
    note: str | None = None
    where: Position | None = field(default=None, compare=False, repr=False)


Step: TypeAlias = (
    Send
    | Expect
    | ExpectNone
    | Fdb
    | FdbAdd
    | FdbDel
    | FdbFlush
    | SetBridge
    | SetPort
    | Carrier
    | Wait
    | Neigh
    | Converge
    | VlanAdd
    | VlanDel
    | VlanSet
    | VlanGlobal
    | Vlans
)


# --- the whole ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class KernelRange:
    """Kernels matching ``kernel`` (e.g. ``">=5.18,<6.20"``) and why they are special."""

    kernel: str
    reason: str


@dataclass(frozen=True)
class Scenario:
    """One scenario file: metadata, topology, named frames and the steps to run in order.

    ``xfail`` lists kernels with a known bug that makes the scenario fail; ``skip`` lists kernels
    it must never run on (a bug there hangs or crashes the machine rather than failing a test).
    """

    name: str
    bridges: tuple[BridgeSpec, ...]
    steps: tuple[Step, ...]
    description: str = ""
    references: tuple[str, ...] = ()
    xfail: tuple[KernelRange, ...] = ()
    skip: tuple[KernelRange, ...] = ()
    requires: tuple[str, ...] = ()
    frames: tuple[tuple[str, FrameSpec], ...] = ()
    cables: tuple[CableSpec, ...] = ()
    where: Position | None = field(default=None, compare=False, repr=False)

    def endpoints(self) -> dict[str, tuple[BridgeSpec, EndpointSpec]]:
        """Every endpoint by name, with the bridge it is cabled to, in creation order."""
        return {ep.name: (br, ep) for br in self.bridges for ep in br.endpoints()}

    def frame(self, ref: FrameRef) -> FrameSpec:
        """The frame ``ref`` denotes (a name under ``frames:`` or the inline frame itself)."""
        if isinstance(ref, FrameSpec):
            return ref
        return dict(self.frames)[ref]
