"""Hypothesis settings for vlab's property tests: ``--vlab-profile=ci|thorough``.

``ci`` keeps the suite inside a CI budget with a fixed, derandomised search; ``thorough`` is for a
nightly job or a bug hunt. Building a lab is not sub-millisecond even if a step is, so deadlines
are off in both. The choice applies to vlab's machines only, never to a user's own hypothesis
tests (their global profile is theirs).

The plugin records the choice at configure time in every ``--vlab`` run; hypothesis itself is
imported only when a property test asks for :func:`active` (importing it costs about as much as
the rest of pytest's start-up, and most runs have no property test).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hypothesis import settings

PROFILES: dict[str, dict[str, Any]] = {
    "ci": {"max_examples": 25, "stateful_step_count": 40, "derandomize": True},
    "thorough": {"max_examples": 500, "stateful_step_count": 100},
}
_active = "ci"


def register(name: str) -> None:
    """Choose the profile :func:`active` returns; ``name`` is one of :data:`PROFILES`."""
    global _active
    if name not in PROFILES:
        raise ValueError(f"unknown vlab profile {name!r}: choose {', '.join(PROFILES)}")
    _active = name


def active() -> settings:
    """The settings of the profile chosen on the command line (``ci`` by default)."""
    from hypothesis import HealthCheck, settings

    return settings(
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        **PROFILES[_active],
    )
