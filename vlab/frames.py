"""Frames as tests see them: building bytes, matching with masks, and explaining mismatches.

A failed ``expect`` is only useful if it says *how* the frames that did arrive differ from the one
expected, so matching and the field-by-field diff live together here. Masks compare the frames
after setting the ignored fields to the same value in both, so what is compared is exactly the
wire bytes minus what the test said does not matter.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from scapy.layers.l2 import Ether
from scapy.packet import NoPayload, Packet

from vlab.errors import LabError
from vlab.framecache import frame_bytes

FrameLike = Packet | bytes | bytearray | memoryview


def to_bytes(frame: FrameLike) -> bytes:
    """The bytes of a scapy packet or bytes-like frame; anything else is a LabError.

    A plain Ethernet frame sent again unchanged is not rebuilt (see :mod:`vlab.framecache`).
    """
    if isinstance(frame, Packet):
        return frame_bytes(frame)
    if isinstance(frame, bytes | bytearray | memoryview):
        return bytes(frame)
    raise LabError(f"a frame must be a scapy packet or bytes, not {type(frame).__name__}")


def parse(data: bytes) -> Ether:
    """Decode raw bytes as an Ethernet frame with scapy."""
    return Ether(data)


def _layers(pkt: Packet) -> list[Packet]:
    out = []
    layer: Packet = pkt
    while layer is not None and not isinstance(layer, NoPayload):
        out.append(layer)
        layer = layer.payload
    return out


def _find_layer(pkt: Packet, name: str) -> Packet | None:
    for layer in _layers(pkt):
        if name in (type(layer).__name__, layer.name):
            return layer
    return None


class Mask:
    """Compare only what matters: ``Mask(frame).ignore("IP.ttl", "IP.chksum")``.

    Field names are ``Layer.field`` as scapy names them; naming one the frame does not have is a
    LabError at once (a typo would otherwise silently compare *more* than intended... or less).
    """

    def __init__(self, frame: FrameLike) -> None:
        self.expected_bytes = to_bytes(frame)
        self._expected: Packet | None = None
        self.ignored: list[tuple[str, str]] = []

    @property
    def expected(self) -> Packet:
        """The frame as built (lengths, checksums filled in), for diffs; parsed on demand.

        Not the template the test wrote, whose automatic fields are still None; and not at
        construction, since an exact match needs only the bytes.
        """
        if self._expected is None:
            if len(self.expected_bytes) < 14:  # scapy would fail with a struct.error
                raise LabError(
                    f"a frame of {len(self.expected_bytes)} bytes is shorter than an Ethernet "
                    "header (14): give at least dst, src and type"
                )
            self._expected = parse(self.expected_bytes)
        return self._expected

    def ignore(self, *fields: str) -> Mask:
        """Ignore ``Layer.field`` fields (``IP.ttl``); a field the frame lacks is a LabError."""
        template = self.expected
        for spec in fields:
            layer_name, _, field = spec.partition(".")
            layer = _find_layer(template, layer_name)
            if layer is None:
                have = ", ".join(type(x).__name__ for x in _layers(template))
                raise LabError(
                    f"Mask.ignore({spec!r}): the frame has no {layer_name} layer (it has {have})"
                )
            names = [f.name for f in layer.fields_desc]
            if field not in names:
                raise LabError(
                    f"Mask.ignore({spec!r}): {layer_name} has no field {field!r} "
                    f"(fields: {', '.join(names)})"
                )
            self.ignored.append((layer_name, field))
        if self._overlay(self.expected_bytes) != self.expected_bytes:
            raise LabError(
                "Mask.ignore: this frame does not come back byte for byte from scapy's parse "
                "and rebuild, so fields cannot be masked in it; compare exact bytes instead"
            )
        return self

    def _overlay(self, data: bytes) -> bytes | None:
        """``data`` with every ignored field set to the expected frame's value.

        Copying the expected value (rather than blanking both sides to 0) works for fields of
        any type — an IPv6 address, a list of TCP options — and leaves every other byte as it
        arrived, so what is compared is exactly the frame minus the ignored fields. None when
        the frame lacks an ignored layer or cannot be rebuilt.
        """
        try:
            pkt = parse(data)
            for layer_name, field in self.ignored:
                layer = _find_layer(pkt, layer_name)
                source = _find_layer(self.expected, layer_name)
                if layer is None or source is None:
                    return None
                layer.setfieldval(field, source.getfieldval(field))
            return bytes(pkt)
        except Exception:  # scapy could not rebuild this frame: it is not the expected one
            return None

    def matches(self, data: bytes) -> bool:
        """Whether received bytes equal the expected frame outside the ignored fields."""
        if data == self.expected_bytes:
            return True
        return bool(self.ignored) and self._overlay(data) == self.expected_bytes

    def describe(self) -> str:
        """What the comparison ignores, for failure messages (``exact bytes`` when nothing)."""
        ignored = ", ".join(f"{a}.{b}" for a, b in self.ignored)
        return f"ignoring {ignored}" if ignored else "exact bytes"


def as_mask(frame: FrameLike | Mask) -> Mask:
    """``frame`` as a :class:`Mask` (an exact one unless it already is a mask)."""
    return frame if isinstance(frame, Mask) else Mask(frame)


def _value(v: Any) -> str:
    if isinstance(v, bytes):
        return repr(v) if len(v) <= 24 else repr(v[:24])[:-1] + f"...' ({len(v)} bytes)"
    if isinstance(v, int) and v > 9:
        return f"{v} ({v:#x})"
    return repr(v)


def field_diff(expected: Packet, got: Packet, ignored: Iterable[tuple[str, str]] = ()) -> list[str]:
    """Differences as ``Layer.field: expected X, got Y`` lines, in wire order."""
    skip = set(ignored)
    lines = []
    exp_layers, got_layers = _layers(expected), _layers(got)
    for i, exp in enumerate(exp_layers):
        lname = _label(exp_layers, i)
        if i >= len(got_layers):
            lines.append(f"{lname}: expected this layer, the frame ends before it")
            continue
        have = got_layers[i]
        if type(have) is not type(exp):
            lines.append(f"layer {i + 1}: expected {lname}, got {_label(got_layers, i)}")
            break
        for f in exp.fields_desc:
            if (type(exp).__name__, f.name) in skip:
                continue
            a, b = exp.getfieldval(f.name), have.getfieldval(f.name)
            if a != b:
                lines.append(f"{lname}.{f.name}: expected {_value(a)}, got {_value(b)}")
    for i in range(len(exp_layers), len(got_layers)):
        lines.append(f"unexpected extra layer {_label(got_layers, i)}")
    return lines


def _label(layers: list[Packet], i: int) -> str:
    """A layer's name in a diff; inside a tunnel (after a VXLAN header) ``inner Ether`` and
    so on, so that the outer and the encapsulated frame's fields are told apart."""
    name = type(layers[i]).__name__
    inner = any(type(layer).__name__ == "VXLAN" for layer in layers[:i])
    return f"inner {name}" if inner else name


def summary(data: bytes) -> str:
    """scapy's one-line summary and the length of the whole frame (header included), e.g.
    ``52:54:00:00:00:01 > ff:ff:ff:ff:ff:ff (0x88b5) / Raw [frame 19 B]``."""
    try:
        text = parse(data).summary()
    except Exception:
        text = data[:32].hex()
    return f"{text} [frame {len(data)} B]"


def closeness(mask: Mask, data: bytes) -> tuple[int, int]:
    """Sort key: fewer differing fields first, then closer length."""
    try:
        diff = len(field_diff(mask.expected, parse(data), mask.ignored))
    except Exception:
        diff = 1000
    return diff, abs(len(data) - len(mask.expected_bytes))
