"""One pcapng of the whole lab: every endpoint an interface, every frame in time order.

Per-endpoint pcaps answer "what did this port see"; a failure usually asks "what happened, in
which order", across ports. pcapng says that in one file Wireshark opens as it is: an Interface
Description Block per endpoint (named ``vm1 (vnet0)``, nanosecond timestamps) and an Enhanced
Packet Block per frame with its direction (``epb_flags``: inbound = received there, outbound =
sent from there). The timestamps are the kernel's, so the merge is a true order (see
:mod:`vlab.capture`).
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path

SHB, IDB, EPB = 0x0A0D0D0A, 0x00000001, 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
LINKTYPE_ETHERNET = 1
SNAPLEN = 65536 + 4
OPT_END, OPT_COMMENT = 0, 1
IF_NAME, IF_DESCRIPTION, IF_TSRESOL = 2, 3, 9
EPB_FLAGS = 2
INBOUND, OUTBOUND = 1, 2

Event = tuple[int, bool, bytes]  # (ns timestamp, sent by this endpoint, frame)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("=HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _block(kind: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("=II", kind, length) + body + struct.pack("=I", length)


def _header(comment: str) -> bytes:
    options = _option(OPT_COMMENT, comment.encode()) + _option(OPT_END, b"")
    return _block(SHB, struct.pack("=IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + options)


def _interface(name: str, description: str) -> bytes:
    options = (
        _option(IF_NAME, name.encode())
        + _option(IF_DESCRIPTION, description.encode())
        + _option(IF_TSRESOL, b"\x09")  # 10^-9: nanoseconds
        + _option(OPT_END, b"")
    )
    return _block(IDB, struct.pack("=HHI", LINKTYPE_ETHERNET, 0, SNAPLEN) + options)


def _packet(interface: int, ts: int, sent: bool, data: bytes) -> bytes:
    flags = _option(EPB_FLAGS, struct.pack("=I", OUTBOUND if sent else INBOUND))
    head = struct.pack("=IIIII", interface, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data))
    return _block(EPB, head + data + b"\0" * (-len(data) % 4) + flags + _option(OPT_END, b""))


def write_merged(
    path: Path,
    interfaces: Sequence[tuple[str, str, Iterable[Event]]],
    comment: str = "vlab lab capture",
) -> Path:
    """Write ``(name, description, events)`` per interface as one time-ordered pcapng.

    Each interface's events are sorted by time first (a log is appended in drain order, and a
    send is logged before frames drained later but received earlier); the merge is then a heap
    merge, so a lab's 50 000-frame logs cost no more than sorting them once.
    """
    streams = [
        sorted(((ts, i, sent, data) for ts, sent, data in events), key=lambda e: e[0])
        for i, (_name, _desc, events) in enumerate(interfaces)
    ]
    with open(path, "wb") as fh:
        fh.write(_header(comment))
        for name, description, _events in interfaces:
            fh.write(_interface(name, description))
        for ts, i, sent, data in heapq.merge(*streams, key=lambda e: e[0]):
            fh.write(_packet(i, ts, sent, data))
    return path


def read(path: Path) -> tuple[list[str], list[tuple[int, int, bool, bytes]]]:
    """Interface names and ``(interface, ns timestamp, sent, frame)`` records of a file written
    by :func:`write_merged`: an independent check of the format for tests and tools."""
    buf = path.read_bytes()
    names: list[str] = []
    records: list[tuple[int, int, bool, bytes]] = []
    offset = 0
    while offset + 12 <= len(buf):
        kind, length = struct.unpack_from("=II", buf, offset)
        body = buf[offset + 8 : offset + length - 4]
        if kind == IDB:
            opts = _options(body, 8)
            names.append(opts.get(IF_NAME, b"").decode())
        elif kind == EPB:
            interface, high, low, caplen, _orig = struct.unpack_from("=IIIII", body)
            data = body[20 : 20 + caplen]
            opts = _options(body, 20 + caplen + (-caplen % 4))
            flags = struct.unpack("=I", opts.get(EPB_FLAGS, b"\0\0\0\0"))[0]
            records.append((interface, (high << 32) | low, flags & 3 == OUTBOUND, data))
        offset += length
    return names, records


def _options(body: bytes, offset: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while offset + 4 <= len(body):
        code, length = struct.unpack_from("=HH", body, offset)
        if code == OPT_END:
            break
        out[code] = body[offset + 4 : offset + 4 + length]
        offset += 4 + length + (-length % 4)
    return out
