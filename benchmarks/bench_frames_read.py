"""Reading every endpoint of a big lab: ``frames()`` at each VM after one broadcast.

``frames()`` used to settle the whole lab on every call, so reading N endpoints cost N settles of
an N-endpoint lab. It now settles once and, as long as the lab's counters show that nothing has
moved since, later calls only drain their own endpoint. The baseline, measured in the same lab
right after, is the old behaviour: a full ``settle()`` before each endpoint's read.
"""

from __future__ import annotations

import sys
import time

from scapy.layers.l2 import Ether

from benchmarks.timing import Figure, Stats
from vlab import Lab, reaper


def run(vms: int, trials: int) -> list[Figure]:
    ours, baseline = [], []
    with Lab(name="readall") as lab:
        br = lab.bridge("br0")
        eps = [lab.vm(f"vm{i}", bridge=br) for i in range(vms)]
        up = lab.uplink(br)
        frame = Ether(src=up.mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / b"to all"
        lab.settle()
        for _ in range(trials):
            up.send(frame)
            start = time.perf_counter()
            got = [len(ep.frames()) for ep in eps]
            ours.append(time.perf_counter() - start)
            assert got == [1] * vms, got
            up.send(frame)
            start = time.perf_counter()
            for ep in eps:
                lab.settle()
                ep.frames()
            baseline.append(time.perf_counter() - start)
    reaper.drain()
    return [
        Figure(
            f"lab of {vms} VMs: frames() at every VM after one broadcast",
            Stats.of(ours).scaled(1e3),
            "ms",
            baseline="a full settle() before each read (frames() before)",
            baseline_value=Stats.of(baseline).scaled(1e3),
        )
    ]


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    for figure in run(n, 3):
        print(figure)
