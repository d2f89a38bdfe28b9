"""Budgets for the fuzzers, scaled by ``--vlab-profile``, and a namespace-leak probe.

CI runs a fixed, derandomised search small enough for its time budget; ``nox -s fuzz`` passes
``--vlab-profile=thorough`` and every fuzzer then runs as many times more examples as that
profile gives the property tests (and with a random seed, so each long run explores anew).
"""

from __future__ import annotations

import contextlib
import os

from hypothesis import settings

from vlab import cpubarrier, nspool, profiles


def budget(ci_examples: int) -> settings:
    """Settings of the active profile with ``ci_examples`` scaled to the profile's depth."""
    base = profiles.active()
    scale = base.max_examples / profiles.PROFILES["ci"]["max_examples"]
    return settings(base, max_examples=max(1, int(ci_examples * scale)), database=None)


def net_fds() -> int:
    """Namespace fds this process holds: any lab that is still alive holds at least one (the
    pool of switch namespaces, which keeps closed labs' ones on purpose, is emptied first; the
    CPU barrier's marker namespace, one per process for its life, is made first)."""
    nspool.empty()
    cpubarrier.barrier()
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("net:[")
    return count
