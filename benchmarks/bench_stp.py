"""STP across cables: how long ``lab.converge()`` waits for a triangle of bridges to settle.

Three bridges with the quickest timers the kernel takes (``vlab.stp.FAST``: forward_delay 2 s)
cabled in a ring. Measured: from the last cable to ``converge()`` returning (a fresh ring), and
from pulling the root port's cable of the bridge whose other port blocks to ``converge()``
returning again (the tree re-formed). The baseline is what a script without kernel state does:
sleep 2 x forward_delay plus a safety second, measured the same way.
"""

from __future__ import annotations

import time

from benchmarks.timing import Figure, Stats
from vlab import Lab
from vlab.stp import FAST


def _triangle(lab: Lab) -> tuple[float, float]:
    b0 = lab.bridge("br0", priority=0x1000, **FAST)
    b1 = lab.bridge("br1", priority=0x2000, **FAST)
    b2 = lab.bridge("br2", priority=0x3000, **FAST)
    lab.cable(b0, b1)
    lab.cable(b1, b2)
    c20 = lab.cable(b2, b0)
    start = time.perf_counter()
    lab.converge(timeout=30)
    fresh = time.perf_counter() - start
    c20.set_carrier(False)
    start = time.perf_counter()
    lab.converge(timeout=30)
    return fresh, time.perf_counter() - start


def run(quick: bool) -> list[Figure]:
    """Median convergence of a fresh triangle and after a root port failure."""
    trials = 2 if quick else 5
    fresh, failover = [], []
    for _ in range(trials):
        with Lab(name="bench-stp") as lab:
            a, b = _triangle(lab)
        fresh.append(a)
        failover.append(b)
    sleeps = []
    for _ in range(2):
        start = time.perf_counter()
        time.sleep(2 * float(FAST["forward_delay"]) + 1.0)
        sleeps.append(time.perf_counter() - start)
    baseline = Stats.of(sleeps)
    return [
        Figure(
            "STP triangle converge() (forward_delay 2 s)",
            Stats.of(fresh),
            "s",
            baseline="sleep(2 x forward_delay + 1 s)",
            baseline_value=baseline,
            note="kernel minimum is 2 x forward_delay = 4 s",
        ),
        Figure(
            "STP re-converge after the root port's cable is pulled",
            Stats.of(failover),
            "s",
            baseline="sleep(2 x forward_delay + 1 s)",
            baseline_value=baseline,
        ),
    ]
