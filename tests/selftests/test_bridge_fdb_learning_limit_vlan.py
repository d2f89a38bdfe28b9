"""Port of tools/testing/selftests/net/forwarding/bridge_fdb_learning_limit.sh on a VLAN-aware
bridge: ``check_accounting`` and ``check_limit`` for learnt entries, which are counted per
(MAC, VLAN) — one MAC in two VLANs is two entries against ``fdb_max_learned`` — while the local
entries a port gets in each of its VLANs are not counted. Needs both VLAN filtering and
``fdb_max_learned`` (Linux 6.8): the kernels at hand have one or the other, so this skips on
both (``Unsupported`` names which is missing)."""

import pytest
from scapy.layers.l2 import Dot1Q, Ether

from vlab import Lab
from vlab.errors import Unsupported
from vlab.options import IFLA_BR_FDB_N_LEARNED

pytestmark = pytest.mark.vlab
FDB_LIMIT = 8


def mac(i: int) -> str:
    return f"de:ad:be:ef:42:{i:02x}"


@pytest.mark.parametrize("vlans", [(10, 20), (10,)])
def test_learnt_entries_count_per_vlan(lab: Lab, vlans: tuple[int, ...]) -> None:
    """``vlans=(10,)`` is the flip: the same MACs in one VLAN count half as many entries."""
    br = lab.bridge("br0", vlan_filtering=True)
    if IFLA_BR_FDB_N_LEARNED not in lab._switch_rtnl.bridge_data(br.index):
        raise Unsupported("this kernel has no fdb_max_learned (Linux 6.8): nothing to count")
    h1, h2 = lab.vm("h1", bridge=br), lab.vm("h2", bridge=br)
    br.port(h2).set(learning=False)
    for port in (br.port(h1), br.port(h2)):
        port.vlan_add([10, 20])
    assert br.n_learned() == 0  # the ports' local entries in 1, 10 and 20 do not count
    for i in range(3):
        for vid in vlans:
            h1.send(Ether(src=mac(i), dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=vid) / b"x")
    assert br.n_learned() == 3 * len(vlans)
    br.fdb_flush()
    br.set(fdb_max_learned=FDB_LIMIT)
    for i in range(FDB_LIMIT):
        for vid in vlans:
            h1.send(Ether(src=mac(i), dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=vid) / b"x")
    assert br.n_learned() == min(FDB_LIMIT, FDB_LIMIT * len(vlans))
    learnt = [e for e in br.fdb_entries() if not e.local]
    assert len(learnt) == min(FDB_LIMIT, FDB_LIMIT * len(vlans))
