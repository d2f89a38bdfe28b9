"""An option the kernel does not report back after a set is Unsupported (a skip naming it)."""

import pytest

from vlab.errors import Unsupported
from vlab.options import BRIDGE_OPTIONS, PORT_OPTIONS
from vlab.readback import check


def test_an_option_missing_from_the_kernels_answer_is_unsupported() -> None:
    mab = PORT_OPTIONS["mab"].attr
    check(PORT_OPTIONS, {"mab": 1}, {mab: b"\1"}, "port vnet0 of br0")  # reported: fine
    with pytest.raises(Unsupported, match="port vnet0 of br0: this kernel ignores mab"):
        check(
            PORT_OPTIONS,
            {"mab": 1, "learning": 0},
            {PORT_OPTIONS["learning"].attr: b"\0"},
            "port vnet0 of br0",
        )
    with pytest.raises(Unsupported, match="fdb_max_learned"):
        check(BRIDGE_OPTIONS, {"fdb_max_learned": 16}, {}, "br0")
