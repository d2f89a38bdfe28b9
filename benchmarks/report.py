"""RESULTS.md (one markdown table) and scaling.png (build+destroy time against lab size)."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.timing import Figure, Stats


def _num(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def _cell(s: Stats | None, unit: str) -> str:
    if s is None:
        return "—"
    if s.n == 1:
        return f"{_num(s.median)} {unit}"
    return f"{_num(s.median)} {unit} ({_num(s.p10)}–{_num(s.p90)})"


def _ratio(f: Figure) -> str:
    r = f.ratio()
    if r is None:
        return "—"
    return f"{r:.1f}x better" if r >= 1 else f"{1 / r:.1f}x worse"


def _goal(f: Figure) -> str:
    if not f.goal:
        return ""
    mark = {True: "met", False: "**not met**", None: ""}[f.goal_met]
    return f"{f.goal}: {mark}" if mark else f.goal


def table(figures: Sequence[Figure]) -> str:
    lines = [
        "| benchmark | vlab median (p10–p90) | baseline | baseline median | vlab is | goal "
        "| notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        lines.append(
            f"| {f.bench} | {_cell(f.value, f.unit)} | {f.baseline or '—'} | "
            f"{_cell(f.baseline_value, f.unit)} | {_ratio(f)} | {_goal(f)} | {f.note} |"
        )
    return "\n".join(lines)


def write_results(path: Path, figures: Sequence[Figure], args: str, seconds: float) -> None:
    cpus = len(os.sched_getaffinity(0))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    command = f"python -m benchmarks {args}".strip()
    header = [
        "# vlab benchmark results",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M')} on Linux {platform.release()}, {cpus} CPUs, "
        f"Python {platform.python_version()} (`{command}`, {seconds:.0f} s); "
        f"load average at the end {load}: other work on the machine widens the spreads.",
        "Medians over repeated trials with the 10th–90th percentile in brackets; each baseline "
        "is measured in the same run, except PTF's and the selftests' fixed negative-check "
        'sleeps. "vlab is" compares medians.',
        "",
    ]
    path.write_text("\n".join(header) + "\n" + table(figures) + "\n")


def plot(
    path: Path, sizes: Sequence[int], medians: dict[str, list[float]], soak: list[float]
) -> str:
    """Write the scaling plot; return a message (the plot is skipped without matplotlib)."""
    try:
        import matplotlib  # type: ignore[import-not-found, unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return "scaling.png skipped: matplotlib is not installed (pip install matplotlib)"
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, ys in medians.items():
        left.plot(sizes, [y * 1e3 for y in ys], marker="o", label=name)
    left.set_xscale("log", base=2)
    left.set_yscale("log")
    left.set_xticks(list(sizes), [str(s) for s in sizes])
    left.set_xlabel("VMs on the bridge")
    left.set_ylabel("build + destroy, median ms")
    left.set_title("Lab build+destroy vs lab size")
    left.grid(True, which="both", alpha=0.3)
    left.legend()
    if soak:
        right.plot(range(1, len(soak) + 1), [s * 1e3 for s in soak], lw=0.6)
        right.set_xlabel("lab number")
        right.set_ylabel("ms per lab (build, one frame, destroy)")
        right.set_title(f"Soak: {len(soak)} labs in a row")
        right.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"wrote {path}"
