"""QEMU guest boot-to-ready time on a lab tap, one guest and two in parallel.

Skipped with the reason when QEMU or the guest image inputs are missing (``vlab.qemu`` says
which packages to install), so the rest of the suite still runs on a machine without them.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.timing import Figure, Stats
from vlab import Lab

BOOT_GOAL_S = 5.0


def unavailable() -> str | None:
    try:
        from vlab import qemu
    except ImportError as exc:
        return f"vlab.qemu is not importable ({exc})"
    return qemu.qemu_unavailable()


def _boot(guests: int, workdir: Path) -> float:
    """Seconds from starting ``guests`` QEMUs at once until every one answers."""
    from vlab import qemu

    with Lab(name="boot") as lab:
        br = lab.bridge("br0")
        vms = [lab.vm(f"g{i}", bridge=br) for i in range(guests)]
        start = time.perf_counter()
        started = [
            qemu.QemuGuest.start(name=f"bench-g{i}", tap_fd=vm.tap_fd, mac=vm.mac, workdir=workdir)
            for i, vm in enumerate(vms)
        ]
        try:
            for guest in started:
                guest.wait_ready(timeout=120)
            return time.perf_counter() - start
        finally:
            for guest in started:
                guest.close()


def run(quick: bool) -> list[Figure]:
    reason = unavailable()
    if reason is not None:
        print(f"bench: QEMU guests skipped: {reason}")
        return [Figure("QEMU guest boot to ready", None, "s", note=f"skipped: {reason}")]
    from vlab import guest_image

    guest_image.ensure_image()  # building the image is a one-off, not boot time
    trials = 2 if quick else 5
    with tempfile.TemporaryDirectory(prefix="vlab-bench-guest-") as tmp:
        one = Stats.of([_boot(1, Path(tmp)) for _ in range(trials)])
        two = Stats.of([_boot(2, Path(tmp)) for _ in range(max(1, trials - 2))])
    return [
        Figure(
            "QEMU guest boot to ready (TCG)",
            one,
            "s",
            goal=f"<= {BOOT_GOAL_S:g} s",
            goal_met=one.median <= BOOT_GOAL_S,
        ),
        Figure(
            "two QEMU guests booted in parallel, both ready",
            two,
            "s",
            "one guest",
            one,
            note="ratio < 1: two guests share the CPUs",
        ),
    ]
