"""Fixtures for guest tests that need no lab core: a tap of their own and a guest booted on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from qemu_wire import GUEST_MAC, Wire, wire_or_skip

from vlab.qemu import QemuGuest


@pytest.fixture(scope="module")
def wire() -> Iterator[Wire]:
    the_wire = wire_or_skip()
    yield the_wire
    the_wire.close()


@pytest.fixture(scope="module")
def guest(wire: Wire, tmp_path_factory: pytest.TempPathFactory) -> Iterator[QemuGuest]:
    """One booted guest shared by a module's tests: booting costs more than everything else."""
    workdir = tmp_path_factory.mktemp("guest")
    the_guest = QemuGuest.start(name="vm1", tap_fd=wire.tap_fd, mac=GUEST_MAC, workdir=workdir)
    try:
        the_guest.wait_ready(60)
        yield the_guest
    finally:
        the_guest.close()
