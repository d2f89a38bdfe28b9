"""The merged pcapng, written without a lab: interfaces by name, time order across them,
direction flags, and readable by scapy (Wireshark's format, an independent reader)."""

from __future__ import annotations

from pathlib import Path

from scapy.layers.l2 import Ether
from scapy.utils import PcapNgReader

from vlab import pcapng


def frame(n: int) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / bytes([n]))


def test_round_trip_in_time_order(tmp_path: Path) -> None:
    base = 1_796_000_000_123_456_789
    a = [(base + 30, False, frame(3)), (base + 10, True, frame(1))]  # a log out of order
    b = [(base + 20, False, frame(2) + b"odd"), (base + 40, True, frame(4))]
    path = pcapng.write_merged(
        tmp_path / "lab.pcapng", [("vm1 (vnet0)", "a", a), ("up (eth0)", "b", b)]
    )
    names, records = pcapng.read(path)
    assert names == ["vm1 (vnet0)", "up (eth0)"]
    assert [(i, ts - base, sent) for i, ts, sent, _d in records] == [
        (0, 10, True),
        (1, 20, False),
        (0, 30, False),
        (1, 40, True),
    ]
    assert records[1][3] == frame(2) + b"odd"  # an odd length, padded on disk, exact on read
    pkts = list(PcapNgReader(str(path)))
    assert [p.sniffed_on for p in pkts] == ["vm1 (vnet0)", "up (eth0)", "vm1 (vnet0)", "up (eth0)"]
    assert [int(p.time * 10**9) - base for p in pkts] == [10, 20, 30, 40]
    assert [p.direction for p in pkts] == [2, 1, 1, 2]  # outbound = sent there
    assert bytes(pkts[1]) == frame(2) + b"odd"


def test_an_interface_without_frames_is_still_described(tmp_path: Path) -> None:
    path = pcapng.write_merged(tmp_path / "x.pcapng", [("quiet (vnet9)", "", [])])
    assert pcapng.read(path) == (["quiet (vnet9)"], [])
