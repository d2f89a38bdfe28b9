"""Fixtures of the lab tests: ``pool``, the namespace pool emptied around one test, reuse on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vlab import nspool


@pytest.fixture
def pool() -> Iterator[nspool.Pool]:
    """An empty pool with reuse on, for one test; it is left empty and as it was."""
    pool = nspool.pool()
    was = pool.enabled
    pool.enabled = True
    nspool.empty()
    yield pool
    nspool.empty()
    pool.enabled = was
