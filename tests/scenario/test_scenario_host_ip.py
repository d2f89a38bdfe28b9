"""Scenario hosts with addresses: read, written back, and built with those addresses."""

from __future__ import annotations

import pytest

from vlab import Lab
from vlab.scenario import dump_scenario, loads_scenario
from vlab.scenario.runner import run_scenario

TEXT = """
name: ip hosts
topology:
  br0:
    hosts:
      h1: {ip: 192.0.2.1/24}
      h2: {ip: [192.0.2.2/24, "2001:db8::2/64"]}
steps:
  - send: {from: h1, frame: {src: h1.mac, dst: h2.mac, payload: hi}}
  - expect: {at: h2}
"""


def test_ip_is_read_and_written_back() -> None:
    scenario = loads_scenario(TEXT, "t.yaml")
    hosts = scenario.bridges[0].hosts
    assert [h.ip for h in hosts] == [("192.0.2.1/24",), ("192.0.2.2/24", "2001:db8::2/64")]
    again = loads_scenario(dump_scenario(scenario), "again.yaml")
    assert [h.ip for h in again.bridges[0].hosts] == [h.ip for h in hosts]


@pytest.mark.vlab
def test_hosts_get_their_addresses() -> None:
    with Lab() as lab:
        run_scenario(loads_scenario(TEXT, "t.yaml"), lab)
        h1, h2 = lab.endpoints["h1"], lab.endpoints["h2"]
        assert h1.addresses() == ["192.0.2.1/24"]  # type: ignore[attr-defined]
        assert {"192.0.2.2/24", "2001:db8::2/64"} <= set(h2.addresses())  # type: ignore[attr-defined]
        assert h1.ping("2001:db8::2") is False and h1.ping("192.0.2.2")  # type: ignore[attr-defined]
