"""Which kernel features a scenario's ``requires`` list can count on, read from the kernel config.

``/proc/config.gz`` answers without building anything, so a scenario for a missing feature is
skipped with a precise reason before any namespace exists. Position the config is not exposed the
answer is "unknown" and the scenario runs; the lab then reports the missing feature itself.
"""

from __future__ import annotations

import gzip
from functools import cache
from pathlib import Path

CONFIG = Path("/proc/config.gz")

SYMBOLS: dict[str, tuple[str, ...]] = {
    "vlan_filtering": ("CONFIG_BRIDGE_VLAN_FILTERING",),
    "dummy": ("CONFIG_DUMMY",),
    "8021q": ("CONFIG_VLAN_8021Q",),
    "stp": ("CONFIG_STP", "CONFIG_BRIDGE"),
    "multicast_snooping": ("CONFIG_BRIDGE_IGMP_SNOOPING",),
    "netem": ("CONFIG_NET_SCH_NETEM",),
}


@cache
def kernel_config(path: Path = CONFIG) -> dict[str, str] | None:
    """``{CONFIG_X: "y"|"m"|...}`` of the running kernel, or None if it is not exposed."""
    try:
        text = gzip.decompress(path.read_bytes()).decode(errors="replace")
    except OSError:
        return None
    config: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.startswith("CONFIG_"):
            config[name] = value
    return config


def missing(features: tuple[str, ...], config: dict[str, str] | None = None) -> str | None:
    """Why the kernel cannot run a scenario needing ``features``, or None if it can (or unknown)."""
    config = kernel_config() if config is None else config
    if config is None:
        return None
    for feature in features:
        absent = [s for s in SYMBOLS[feature] if config.get(s) not in ("y", "m")]
        if absent:
            return f"this kernel lacks {feature} ({', '.join(absent)} is not set)"
    return None
