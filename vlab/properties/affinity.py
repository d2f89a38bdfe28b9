"""CPU pinning for the duration of an example, which makes settling after a send cheap."""

from __future__ import annotations

import os


def _pin_to_one_cpu() -> set[int] | None:
    """Keep this thread on the CPU it is on; return the affinity to restore afterwards.

    A frame written to a tap or a packet socket is forwarded in softirq context on the writing
    CPU (RPS is off in lab namespaces), synchronously or by that CPU's ksoftirqd, which cannot
    be mid-frame while this thread runs there. Pinned, :meth:`Lab.settle`'s cross-CPU barrier
    becomes a yield: measured 0.11-0.17 ms instead of 0.7 ms per step with the two CPUs busy
    with other work, where migrating onto a busy CPU waits for a time slice.
    """
    allowed = os.sched_getaffinity(0)
    if len(allowed) == 1:
        return None
    try:
        with open("/proc/thread-self/stat", "rb") as fh:
            cpu = int(fh.read().rsplit(b")", 1)[1].split()[36])
    except (OSError, IndexError, ValueError):
        cpu = min(allowed)
    os.sched_setaffinity(0, {cpu if cpu in allowed else min(allowed)})
    return allowed


# shared with the forwarding machine
pin_to_one_cpu = _pin_to_one_cpu
