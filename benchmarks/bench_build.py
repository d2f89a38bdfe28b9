"""Build+destroy of a lab by vlab against the same topology built by ``ip`` and ``ip -batch``.

Trials of the three builders are interleaved (vlab, ip, batch, vlab, ...) so that background work
the kernel does for all of them (namespace cleanup, RCU callbacks) lands evenly on each instead of
penalising whichever ran last.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from scapy.layers.l2 import Ether

from benchmarks import ipbuild
from benchmarks.timing import Figure, Stats
from vlab import Lab, nspool, reaper

SIZES = (1, 4, 16, 64)


def build_vlab(vms: int) -> None:
    """What ``with Lab()`` costs a test that builds the lab and never sends."""
    with Lab(name="bench") as lab:
        br = lab.bridge("br0")
        for i in range(vms):
            lab.vm(f"vm{i}", bridge=br)
        lab.uplink(br)


def build_vlab_ready(vms: int) -> None:
    """The same, plus waiting until every port forwards (the first send does that)."""
    with Lab(name="bench") as lab:
        br = lab.bridge("br0")
        first = lab.vm("vm0", bridge=br)
        for i in range(1, vms):
            lab.vm(f"vm{i}", bridge=br)
        lab.uplink(br)
        first.send(Ether(src=first.mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B5))


def build_vlab_reused(vms: int) -> None:
    """The same with switch namespaces reused (the ``pytest --vlab`` default): the closed lab's
    reset runs in vlab's reset worker while the other builders run."""
    pool = nspool.pool()
    was, pool.enabled = pool.enabled, True
    try:
        build_vlab(vms)
    finally:
        pool.enabled = was


BUILDERS: dict[str, Callable[[int], None]] = {
    "vlab": build_vlab,
    "vlab, namespaces reused": build_vlab_reused,
    "vlab, links up": build_vlab_ready,
    "ip commands": ipbuild.build_ip,
    "ip -batch": ipbuild.build_batch,
}


@dataclass
class Curve:
    """Build+destroy medians per lab size, for each builder (the scaling plot)."""

    sizes: tuple[int, ...]
    medians: dict[str, list[float]]  # builder -> seconds per size
    stats: dict[str, dict[int, Stats]]


def measure(vms: int, trials: int) -> dict[str, Stats]:
    samples: dict[str, list[float]] = {name: [] for name in BUILDERS}
    for build in BUILDERS.values():  # warm-up: imports, page cache, first netns
        build(vms)
    for trial in range(trials):
        order = list(BUILDERS.items())
        shift = trial % len(order)
        for name, build in order[shift:] + order[:shift]:
            start = time.perf_counter()
            build(vms)
            samples[name].append(time.perf_counter() - start)
    reaper.drain()
    nspool.empty()
    return {name: Stats.of(s) for name, s in samples.items()}


def run(quick: bool) -> tuple[list[Figure], Curve]:
    try:
        stats: dict[str, dict[int, Stats]] = {name: {} for name in BUILDERS}
        for vms in SIZES:
            trials = (5 if quick else 15) if vms >= 16 else (15 if quick else 60)
            for name, s in measure(vms, trials).items():
                stats[name][vms] = s
        base = measure(3, 15 if quick else 80)
    finally:
        left = ipbuild.sweep()
        if left:
            print(f"bench: removed leftover baseline namespaces {left}")
    ms = 1e3
    vlab = base["vlab"].scaled(ms)
    figures = [
        Figure(
            "build+destroy: 1 bridge, 3 VMs, uplink",
            vlab,
            "ms",
            "`ip` commands",
            base["ip commands"].scaled(ms),
            goal=">= 4x faster than `ip`",
            goal_met=base["ip commands"].median >= 4 * base["vlab"].median,
        ),
        Figure(
            "build+destroy: 1 bridge, 3 VMs, uplink",
            vlab,
            "ms",
            "`ip -batch`",
            base["ip -batch"].scaled(ms),
        ),
        Figure(
            "build+destroy, links up (first send)",
            base["vlab, links up"].scaled(ms),
            "ms",
            "`ip` commands (no wait)",
            base["ip commands"].scaled(ms),
        ),
    ]
    for vms in SIZES:
        figures.append(
            Figure(
                f"build+destroy: {vms} VMs",
                stats["vlab"][vms].scaled(ms),
                "ms",
                "`ip` commands / `ip -batch`",
                stats["ip commands"][vms].scaled(ms),
                note=f"`ip -batch` {stats['ip -batch'][vms].median * ms:.1f} ms; with namespaces "
                f"reused {stats['vlab, namespaces reused'][vms].median * ms:.1f} ms",
            )
        )
    biggest = SIZES[-1]
    batch = stats["ip -batch"][biggest]
    for name, how in (
        ("vlab, namespaces reused", "namespaces reused (the `pytest --vlab` default)"),
        ("vlab", "fresh namespaces"),
    ):
        mine = stats[name][biggest]
        figures.append(
            Figure(
                f"build+destroy: {biggest} VMs, {how}",
                mine.scaled(ms),
                "ms",
                "`ip -batch`",
                batch.scaled(ms),
                goal=">= 1.5x faster than `ip -batch`",
                goal_met=batch.median >= 1.5 * mine.median,
                note="as the caller sees it: `ip netns del` and vlab's pool both leave work to "
                "the kernel or to vlab's reset worker; trials interleaved",
            )
        )
    curve = Curve(SIZES, {name: [stats[name][v].median for v in SIZES] for name in BUILDERS}, stats)
    return figures, curve
