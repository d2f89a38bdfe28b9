"""What the machine does, as data: the reproducer is written from these records."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from vlab.reference.bridge import OptionValue


@dataclass(frozen=True)
class FrameDraw:
    """A generated frame whose MACs may be references (``vm1.mac``, ``h1.port_mac``, ``br0.mac``).

    References keep draws meaningful across labs and readable in the printed steps; the payload
    is shown by length only, since the reproducer (not this repr) is what gets replayed.
    """

    src: str
    dst: str
    ethertype: int
    payload: bytes = b""
    vlan: int | None = None
    """The 802.1Q TCI (PCP, DEI and VID), or None for an untagged frame."""

    def to_bytes(self, resolve: Callable[[str], bytes]) -> bytes:
        """The frame's bytes, with symbolic addresses (``vm1.mac``) resolved by ``resolve``."""
        tag = b"" if self.vlan is None else struct.pack("!HH", 0x8100, self.vlan)
        head = resolve(self.dst) + resolve(self.src) + tag
        return head + struct.pack("!H", self.ethertype) + self.payload

    def __repr__(self) -> str:
        # valid Python, so hypothesis prints it rather than the byte string it was decoded from
        vlan = "" if self.vlan is None else f", vlan={self.vlan:#06x}"
        payload = f", payload_len={len(self.payload)}" if self.payload else ""
        return (
            f"FrameDraw(src={self.src!r}, dst={self.dst!r}, ethertype={self.ethertype:#06x}"
            f"{vlan}{payload})"
        )


@dataclass(frozen=True)
class Sent:
    """A send as it happened: the exact bytes and the endpoints the model said receive them.

    These records (and the ones below) carry the model's verdicts, so a reproducer can assert
    the model's expectations without re-running the model.
    """

    sender: str
    data: bytes
    expected: frozenset[str]


@dataclass(frozen=True)
class PortChange:
    at: str
    options: tuple[tuple[str, OptionValue], ...]
    accepted: bool
    """The model's verdict: a change it refuses must be refused by the kernel too."""


@dataclass(frozen=True)
class BridgeChange:
    options: tuple[tuple[str, OptionValue], ...]


@dataclass(frozen=True)
class FdbAdd:
    mac: str
    at: str
    static: bool
    sticky: bool
    accepted: bool


@dataclass(frozen=True)
class FdbDel:
    mac: str
    at: str
    accepted: bool


@dataclass(frozen=True)
class FdbFlush:
    pass


@dataclass(frozen=True)
class Carrier:
    at: str
    up: bool


Op: TypeAlias = Sent | PortChange | BridgeChange | FdbAdd | FdbDel | FdbFlush | Carrier
