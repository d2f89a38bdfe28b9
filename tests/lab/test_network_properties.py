"""The forwarding machine on 2-3 bridges joined by cables: it passes with the network model and
catches deliberately wrong ones (each fails on a small drawn network)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from vlab.properties.network import NetworkMachine
from vlab.reference.network import NetworkModel

pytestmark = pytest.mark.vlab

SETTINGS = settings(
    max_examples=25,
    stateful_step_count=8,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
HUNT = settings(SETTINGS, max_examples=100, phases=[Phase.generate])


class ForgetsLearningAcrossCables(NetworkModel):
    """Learns sources on endpoint ports only, never behind a cable."""

    def learns(self, bridge: str, port: str) -> bool:
        return port not in self.cable_ports(bridge)


class IgnoresUnpluggedCables(NetworkModel):
    """Lets frames cross a cable whatever its carrier (and never flushes behind it)."""

    def set_carrier(self, cable: str, up: bool) -> None:
        pass


def test_the_network_machine_passes_with_the_model() -> None:
    run_state_machine_as_test(NetworkMachine, settings=SETTINGS)


@pytest.mark.parametrize("wrong", [ForgetsLearningAcrossCables, IgnoresUnpluggedCables])
def test_a_wrong_network_model_is_caught(wrong: type[NetworkModel]) -> None:
    machine = type(f"{wrong.__name__}Machine", (NetworkMachine,), {"model_class": wrong})
    with pytest.raises(AssertionError, match=r"the lab (delivered|has)"):
        run_state_machine_as_test(machine, settings=HUNT)
