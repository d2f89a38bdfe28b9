"""Declarative scenarios: a topology, frames and expectations in a reviewable YAML file.

``load_scenario`` validates a file without touching the kernel, ``run_scenario`` plays it on a
lab, ``dump_scenario`` writes a :class:`Scenario` back out (so generated failures can be saved as
files). The format is described in FORMAT.md next to this module; the pure-data building blocks
(``BridgeSpec``, ``Send``, ``Expect``...) live in :mod:`vlab.scenario.model`.
"""

from vlab.scenario.errors import ScenarioError, Where
from vlab.scenario.load import load_scenario, loads_scenario
from vlab.scenario.model import Scenario
from vlab.scenario.runner import build_topology, run_scenario
from vlab.scenario.writer import dump_scenario

__all__ = [
    "Scenario",
    "ScenarioError",
    "Where",
    "build_topology",
    "dump_scenario",
    "load_scenario",
    "loads_scenario",
    "run_scenario",
]
