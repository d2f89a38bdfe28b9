"""Medians over repeated trials, and the figures a benchmark reports.

Every figure is a median (a lab benchmark has a long tail: RCU grace periods, namespace cleanup
workers, the scheduler), shown with its 10th-90th percentile spread so a reader can tell a real
difference from noise. Each figure is paired with a baseline measured in the same run on the same
machine, because absolute numbers from another machine or another day mean little.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Stats:
    """Summary of repeated measurements of one quantity."""

    median: float
    p10: float
    p90: float
    n: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        if not samples:
            raise ValueError("no samples")
        ordered = sorted(samples)

        def pct(q: float) -> float:
            return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]

        return cls(statistics.median(ordered), pct(0.1), pct(0.9), len(ordered))

    def scaled(self, factor: float) -> Stats:
        return Stats(self.median * factor, self.p10 * factor, self.p90 * factor, self.n)


def repeat(fn: Callable[[], object], trials: int, warmup: int = 1) -> list[float]:
    """Wall time of ``fn`` in seconds, ``trials`` times after ``warmup`` unrecorded runs."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(trials):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


@dataclass
class Figure:
    """One row of RESULTS.md: vlab's median, a baseline's, and how they compare."""

    bench: str
    value: Stats | None
    unit: str
    baseline: str = ""
    baseline_value: Stats | None = None
    higher_is_better: bool = False
    goal: str = ""
    goal_met: bool | None = None
    note: str = ""

    def ratio(self) -> float | None:
        """How many times better vlab is than the baseline (>1 is better)."""
        if self.value is None or self.baseline_value is None:
            return None
        a, b = self.value.median, self.baseline_value.median
        if a <= 0 or b <= 0:
            return None
        return a / b if self.higher_is_better else b / a
