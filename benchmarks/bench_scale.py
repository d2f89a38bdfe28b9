"""Scale and soak: hundreds of labs in a row, one big lab, and parallel xdist workers.

A leak that costs one fd or one thread per lab is invisible in a single test and fatal in a
nightly run of thousands, so the soak builds and destroys labs back to back and compares the
first 50 with the last 50: time per lab, open fds and threads must not grow.
"""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from scapy.layers.l2 import Ether

from benchmarks.timing import Figure, Stats
from vlab import Lab, reaper

ROOT = Path(__file__).resolve().parents[1]
COLLISION_LABS = ROOT / "tests" / "faults" / "collision_labs.py"


@dataclass
class Soak:
    """Samples of a soak run in build order: time of every lab, fds and threads every 10th.

    fds and threads are counted after the socket reaper has caught up (outside the timed part),
    otherwise sockets still waiting for their RCU grace period would look like a leak.
    """

    seconds: list[float]
    fds: list[int]
    threads: list[int]


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def soak(labs: int) -> Soak:
    result = Soak([], [], [])
    for _ in range(labs):
        start = time.perf_counter()
        with Lab(name="soak") as lab:
            br = lab.bridge("br0")
            vms = [lab.vm(f"vm{i}", bridge=br) for i in range(3)]
            up = lab.uplink(br)
            frame = Ether(src=vms[0].mac, dst=up.mac, type=0x88B5) / b"soak"
            vms[0].send(frame)
            up.expect(frame)
        result.seconds.append(time.perf_counter() - start)
        if len(result.seconds) % 10 == 0:
            reaper.drain()
            result.fds.append(_fds())
            result.threads.append(_threads())
    reaper.drain()
    return result


def netns_objects() -> int | None:
    """Namespaces the kernel still holds (alive or waiting for cleanup), from the slab cache."""
    try:
        with open("/proc/slabinfo") as fh:
            for line in fh:
                if line.startswith("net_namespace "):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def trend(values: list[float]) -> float:
    """Theil-Sen slope: the median of all pairwise slopes, unmoved by a few outliers."""
    slopes = [
        (values[j] - values[i]) / (j - i)
        for i in range(len(values))
        for j in range(i + 1, len(values))
    ]
    return statistics.median(slopes) if slopes else 0.0


