"""Kernel ranges decide which scenarios are expected to fail on the running kernel."""

from __future__ import annotations

import pytest

from vlab.scenario.kernel import check_range, matches, parse_release


def test_release_strings_of_distributions() -> None:
    assert parse_release("6.18.44-fc-v595") == (6, 18, 44)
    assert parse_release("5.10.0-28-amd64") == (5, 10, 0)
    assert parse_release("6.9") == (6, 9, 0)


@pytest.mark.parametrize(
    ("spec", "release", "expected"),
    [
        (">=5.18,<6.20", "6.18.44-fc-v595", True),
        (">=5.18,<6.20", "5.17.15", False),
        (">=5.18,<6.20", "6.20.0", False),
        ("<5.7", "6.18.44", False),
        ("<5.7", "5.6.19", True),
        ("==6.18", "6.18.0", True),
        ("!=6.18", "6.18.0", False),
        (">6.18.43", "6.18.44-rc1", True),
        ("<= 6.18.44", "6.18.44", True),
    ],
)
def test_matches(spec: str, release: str, expected: bool) -> None:
    assert matches(spec, release) is expected


@pytest.mark.parametrize("bad", ["5.18+", ">=5.x", ">=5.18;<6", "", ">=1.2.3.4", "~=5.18"])
def test_bad_ranges_are_named(bad: str) -> None:
    assert check_range(bad) is not None
