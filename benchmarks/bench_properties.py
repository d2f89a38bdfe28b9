"""Stateful property-test speed: checked sends per second of :class:`ForwardingMachine`.

One step is what the issue counts: a generated frame sent into the real bridge, the lab settled
and every endpoint's queue compared with the reference model. The rate is measured over whole
hypothesis runs (generation, the machine's reconfiguration steps, resets between examples), so
it is what a user's ``TestBridge = ForwardingMachine.TestCase`` gets, not a kernel-only loop;
the shares of settling and of the rest of a send are reported beside it to show where time goes.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from vlab.properties import ForwardingMachine

RUNS = 5
SETTINGS = settings(
    stateful_step_count=50,
    deadline=None,
    database=None,
    phases=[Phase.generate],  # the machine passes: nothing to shrink or explain
    suppress_health_check=list(HealthCheck),
)


def _one_run(examples: int) -> dict[str, float]:
    """One hypothesis run of ``examples`` examples (a run cannot be stopped on a deadline)."""
    stats = ForwardingMachine.stats
    before = dict(stats)
    started = time.perf_counter()
    chosen = settings(SETTINGS, max_examples=examples)
    run_state_machine_as_test(ForwardingMachine, settings=chosen)  # type: ignore[no-untyped-call]
    elapsed = time.perf_counter() - started
    sends = stats["sends"] - before["sends"]
    return {
        "steps_per_s": sends / elapsed,
        "settle_share": (stats["settle_s"] - before["settle_s"]) / elapsed,
        "send_share": (stats["send_s"] - before["send_s"]) / elapsed,
        "settle_us": 1e6 * (stats["settle_s"] - before["settle_s"]) / max(sends, 1),
        "sends": sends,
        "seconds": elapsed,
    }


def run(seconds: float = 10.0) -> dict[str, Any]:
    """Median of five runs of about ``seconds / 5`` each, on one lab built before the first.

    Two short runs first: one builds the lab and warms caches, one sizes the five in examples.
    """
    try:
        _one_run(5)  # builds the lab
        warm = _one_run(20)
        per_example = max(warm["seconds"] / 20, 1e-3)
        examples = max(10, round(seconds / RUNS / per_example))
        runs = [_one_run(examples) for _ in range(RUNS)]
    finally:
        ForwardingMachine.close_labs()
    rates = [r["steps_per_s"] for r in runs]
    return {
        "name": "property machine (3 VMs + host + uplink)",
        "unit": "checked sends/s",
        "steps_per_s": statistics.median(rates),
        "steps_per_s_runs": [round(r, 1) for r in rates],
        "goal": 500,
        "settle_us_median": statistics.median(r["settle_us"] for r in runs),
        "settle_share": statistics.median(r["settle_share"] for r in runs),
        "send_share": statistics.median(r["send_share"] for r in runs),
        "examples_per_run": examples,
        "sends": int(sum(r["sends"] for r in runs)),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
