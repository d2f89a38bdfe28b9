"""The bytes of a scapy frame that is sent again unchanged, built once.

A test often sends the same frame object many times (a probe before and after a change, a
negative check in a loop), and scapy rebuilds it every time: tens of microseconds for an
Ethernet header and a payload, a third of a ``send`` + ``expect_none``. Rebuilding is only
needed when the result can differ, and for the plain layers below it cannot, as long as the
packet still holds the same layers with the same values:

* only Ethernet, 802.1Q/802.1ad tags and raw payload (classes exactly, not subclasses);
  their bytes are their fields packed one after the other, with no length, checksum or
  post-build step;
* every field of every layer given explicitly, as an ``int``, ``str`` or ``bytes``: an unset
  field may be resolved from the host at build time (an Ethernet source or destination from
  the routing table), and a random or list value (``RandMAC()``, ``[1, 2]``) builds to
  different bytes each time;
* the packet is a top layer (no underlayer), never dissected (no raw cache), with no post
  transforms.

Anything else is built by scapy every time, as before. A hit re-checks all of this (the same
layer objects in the same order, equal field dicts, plain types), so changing a field, adding
or removing a payload, or replacing a value with a random one builds again.
"""

from __future__ import annotations

from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
from scapy.packet import NoPayload, Packet, Raw

_PURE: frozenset[type] = frozenset({Ether, Dot1Q, Dot1AD, Raw})
_PLAIN: frozenset[type] = frozenset({int, str, bytes})
KEEP = 64  # frames remembered; the oldest is forgotten first

Snapshot = list[tuple[Packet, dict[str, object]]]
_known: dict[int, tuple[Packet, Snapshot, bytes]] = {}


def _snapshot(pkt: Packet) -> Snapshot | None:
    """Each layer and a copy of its fields, or None when the frame's bytes could change
    without its fields changing (see the module's rules)."""
    if pkt.underlayer is not None:
        return None
    out: Snapshot = []
    layer: Packet = pkt
    while not isinstance(layer, NoPayload):
        if type(layer) not in _PURE or not _plain(layer):
            return None
        out.append((layer, dict(layer.fields)))
        layer = layer.payload
    return out


def _plain(layer: Packet) -> bool:
    fields = layer.fields
    if layer.raw_packet_cache is not None or layer.post_transforms:
        return False
    if fields.keys() != layer.default_fields.keys():  # a field left to its default
        return False
    return all(type(value) in _PLAIN for value in fields.values())


def _unchanged(pkt: Packet, snapshot: Snapshot) -> bool:
    if pkt.underlayer is not None:
        return False
    layer: Packet = pkt
    for obj, fields in snapshot:
        if layer is not obj or layer.fields != fields or not _plain(layer):
            return False
        layer = layer.payload
    return isinstance(layer, NoPayload)


def frame_bytes(pkt: Packet) -> bytes:
    """``bytes(pkt)``, built by scapy only when it may differ from the last build."""
    known = _known.get(id(pkt))
    if known is not None and known[0] is pkt and _unchanged(pkt, known[1]):
        return known[2]
    data = bytes(pkt)
    snapshot = _snapshot(pkt)
    if snapshot is not None:
        if len(_known) >= KEEP:
            try:
                del _known[next(iter(_known))]
            except (RuntimeError, KeyError, StopIteration):  # another thread's send meanwhile
                _known.clear()
        _known[id(pkt)] = (pkt, snapshot, data)  # holding pkt: its id is not reused meanwhile
    return data


def forget() -> None:
    """Drop every remembered frame (tests that count objects, or free memory)."""
    _known.clear()
