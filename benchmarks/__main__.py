"""``python -m benchmarks``: every benchmark, each against a baseline measured in the same run.

Writes benchmarks/RESULTS.md and benchmarks/scaling.png. ``--quick`` runs fewer trials and a
smaller soak (a minute instead of several); ``--only`` picks benches by name.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from benchmarks import (
    bench_build,
    bench_frames,
    bench_frames_read,
    bench_guest,
    bench_peer,
    bench_scale,
    bench_suite,
    ipbuild,
    report,
)
from benchmarks.timing import Figure, Stats

HERE = Path(__file__).resolve().parent
BENCHES = (
    "build", "latency", "throughput",
    "sustained", "properties", "soak", "big", "xdist", "qemu", "inspect",
    "readall",
    "kernel",
    "row",
    "programs",
    "busy",
    "startup",
    "peer",
    "stp",
)  # fmt: skip


def properties(seconds: float) -> list[Figure]:
    """Property-test steps/s, from the property machine's own bench when it exists."""
    try:
        module = importlib.import_module("benchmarks.bench_properties")
    except ImportError as exc:
        return [Figure("property-test steps/s", None, "steps/s", note=f"skipped: {exc}")]
    result = module.run(seconds)
    rate = result.get("steps_per_s")
    runs = [float(r) for r in result.get("steps_per_s_runs", [])] or (
        [float(rate)] if isinstance(rate, int | float) else []
    )
    goal = result.get("goal")
    skip = {"name", "unit", "steps_per_s", "steps_per_s_runs", "goal"}
    extra = ", ".join(
        f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
        for k, v in result.items()
        if k not in skip
    )
    return [
        Figure(
            f"property-test steps/s: {result.get('name', 'property machine')}",
            Stats.of(runs) if runs else None,
            str(result.get("unit", "steps/s")),
            higher_is_better=True,
            goal=f">= {goal:g} /s" if isinstance(goal, int | float) else "",
            goal_met=(rate >= goal) if isinstance(goal, int | float) and runs else None,
            note=extra,
        )
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer trials, smaller soak")
    parser.add_argument("--only", nargs="+", choices=BENCHES, help="run only these benches")
    parser.add_argument("--soak-labs", type=int, help="labs in the soak (500; 100 with --quick)")
    parser.add_argument("--xdist-labs", type=int, help="labs for the xdist bench (200)")
    parser.add_argument("--workers", type=int, default=4, help="xdist workers (4)")
    parser.add_argument("--row-labs", type=int, default=200, help="labs in a row (200)")
    parser.add_argument("--out", type=Path, default=HERE, help="where RESULTS.md and the plot go")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("benchmarks need root (namespaces, taps, `ip netns add`)", file=sys.stderr)
        return 2
    chosen = set(args.only or BENCHES)
    quick = args.quick
    soak_labs = args.soak_labs or (100 if quick else 500)
    xdist_labs = args.xdist_labs or (40 if quick else 200)

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)  # unwinds through the baselines' namespace cleanup

    signal.signal(signal.SIGTERM, stop)
    figures: list[Figure] = []
    curve: bench_build.Curve | None = None
    soak_seconds: list[float] = []
    plan: list[tuple[str, Callable[[], list[Figure]]]] = [
        ("latency", lambda: bench_frames.latency(quick)),
        ("throughput", lambda: bench_frames.throughput(quick)),
        ("sustained", lambda: bench_frames.sustained(quick)),
        ("properties", lambda: properties(3.0 if quick else 10.0)),
        ("big", lambda: bench_scale.big_lab(64, 3 if quick else 10)),
        ("xdist", lambda: bench_scale.parallel(args.workers, xdist_labs)),
        ("qemu", lambda: bench_guest.run(quick)),
        ("inspect", lambda: importlib.import_module("benchmarks.bench_inspect").run(quick)),
        ("readall", lambda: bench_frames_read.run(64 if quick else 256, 3 if quick else 5)),
        ("kernel", lambda: importlib.import_module("benchmarks.bench_kernel").run(quick)),
        ("row", lambda: bench_suite.labs_in_a_row(args.row_labs)),
        ("programs", lambda: bench_suite.programs(quick)),
        ("busy", lambda: bench_suite.negative_checks(quick)),
        ("startup", lambda: bench_suite.startup(quick)),
        ("peer", lambda: bench_peer.run(quick)),
        ("stp", lambda: importlib.import_module("benchmarks.bench_stp").run(quick)),
    ]
    started = time.perf_counter()
    try:
        if "build" in chosen:
            print("bench: build+destroy and scaling ...", flush=True)
            build_figures, curve = bench_build.run(quick)
            figures += build_figures
        for name, bench in plan[:4]:
            if name in chosen:
                print(f"bench: {name} ...", flush=True)
                figures += bench()
        if "soak" in chosen:
            print(f"bench: soak of {soak_labs} labs ...", flush=True)
            soak_figures, data = bench_scale.soak_figures(soak_labs)
            figures += soak_figures
            soak_seconds = data.seconds
        for name, bench in plan[4:]:
            if name in chosen:
                print(f"bench: {name} ...", flush=True)
                figures += bench()
    finally:
        ipbuild.sweep()
    elapsed = time.perf_counter() - started
    shown = " ".join(sys.argv[1:] if argv is None else argv)
    args.out.mkdir(parents=True, exist_ok=True)
    report.write_results(args.out / "RESULTS.md", figures, shown, elapsed)
    print(report.table(figures))
    print(f"bench: wrote {args.out / 'RESULTS.md'}")
    if curve is not None:
        print(
            "bench: "
            + report.plot(args.out / "scaling.png", curve.sizes, curve.medians, soak_seconds)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
