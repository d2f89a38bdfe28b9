"""frame_spec turns bytes into a declaration that rebuilds them exactly."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vlab.scenario.from_frames import frame_spec
from vlab.scenario.spec import FrameSpec, HexPayload, TextPayload, Vlan
from vlab.scenario.wire import build

NAMES = {"52:54:00:00:00:01": "vm1.mac"}
INVERSE = {v: k for k, v in NAMES.items()}


def rebuild(spec: FrameSpec) -> bytes:
    return build(spec, INVERSE.__getitem__)


def test_plain_frame_becomes_fields_with_references() -> None:
    data = bytes.fromhex("ffffffffffff525400000001810060640800") + b"hello"
    spec = frame_spec(data, NAMES)
    assert spec == FrameSpec(
        src="vm1.mac",
        dst="ff:ff:ff:ff:ff:ff",
        ethertype=0x0800,
        vlan=Vlan(100, 3),
        payload=TextPayload("hello"),
    )
    assert rebuild(spec) == data


def test_binary_payload_is_hex_and_odd_frames_stay_raw() -> None:
    data = bytes.fromhex("02000000000102000000000288b500ff")
    assert frame_spec(data).payload == HexPayload(b"\x00\xff")
    dot3 = bytes.fromhex("0180c20000000200000000020026") + bytes(38)
    assert frame_spec(dot3) == FrameSpec(raw=dot3)
    dei = bytes.fromhex("0200000000010200000000028100106488b5")
    assert frame_spec(dei) == FrameSpec(raw=dei)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=80))
def test_any_bytes_rebuild_exactly(data: bytes) -> None:
    assert rebuild(frame_spec(data, NAMES)) == data
