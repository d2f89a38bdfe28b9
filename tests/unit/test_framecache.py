"""A scapy frame sent again unchanged is not rebuilt, and a changed one always is.

The cache behind ``to_bytes`` is only worth having if it can never hand out stale bytes: every
way of changing a frame below is followed by a check that the bytes are scapy's own for the
frame as it is now, and frames whose bytes may differ from build to build (random values,
fields resolved at build time) are shown not to be remembered at all.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Packet, Raw
from scapy.volatile import RandMAC

from vlab import framecache
from vlab.frames import to_bytes

SRC, DST = "52:54:00:00:00:01", "02:00:00:00:00:99"


def plain() -> Packet:
    return Ether(src=SRC, dst=DST, type=0x8100) / Dot1Q(prio=0, dei=0, vlan=5, type=0x88B5) / b"x"


def test_a_plain_frame_is_built_once() -> None:
    pkt = plain()
    first = to_bytes(pkt)
    assert first == bytes(pkt)
    assert to_bytes(pkt) is first, "the second send rebuilt an unchanged frame"


def _set_src(p: Packet) -> None:
    p.src = "52:54:00:00:00:02"


def _set_vlan(p: Packet) -> None:
    p[Dot1Q].vlan = 7


def _set_load(p: Packet) -> None:
    p[Raw].load = b"changed"


def _add_payload(p: Packet) -> None:
    p[Raw].add_payload(Raw(b"more"))


def _remove_payload(p: Packet) -> None:
    p[Dot1Q].remove_payload()


def _field_dict(p: Packet) -> None:
    p.fields["type"] = 0x88A8


def _unset(p: Packet) -> None:
    del p[Dot1Q].type  # back to its default


CHANGES: dict[str, Callable[[Packet], None]] = {
    "field": _set_src,
    "inner tag": _set_vlan,
    "payload bytes": _set_load,
    "payload added": _add_payload,
    "payload removed": _remove_payload,
    "fields dict": _field_dict,
    "field unset": _unset,
}


@pytest.mark.parametrize("change", CHANGES)
def test_every_change_builds_again(change: str) -> None:
    pkt = plain()
    before = to_bytes(pkt)
    CHANGES[change](pkt)
    after = to_bytes(pkt)
    assert after == bytes(pkt), "stale bytes handed out after a change"
    assert after != before, "the change did not change the frame: the test proves nothing"


def test_a_random_value_is_drawn_at_every_build() -> None:
    pkt = plain()
    to_bytes(pkt)
    pkt.dst = RandMAC()
    assert len({to_bytes(pkt)[:6] for _ in range(5)}) > 1, "a RandMAC() frame was remembered"


@pytest.mark.parametrize(
    "pkt",
    [
        Ether(src=SRC, dst=DST) / b"type left to scapy",
        Ether(dst=DST, type=0x88B5) / b"source resolved from the routing table",
        Ether(src=SRC, dst=DST, type=0x800) / IP(dst="192.0.2.1") / UDP() / b"checksums",
        Ether(src=SRC, dst=DST, type=0x88B5) / Raw(load=[b"a"]),  # type: ignore[arg-type]
    ],
    ids=["default type", "unset source", "IP/UDP", "list value"],
)
def test_frames_that_may_build_differently_are_not_remembered(pkt: Packet) -> None:
    framecache.forget()
    to_bytes(pkt)
    assert id(pkt) not in framecache._known


def test_a_layer_of_another_frame_is_not_remembered() -> None:
    framecache.forget()
    inner = plain()[Dot1Q]
    assert to_bytes(inner) == bytes(inner)
    assert id(inner) not in framecache._known


def test_the_cache_stays_bounded() -> None:
    framecache.forget()
    for n in range(3 * framecache.KEEP):
        to_bytes(Ether(src=SRC, dst=DST, type=0x88B5) / bytes([n]))
    assert len(framecache._known) <= framecache.KEEP
