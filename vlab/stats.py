"""Kernel counters of lab links: ``br.port(ep).stats()`` and ``ep.stats()``.

Selftest-style assertions ("the port transmitted exactly one frame", "nothing was dropped")
read the kernel's own link counters, read back over rtnetlink in the namespace the link lives
in, so a test needs neither ``ip -s link`` parsing nor ``tc``. An endpoint's counters are those
of its own NIC: a host's ``eth0`` in its namespace, the uplink's far end in the upstream
namespace, and for a VM its tap seen from the guest's side — the tap's counters swapped, since
what the tap transmits is what the guest receives.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vlab.errors import LabError
from vlab.rtnl import link_stats64

if TYPE_CHECKING:
    from vlab.bridge import Port
    from vlab.endpoints import Endpoint
    from vlab.switch import Namespace

_STATS64 = struct.Struct("=8Q")  # rx/tx packets, rx/tx bytes, rx/tx errors, rx/tx dropped


@dataclass(frozen=True)
class LinkStats:
    """A link's packet, byte and drop counters (``struct rtnl_link_stats64``), both ways."""

    rx_packets: int
    rx_bytes: int
    rx_dropped: int
    tx_packets: int
    tx_bytes: int
    tx_dropped: int

    @classmethod
    def decode(cls, raw: bytes) -> LinkStats:
        """From the kernel's ``struct rtnl_link_stats64`` (IFLA_STATS64), as netlink sends it."""
        rxp, txp, rxb, txb, _rxe, _txe, rxd, txd = _STATS64.unpack_from(raw)
        return cls(rxp, rxb, rxd, txp, txb, txd)

    def swapped(self) -> LinkStats:
        """The same counters seen from the other end of the wire (a tap as its guest sees it)."""
        return LinkStats(
            self.tx_packets,
            self.tx_bytes,
            self.tx_dropped,
            self.rx_packets,
            self.rx_bytes,
            self.rx_dropped,
        )


def read(space: Namespace, index: int, what: str) -> LinkStats:
    """A link's counters since the lab got it: a link reused from an earlier lab (see
    vlab.nspool) counts from where it was handed over, as a new one counts from zero."""
    raw = link_stats64(space.rtnl, index)
    if raw is None or len(raw) < _STATS64.size:
        raise LabError(f"{what}: the kernel has no counters for it (is the link gone?)")
    base = space.counter_base.get(index)
    if base is not None and len(base) >= _STATS64.size:
        now, then = _STATS64.unpack_from(raw), _STATS64.unpack_from(base)
        raw = _STATS64.pack(*(a - b for a, b in zip(now, then, strict=True)))
    return LinkStats.decode(raw)


def port_stats(port: Port) -> LinkStats:
    """The bridge port device's counters, in the switch namespace (rx: from the endpoint)."""
    switch = port.bridge.switch
    switch.guard.check()
    return read(switch.space, port.index, f"port {port.name} of {port.bridge.name}")


def endpoint_stats(ep: Endpoint) -> LinkStats:
    """The endpoint's own NIC's counters (rx: what the endpoint received)."""
    ep.switch.guard.check()
    if ep.tap and ep.bridge is not None:
        return port_stats(ep.bridge.port(ep)).swapped()
    nic = ep.nic()
    if nic is None:
        raise LabError(f"{ep.kind} {ep.name}: it has no NIC of its own to read counters of")
    return read(nic[0], nic[1], f"{ep.kind} {ep.name}'s {getattr(ep, 'ifname', 'NIC')}")
