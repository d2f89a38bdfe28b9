"""What the pool's tests share: views of tools' JSON without what ticks (the pool fixture is in
conftest.py).

A reused namespace is compared with a fresh one through ``ip -d -j``, ``bridge -j`` and the
like; two fresh namespaces differ in counters, timers and numbers the kernel hands out, so
every comparison leaves those out the same way.
"""

from __future__ import annotations

from typing import Any

# fields that tick or count on their own
TICKING = frozenset(
    {
        "stats",
        "stats64",
        "carrier_changes",
        "carrier_up_count",
        "carrier_down_count",
        "hello_timer",
        "tcn_timer",
        "topology_change_timer",
        "gc_timer",
        "forward_delay_timer",
        "message_age_timer",
        "hold_timer",
        "used",
        "updated",
    }
)
# ifindex numbers come from a cursor that only moves forward (see vlab/nspool.py): links are
# compared by name
IFINDEX = frozenset({"ifindex", "link_index"})


def clean(value: Any, leave_out: frozenset[str]) -> Any:
    """``value`` (parsed JSON) without the keys in ``leave_out``, lists in a fixed order."""
    if isinstance(value, dict):
        return {k: clean(v, leave_out) for k, v in value.items() if k not in leave_out}
    if isinstance(value, list):
        return sorted((clean(v, leave_out) for v in value), key=repr)
    return value