def soak_figures(labs: int) -> tuple[list[Figure], Soak]:
    """First-50 against last-50 medians; growth is judged on the trend of 50-lab medians.

    On a shared machine two 50-lab windows can differ by 2x from load alone, so "growth" means a
    steady rise across the whole run (a robust slope), or any rise in fds or threads.
    """
    baseline_fds, baseline_threads = _fds(), threading.active_count()
    objects_before = netns_objects()
    data = soak(labs)
    objects_after = netns_objects()
    window = min(50, labs // 2)
    first = Stats.of(data.seconds[:window]).scaled(1e3)
    last = Stats.of(data.seconds[-window:]).scaled(1e3)
    medians = [
        statistics.median(data.seconds[i : i + window]) * 1e3
        for i in range(0, labs - window + 1, window)
    ]
    # The first window runs before the kernel's deferred namespace cleanup has built up to its
    # steady state (see the netns objects in the note), so the trend starts at the second.
    steady = medians[1:] if len(medians) > 2 else medians
    rise = trend(steady) * (len(steady) - 1)
    samples = max(1, window // 10)
    fds_first = statistics.median(data.fds[:samples])
    fds_last = statistics.median(data.fds[-samples:])
    th_first = statistics.median(data.threads[:samples])
    th_last = statistics.median(data.threads[-samples:])
    after = _fds()
    grows = rise > 0.5 * statistics.median(steady) or fds_last > fds_first or th_last > th_first
    return [
        Figure(
            f"soak: {labs} labs in a row, time per lab (last {window})",
            last,
            "ms",
            f"first {window} labs of the same run",
            first,
            goal="no growth (trend of 50-lab medians after warm-up; fds, threads flat)",
            goal_met=not grows,
            note=(
                f"50-lab medians {', '.join(f'{m:.1f}' for m in medians)} ms, trend after "
                f"the first {rise:+.1f} ms; fds first/last {fds_first:g}/{fds_last:g} "
                f"(before {baseline_fds}, after {after}); threads {th_first:g}/{th_last:g} "
                f"(before {baseline_threads}); kernel netns objects {objects_before} -> "
                f"{objects_after}"
            ),
        )
    ], data


def big_lab(vms: int, trials: int) -> list[Figure]:
    """A lab of ``vms`` VMs: build time, and one broadcast from the uplink reaching every VM."""
    builds, floods = [], []
    for _ in range(trials):
        start = time.perf_counter()
        with Lab(name="big") as lab:
            br = lab.bridge("br0")
            eps = [lab.vm(f"vm{i}", bridge=br) for i in range(vms)]
            up = lab.uplink(br)
            built = time.perf_counter()
            frame = Ether(src=up.mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / b"to all"
            up.send(frame)
            for ep in eps:
                ep.expect(frame)
            flooded = time.perf_counter()
            lab.expect_quiet()
        builds.append(built - start)
        floods.append(flooded - built)
    reaper.drain()
    return [
        Figure(
            f"lab of {vms} VMs: build",
            Stats.of(builds).scaled(1e3),
            "ms",
            note="see the scaling rows for the `ip` baselines",
        ),
        Figure(
            f"lab of {vms} VMs: broadcast from uplink expected at all {vms}",
            Stats.of(floods).scaled(1e3),
            "ms",
            note="includes waiting for every port to forward (first send)",
        ),
    ]


def _pytest_labs(workers: int, labs: int) -> tuple[float, int, int, list[float]]:
    """Run the identical-labs module under xdist: wall time, passed, failed, per-lab seconds."""
    with tempfile.TemporaryDirectory(prefix="vlab-bench-xdist-") as tmp:
        env = dict(os.environ, VLAB_COLLISION_LABS=str(labs), VLAB_COLLISION_OUT=tmp)
        argv = [sys.executable, "-m", "pytest", "--vlab", "-q", "-p", "no:cacheprovider"]
        argv += ["-p", "no:benchmark", "--basetemp", os.path.join(tmp, "bt")]
        argv += ["-n", str(workers)] if workers else ["-p", "no:xdist"]
        start = time.perf_counter()
        proc = subprocess.run(
            [*argv, str(COLLISION_LABS)], cwd=ROOT, env=env, capture_output=True, text=True
        )
        wall = time.perf_counter() - start
        per_lab = [
            float(line.split()[1])
            for f in Path(tmp).glob("*.txt")
            for line in f.read_text().splitlines()
        ]
    tail = proc.stdout.strip().splitlines()[-1:] or [proc.stderr.strip()[-200:]]
    passed = int(next((w for w, n in _pairs(tail[0]) if n == "passed"), 0))
    failed = int(next((w for w, n in _pairs(tail[0]) if n in ("failed", "error")), 0))
    if proc.returncode not in (0, 1):
        print(f"bench: xdist run exited {proc.returncode}: {tail[0]}")
    return wall, passed, failed, per_lab


def _pairs(line: str) -> list[tuple[str, str]]:
    words = line.replace(",", " ").split()
    return list(itertools.pairwise(words))


def parallel(workers: int, labs: int) -> list[Figure]:
    wall, passed, failed, per_lab = _pytest_labs(workers, labs)
    serial_wall, serial_passed, _f, serial_lab = _pytest_labs(0, labs)
    collisions = labs - passed
    return [
        Figure(
            f"xdist -n {workers}: {labs} identical labs (same names and MACs)",
            Stats(wall, wall, wall, 1),
            "s wall",
            "same labs, one process",
            Stats(serial_wall, serial_wall, serial_wall, 1),
            goal="0 collisions",
            goal_met=collisions == 0 and failed == 0,
            note=(
                f"{passed}/{labs} passed, {collisions} collisions; per-lab test median "
                f"{statistics.median(per_lab) * 1e3 if per_lab else float('nan'):.1f} ms "
                f"(serial {statistics.median(serial_lab) * 1e3 if serial_lab else 0:.1f} ms, "
                f"{serial_passed} passed); wall includes starting pytest and workers"
            ),
        )
    ]
