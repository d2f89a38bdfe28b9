"""Declarative scenarios: a topology, frames and expectations in a reviewable YAML file.

``load_scenario`` validates a file without touching the kernel, ``run_scenario`` plays it on a
lab, ``dump_scenario`` writes a :class:`Scenario` back out (so generated failures can be saved as
files). The format is described in FORMAT.md next to this module; the pure-data building blocks
(``BridgeSpec``, ``Send``, ``Expect``...) live in :mod:`vlab.scenario.spec`.

Names are imported on first use, so the pytest plugin can ask :mod:`vlab.scenario.select`
whether a file is a scenario without loading the YAML reader or the runner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlab.lazy import exports

if TYPE_CHECKING:
    from vlab.scenario.errors import Position, ScenarioError
    from vlab.scenario.load import load_scenario, loads_scenario
    from vlab.scenario.runner import build_topology, run_scenario
    from vlab.scenario.spec import Scenario
    from vlab.scenario.writer import dump_scenario

_HOMES = {
    "Scenario": "vlab.scenario.spec",
    "ScenarioError": "vlab.scenario.errors",
    "Position": "vlab.scenario.errors",
    "build_topology": "vlab.scenario.runner",
    "dump_scenario": "vlab.scenario.writer",
    "load_scenario": "vlab.scenario.load",
    "loads_scenario": "vlab.scenario.load",
    "run_scenario": "vlab.scenario.runner",
}


__getattr__, __dir__ = exports("vlab.scenario", _HOMES, globals())


__all__ = [
    "Position",
    "Scenario",
    "ScenarioError",
    "build_topology",
    "dump_scenario",
    "load_scenario",
    "loads_scenario",
    "run_scenario",
]
