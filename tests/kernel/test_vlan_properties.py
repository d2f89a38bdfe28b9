"""The VLAN forwarding machine on a real VLAN-aware bridge, and proof that it catches a wrong
model: one that ignores the port's PVID (untagged frames always in VLAN 1).

Skips (``Unsupported``) on kernels without bridge VLAN filtering; ``nox -s guest_kernel`` runs
it on Debian's cloud kernel. Examples are few and short: a guest's emulated CPU is slow.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from vlab.properties.vlan_machine import VlanForwardingMachine
from vlab.reference.vlan import VlanBridgeModel

pytestmark = pytest.mark.vlab

SETTINGS = settings(
    max_examples=12,
    stateful_step_count=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)


class IgnoresPvid(VlanBridgeModel):
    """A bridge that puts every untagged frame in VLAN 1, whatever the port's PVID."""

    def classify(self, ingress: str, tagged_vid: int | None) -> int | None:
        return tagged_vid or 1


class WrongMachine(VlanForwardingMachine):
    model_class = IgnoresPvid


@pytest.fixture(autouse=True)
def _shared_lab() -> Iterator[None]:
    yield
    VlanForwardingMachine.close_lab()


def test_vlan_aware_bridge_matches_the_model() -> None:
    run_state_machine_as_test(VlanForwardingMachine, settings=SETTINGS)


def test_a_model_that_ignores_the_pvid_is_caught() -> None:
    wrong = settings(
        SETTINGS, max_examples=30, phases=[p for p in SETTINGS.phases if p.name != "shrink"]
    )
    with pytest.raises(AssertionError, match=r"the model expects|fdb differs"):
        run_state_machine_as_test(WrongMachine, settings=wrong)
