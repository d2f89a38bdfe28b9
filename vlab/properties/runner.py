"""Running a machine as a test: ``Machine.TestCase`` for pytest and :func:`run_machine`."""

from __future__ import annotations

import unittest
from typing import TYPE_CHECKING, ClassVar

import pytest
from hypothesis import settings as Settings
from hypothesis.stateful import run_state_machine_as_test

from vlab import profiles

if TYPE_CHECKING:
    from vlab.properties.machine import ForwardingMachine


class _TestCaseProperty:
    """``Machine.TestCase``: a unittest case using the ``--vlab-profile`` settings, marked
    ``vlab`` (skipped without ``--vlab``), that closes the machine's lab when it ends."""

    def __get__(self, obj: object, owner: type[ForwardingMachine]) -> type[unittest.TestCase]:
        cached = owner.__dict__.get("_test_case")
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        machine = owner

        class MachineTestCase(unittest.TestCase):
            settings = profiles.active()
            pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.vlab]

            def runTest(self) -> None:
                run_machine(machine, settings=self.settings)

        MachineTestCase.runTest.is_hypothesis_test = True  # type: ignore[attr-defined]
        MachineTestCase.__name__ = owner.__name__ + ".TestCase"
        MachineTestCase.__qualname__ = owner.__qualname__ + ".TestCase"
        type.__setattr__(owner, "_test_case", MachineTestCase)
        return MachineTestCase


def run_machine(machine: type[ForwardingMachine], settings: Settings | None = None) -> None:
    """Run ``machine`` as one test (``--vlab-profile`` settings by default); close its lab after."""
    chosen = settings or getattr(machine.TestCase, "settings", None) or profiles.active()
    try:
        run_state_machine_as_test(machine, settings=chosen)  # type: ignore[no-untyped-call]
    finally:
        machine.close_labs()


# shared with the forwarding machine
TestCaseProperty = _TestCaseProperty
