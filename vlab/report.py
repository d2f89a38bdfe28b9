"""What a failed assertion says, and the artifacts it leaves: the lab's side of a bug report.

The text is built for the person reading a CI log: the frame that was expected, what did arrive
at that endpoint (closest first, with the fields that differ), where else the expected frame
turned up, and where the pcaps are. The artifacts are written before the text names them, so
every path in a report exists. Everything here formats a :class:`~vlab.snapshot.LabSnapshot`,
never the live lab.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from vlab.capture import Record, write_pcap
from vlab.frames import Mask, closeness, field_diff, parse, summary
from vlab.pcapng import write_merged
from vlab.snapshot import LabSnapshot

if TYPE_CHECKING:
    from vlab.loss import Loss

MERGED = "lab.pcapng"  # every endpoint an interface, in kernel time order

SHOWN = 5  # frames shown in full; the pcaps have the rest


def write_artifacts(lab: LabSnapshot, directory: Path | None = None) -> Path:
    """One pcap per endpoint (ns timestamps), one merged pcapng of the whole lab
    (:data:`MERGED`), the topology and the fdb, in one directory (the snapshot's own unless
    ``directory`` is given)."""
    directory = lab.artifact_dir if directory is None else directory
    directory.mkdir(parents=True, exist_ok=True)
    for ep in lab.endpoints:
        records = sorted(((ts, data) for ts, _sent, data in ep.log), key=lambda r: r[0])
        write_pcap(directory / f"{ep.name}-{ep.port}.pcap", records)
    interfaces = [(f"{ep.name} ({ep.port})", ep.description, ep.log) for ep in lab.endpoints]
    for stem, name, description, log in lab.links:
        records = sorted(((ts, data) for ts, _sent, data in log), key=lambda r: r[0])
        write_pcap(directory / f"{stem}.pcap", records)
        interfaces.append((name, description, log))
    write_merged(directory / MERGED, interfaces, f"vlab lab {lab.name}")
    (directory / "topology.txt").write_text(f"{lab}\n")
    return directory


def _artifact_line(lab: LabSnapshot) -> str:
    """Where the artifacts are, or why there are none: never an error replacing the report."""
    try:
        directory = write_artifacts(lab)
    except Exception as exc:  # disk full, read-only: the failure text above must survive
        return f"(pcaps and topology could not be written: {exc})"
    return f"pcaps (one per endpoint) and topology: {directory} (the whole lab: {MERGED})"


def missing_frame(
    lab: LabSnapshot, name: str, mask: Mask, timeout: float, lost: list[Loss] | None = None
) -> str:
    """``expect`` at endpoint ``name`` timed out: what arrived instead, closest first."""
    ep = lab.by_name[name]
    lines = [
        f"{ep.name} ({ep.location}) did not receive the expected frame within {timeout:g} s",
        f"expected ({mask.describe()}):",
        f"  {summary(mask.expected_bytes)}",
    ]
    pending = sorted(ep.pending, key=lambda r: closeness(mask, r[1]))
    if pending:
        lines.append(f"arrived at {ep.name}, not consumed, closest first ({len(pending)}):")
        for _ts, data in pending[:SHOWN]:
            lines.append(f"  {summary(data)}")
            try:
                diff = field_diff(mask.expected, parse(data), mask.ignored)
            except Exception:
                diff = ["(not parseable as Ethernet)"]
            lines.extend(f"      {d}" for d in diff[:8])
        if len(pending) > SHOWN:
            lines.append(f"  ... and {len(pending) - SHOWN} more")
    else:
        lines.append(f"nothing else arrived at {ep.name}")
    elsewhere = [
        other.name
        for other in lab.endpoints
        if other.name != ep.name and any(mask.matches(d) for _t, d in other.pending)
    ]
    if elsewhere:
        lines.append(f"the expected frame did arrive at: {', '.join(elsewhere)}")
    if lost:
        lines.append("frames were lost meanwhile; the expected one may be among them:")
        lines.extend(_loss_lines(lost))
    lines.append(_artifact_line(lab))
    return "\n".join(lines)


def _loss_lines(lost: list[Loss]) -> list[str]:
    lines = []
    for item in lost:
        lines.append(f"  {item}")
        lines.append(f"      what to do: {item.hint}")
    return lines


def lost_frames(lab: LabSnapshot, lost: list[Loss], what: str) -> str:
    """Why a check refused to give a verdict: frames the kernel (or vlab's bound) dropped."""
    total = sum(item.count for item in lost)
    lines = [
        f"{what}: {total} frame(s) were lost in the lab before vlab read them, so no verdict "
        "about what arrived can be trusted:"
    ]
    lines.extend(_loss_lines(lost))
    lines.append("(ep.clear() forgives what was lost so far at that endpoint)")
    lines.append(_artifact_line(lab))
    return "\n".join(lines)


def wrong_delivery(
    lab: LabSnapshot,
    mask: Mask,
    at: list[str],
    missed: list[str],
    extra: dict[str, list[Record]],
    timeout: float,
) -> str:
    """``lab.expect(frame, at=[...])`` failed: who missed the frame, who got it uninvited."""
    endpoints = lab.by_name
    wanted = ", ".join(at) or "no endpoint"
    lines = [
        f"expected the frame at exactly: {wanted}",
        f"expected ({mask.describe()}):",
        f"  {summary(mask.expected_bytes)}",
    ]
    for ep in (endpoints[name] for name in missed):
        lines.append(
            f"missing at {ep.name} ({ep.location}): not received within "
            f"{timeout:g} s; {len(ep.pending)} other frame(s) arrived there"
        )
        ranked = sorted(ep.pending, key=lambda r: closeness(mask, r[1]))
        lines.extend(f"    {summary(data)}" for _ts, data in ranked[:SHOWN])
    for name, records in extra.items():
        ep = endpoints[name]
        also = " (again: a second copy)" if name in at else ""
        lines.append(f"unexpected at {name} ({ep.location}){also}: {len(records)} copy(ies)")
    lines.append(_artifact_line(lab))
    return "\n".join(lines)


def unexpected_frames(
    lab: LabSnapshot, name: str, mask: Mask | None, unexpected: list[Record]
) -> str:
    """``expect_none`` at endpoint ``name`` saw frames."""
    ep = lab.by_name[name]
    what = "no frame" if mask is None else f"no frame like {summary(mask.expected_bytes)}"
    lines = [f"expected {what} at {ep.name} (port {ep.port}), but {len(unexpected)} arrived:"]
    lines.extend(f"  {summary(data)}" for _ts, data in unexpected[: SHOWN + 3])
    lines.append(_artifact_line(lab))
    return "\n".join(lines)


def not_quiet(lab: LabSnapshot, noisy: dict[str, list[Record]]) -> str:
    """``expect_quiet`` or strict mode: frames arrived that nothing consumed."""
    endpoints = lab.by_name
    lines = ["the lab is not quiet: frames arrived that no expect() consumed"]
    for name, records in noisy.items():
        lines.append(f"  at {name} ({endpoints[name].port}): {len(records)} frame(s)")
        lines.extend(f"    {summary(data)}" for _ts, data in records[: SHOWN + 3])
    lines.append(_artifact_line(lab))
    return "\n".join(lines)
