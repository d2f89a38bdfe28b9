"""The runner maps steps onto the lab API and names the failing step (checked on a stand-in hub)."""

from __future__ import annotations

from typing import Any

import pytest

from vlab.errors import LabError
from vlab.scenario import loads_scenario
from vlab.scenario.runner import run_scenario

TOPOLOGY = """
name: hub
topology:
  br0:
    vms: [vm1, vm2]
    uplink: up
"""


def run(lab: Any, steps: str) -> Any:
    run_scenario(loads_scenario(TOPOLOGY + "steps:\n" + steps, "t.yaml"), lab)
    return lab


def test_send_then_expect_everywhere_passes(hub: Any) -> None:
    run(
        hub,
        """
  - send: {from: vm1, frame: {src: vm1.mac, dst: "ff:ff:ff:ff:ff:ff", payload: hi}}
  - expect: {at: [vm2, up], only: true}
""",
    )


def test_wrong_expectation_names_step_line_and_note(hub: Any) -> None:
    with pytest.raises(AssertionError) as caught:
        run(
            hub,
            """
  - send: {from: vm1, frame: {src: vm1.mac, dst: vm2.mac, payload: hi}}
  - expect: {at: vm2, only: true}
    note: a hub floods, so this must fail
""",
        )
    text = str(caught.value)
    assert text.startswith("step 2 (expect at vm2 only, line 10) failed: a hub floods")
    assert "up received 1 unexpected frame" in text


def test_expect_none_without_at_covers_every_endpoint(hub: Any) -> None:
    with pytest.raises(AssertionError, match=r"^step 2 \(expect_none at every endpoint"):
        run(
            hub,
            """
  - send: {from: up, frame: {src: "02:00:00:00:00:01", dst: vm1.mac, payload: x}}
  - expect_none: {}
""",
        )


def test_references_resolve_to_live_macs(hub: Any) -> None:
    lab = run(
        hub,
        """
  - send: {from: vm1, frame: {src: vm1.port_mac, dst: br0.mac, payload: x}}
  - expect: {at: vm2}
""",
    )
    frame = lab.endpoints[2].inbox[0]
    assert frame[:12].hex() == "02000000 0b00 fe0000000001".replace(" ", "")


def test_fdb_checks_report_the_table(hub: Any) -> None:
    with pytest.raises(AssertionError) as caught:
        run(
            hub,
            """
  - fdb_add: {mac: "02:00:00:00:00:07", at: vm2, sticky: true}
  - fdb:
      contains: [{mac: "02:00:00:00:00:07", at: vm2, kind: sticky}]
      lacks: ["02:00:00:00:00:07"]
""",
        )
    text = str(caught.value)
    assert "02:00:00:00:00:07 is in the fdb (behind p2)" in text
    assert "02:00:00:00:00:07 -> p2 (static/sticky)" in text
    assert "is not" not in text


def test_fdb_kind_mismatch_is_named(hub: Any) -> None:
    with pytest.raises(AssertionError, match="is static, not learnt"):
        run(
            hub,
            """
  - fdb_add: {mac: vm1.mac, at: vm1}
  - fdb: {contains: [{mac: vm1.mac, at: vm1, kind: learnt}]}
""",
        )


def test_rejected_change_must_be_refused(hub: Any) -> None:
    run(hub, "  - set: {port: vm1, priority: 63, rejected: true}\n")
    with pytest.raises(AssertionError, match="accepted, but the scenario expects a refusal"):
        run(hub, "  - set: {port: vm1, priority: 62, rejected: true}\n")


def test_lab_errors_keep_their_type_and_gain_the_step(hub: Any) -> None:
    with pytest.raises(LabError) as caught:
        run(hub, "  - set: {port: vm1, priority: 63}\n")
    assert any("step 1 (set port vm1, line 8)" in note for note in caught.value.__notes__)


def test_topology_options_and_neighbours_reach_the_lab(hub: Any) -> None:
    lab = run(hub, "  - neigh: {ip: 192.0.2.2, mac: vm2.mac}\n  - carrier: {at: vm1, up: false}\n")
    assert "neigh 192.0.2.2 52:54:00:00:00:02" in lab.log
    assert "carrier vm1 False" in lab.log
