"""An immutable picture of a lab, for failure reports and artifacts.

A failure report must not reach into the live lab: the lab may be half torn down, other threads
may be sending, and a report that reads kernel state while formatting can fail in its turn and
hide the test's own failure. So the lab hands :mod:`vlab.report` a :class:`LabSnapshot` — its
endpoints with what they received and logged, its topology and fdb as text, where artifacts go
— and the report formats that alone (as PTF's result objects format themselves).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from vlab.capture import Record

LogEntry = tuple[int, bool, bytes]
"""One frame of an endpoint's pcap log: (ns timestamp, sent by the endpoint, bytes)."""


@dataclass(frozen=True)
class EndpointSnapshot:
    """One endpoint as a report needs it: who it is, where it is cabled, what it holds."""

    name: str
    kind: str
    mac: str
    port: str
    bridge: str | None  # None for an endpoint in no bridge
    location: str  # where it is cabled, for messages: "port vnet0 on br0", "veth0, in no bridge"
    description: str  # the kind's own describe() line
    pending: tuple[Record, ...]  # received and not consumed, in arrival order
    log: tuple[LogEntry, ...] = field(repr=False)  # what goes into its pcap


@dataclass(frozen=True)
class LabSnapshot:
    """The lab at one moment: its endpoints, topology and fdb text, and its artifact directory."""

    name: str
    closed: bool
    endpoints: tuple[EndpointSnapshot, ...]
    topology: str  # lab.describe()
    fdb: str | None  # every bridge's fdb and mdb as text; None when it could not be read
    artifact_dir: Path  # where pcaps and topology.txt of this lab are written
    # captures that belong to no endpoint (each end of a cable): (file stem, interface name,
    # description, log) — a pcap each and an interface of the merged pcapng
    links: tuple[tuple[str, str, str, tuple[LogEntry, ...]], ...] = ()

    @property
    def by_name(self) -> Mapping[str, EndpointSnapshot]:
        """The endpoints by name."""
        return {ep.name: ep for ep in self.endpoints}

    def __str__(self) -> str:
        """The topology and, when it could be read, the fdb."""
        return self.topology if self.fdb is None else f"{self.topology}\n\n{self.fdb}"
