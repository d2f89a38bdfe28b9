"""Strict mode: a lab test that ends with frames nobody consumed fails.

A test that sends a frame and checks one endpoint says nothing about where else the frame
went; leftovers are where the surprises are (a flood that reached one port too many, a frame
delivered twice). Opt-in, per test with ``@pytest.mark.vlab_strict`` or for the whole run with
``--vlab-strict`` (``@pytest.mark.vlab_strict(False)`` opts a test out again). Checked when the
``lab`` fixture is torn down, after a test that passed: a failed test already has its report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from vlab.lab import Lab

OPTION = "--vlab-strict"
MARKER = "vlab_strict"
MARKER_HELP = (
    "vlab_strict(on=True): fail this lab test if it ends with frames no expect() consumed "
    "(--vlab-strict turns it on for every lab test)"
)


def wanted(item: pytest.Item) -> bool:
    """Strict for this test: its marker decides, else the command-line option."""
    marker = item.get_closest_marker(MARKER)
    if marker is not None:
        on = marker.args[0] if marker.args else marker.kwargs.get("on", True)
        return bool(on)
    return bool(item.config.getoption(OPTION, False))


def check(lab: Lab) -> None:
    """Fail when any endpoint holds frames the test did not consume (after settling)."""
    if lab.closed:
        return  # the test closed its lab itself: nothing left to look at
    lab.switch.settle("strict mode, at the end of the test")
    leftovers = {ep.name: list(ep.pending) for ep in lab.endpoints.values() if ep.pending}
    if leftovers:
        from vlab import report

        text = report.not_quiet(lab.snapshot(), leftovers)
        pytest.fail(
            f"strict mode ({OPTION} or @pytest.mark.{MARKER}): the test ended with frames "
            f"nobody consumed; expect() them, or clear() what does not matter\n{text}",
            pytrace=False,  # the text is the report; the teardown's code is not
        )
