"""Turning captured or generated frame bytes back into a readable frame declaration.

A shrunk property-test failure is a list of byte strings; saved verbatim (``raw:``) it reproduces
but nobody can review it. :func:`frame_spec` splits a frame into src/dst/vlan/ethertype/payload
and names MACs it recognises (``vm1.mac``), falling back to ``raw`` whenever the field form would
not rebuild the exact same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping

from vlab.scenario.spec import FrameSpec, HexPayload, Payload, TextPayload, Vlan
from vlab.scenario.wire import build

ETH_HEADER = 14
PRINTABLE = frozenset(range(0x20, 0x7F))


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _payload(data: bytes) -> Payload | None:
    if not data:
        return None
    if all(b in PRINTABLE for b in data) and data == data.strip() and "  " not in data.decode():
        return TextPayload(data.decode())
    return HexPayload(data)


def frame_spec(data: bytes, names: Mapping[str, str] | None = None) -> FrameSpec:
    """A declaration that builds exactly ``data``; ``names`` maps MACs to references.

    ``names`` is e.g. ``{"52:54:00:00:00:01": "vm1.mac"}``: the references are resolved back
    to the same MACs when the scenario pins them in its topology.
    """
    names = dict(names or {})
    raw = FrameSpec(raw=data)
    if len(data) < ETH_HEADER:
        return raw
    dst, src = _mac(data[0:6]), _mac(data[6:12])
    vlan = None
    rest = data[12:]
    if rest[:2] == b"\x81\x00" and len(rest) >= 6:
        tci = int.from_bytes(rest[2:4], "big")
        if tci & 0x1000:  # DEI has no field in a declaration
            return raw
        vlan = Vlan(tci & 0x0FFF, tci >> 13)
        rest = rest[4:]
    ethertype = int.from_bytes(rest[:2], "big")
    if ethertype < 0x0600:  # an 802.3 length field, not an ethertype
        return raw
    spec = FrameSpec(
        src=names.get(src, src),
        dst=names.get(dst, dst),
        ethertype=ethertype,
        vlan=vlan,
        payload=_payload(rest[2:]),
    )
    inverse = {ref: mac for mac, ref in names.items()}
    try:
        rebuilt = build(spec, inverse.__getitem__)
    except (KeyError, ValueError):
        return raw
    return spec if rebuilt == data else raw
