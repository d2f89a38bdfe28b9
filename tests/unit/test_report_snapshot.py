"""Failure text and artifacts come from a snapshot of the lab, not from the live lab.

No namespace, no root: a :class:`vlab.snapshot.LabSnapshot` written by hand is all
:mod:`vlab.report` needs, which is what lets a report be produced while the lab is half torn
down, or after it is closed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from scapy.layers.l2 import Ether

from vlab import report
from vlab.frames import Mask
from vlab.snapshot import EndpointSnapshot, LabSnapshot

A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"


def frame(src: str, tag: bytes) -> bytes:
    return bytes(Ether(src=src, dst="02:00:00:00:00:99", type=0x88B5) / tag)


def endpoint(name: str, port: str, pending: list[bytes]) -> EndpointSnapshot:
    records = tuple((1_000 + i, data) for i, data in enumerate(pending))
    log = tuple((ts, False, data) for ts, data in records)
    return EndpointSnapshot(
        name, "vm", A, port, "br0", f"port {port} on br0", f"vm {name} on br0", records, log
    )


def snapshot(tmp_path: Path, *endpoints: EndpointSnapshot) -> LabSnapshot:
    return LabSnapshot("t", True, endpoints, "lab t\n  bridge br0", None, tmp_path / "art")


def test_a_missing_frame_is_told_from_the_snapshot_alone(tmp_path: Path) -> None:
    near, far = frame(A, b"almost"), frame(B, b"other")
    snap = snapshot(
        tmp_path, endpoint("vm1", "vnet0", [far, near]), endpoint("vm2", "vnet1", [frame(A, b"x")])
    )
    text = report.missing_frame(snap, "vm1", Mask(Ether(frame(A, b"x"))), 0.5)
    assert text.startswith("vm1 (port vnet0 on br0) did not receive the expected frame within 0.5")
    assert "arrived at vm1, not consumed, closest first (2):" in text
    assert text.index("got b'almost'") < text.index("got b'other'")  # closest first
    assert "the expected frame did arrive at: vm2" in text
    assert str(tmp_path / "art") in text
    assert (tmp_path / "art" / "vm1-vnet0.pcap").stat().st_size > 24  # header and two frames
    assert (tmp_path / "art" / "topology.txt").read_text() == "lab t\n  bridge br0\n"


def test_a_snapshot_cannot_be_changed() -> None:
    snap = LabSnapshot("t", False, (), "lab t", "fdb of br0:", Path("/nonexistent"))
    with pytest.raises(AttributeError):
        snap.name = "other"  # type: ignore[misc]
    assert str(snap) == "lab t\n\nfdb of br0:"


def test_an_unwritable_artifact_directory_does_not_replace_the_report(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    snap = LabSnapshot("t", True, (endpoint("vm1", "vnet0", []),), "lab t", None, blocker / "x")
    text = report.unexpected_frames(snap, "vm1", None, [(1, frame(A, b"y"))])
    assert text.startswith("expected no frame at vm1 (port vnet0), but 1 arrived:")
    assert "pcaps and topology could not be written" in text
