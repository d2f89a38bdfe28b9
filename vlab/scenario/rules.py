"""Kernel rules that span a port's whole configuration, checked before anything is built.

``mab`` (MAC authentication bypass) is refused by the kernel (EINVAL, docs/bridge-facts.md
fact 24) on a port that is not locked or does not learn — whether ``mab`` is being switched on or
``locked``/``learning`` switched off under it. A single option map can only be checked on its
own (:func:`vlab.scenario.vocabulary.check_port` does that); here each port's options are
followed from the topology through every ``set`` step, so the step that breaks the rule is named
at its line instead of the kernel's EINVAL surfacing mid-run.
"""

from __future__ import annotations

from collections.abc import Iterable

from vlab.scenario.problems import fail_later
from vlab.scenario.spec import BridgeSpec, OptionValue, SetPort, Step
from vlab.scenario.vocabulary import check_port

DEFAULTS: dict[str, OptionValue] = {"locked": False, "learning": True, "mab": False}
PROBLEM = "option mab=true needs locked=true and learning on: the kernel says EINVAL"


def _broken(options: dict[str, OptionValue]) -> bool:
    return bool(options["mab"]) and not (options["locked"] and options["learning"])


def check_ports(bridges: Iterable[BridgeSpec], steps: Iterable[Step]) -> None:
    """Record a located error wherever a port would end up with mab on but unlocked/unlearning."""
    state: dict[str, dict[str, OptionValue]] = {}
    for bridge in bridges:
        for ep in bridge.endpoints():
            options = {**DEFAULTS, **dict(ep.port)}
            state[ep.name] = options
            # an objection visible in the map itself was reported at the map already
            if _broken(options) and ep.where is not None and check_port(dict(ep.port)) is None:
                fail_later(ep.where, PROBLEM, f"add locked: true to {ep.name}'s port options")
    for step in steps:
        if not isinstance(step, SetPort) or step.rejected or step.at not in state:
            continue
        options = {**state[step.at], **dict(step.options)}
        if _broken(options) and step.where is not None and check_port(dict(step.options)) is None:
            fail_later(
                step.where,
                PROBLEM,
                f"lock {step.at}'s port first (set locked: true in this step or before it), "
                "or mark the step `rejected: true`",
            )
            continue  # the kernel would have refused the step: the port keeps its options
        state[step.at] = options
