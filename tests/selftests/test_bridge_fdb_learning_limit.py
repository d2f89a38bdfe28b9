"""Port of tools/testing/selftests/net/forwarding/bridge_fdb_learning_limit.sh, subtests
``check_accounting`` and ``check_limit`` for the entry types learned, static, user,
extern_learn and local (a bare port's own MAC)."""

import pytest
from scapy.layers.l2 import Ether

from vlab import Lab

pytestmark = pytest.mark.vlab
NUM_PKTS, FDB_LIMIT = 16, 8
TYPES = {  # name: (fdb_add flags or None for learnt, counted?, overrides a learnt entry?)
    "learned": (None, 1, 0),
    "static": ({}, 0, 1),
    "user": ({"use": True}, 0, 1),
    "extern_learn": ({"static": False, "extern_learn": True}, 0, 1),
    "local": ("port", 0, 1),  # a bare port with that MAC
}


def mac(i: int) -> str:
    return f"de:ad:be:ef:42:{i:02x}"


@pytest.fixture
def net(lab: Lab):
    br = lab.bridge("br0")
    h1, h2 = lab.vm("h1", bridge=br), lab.vm("h2", bridge=br)
    br.port(h2).set(learning=False)
    return br, h1


def add(net, kind: str, m: str) -> None:
    br, h1 = net
    flags = TYPES[kind][0]
    if flags is None:
        h1.send(Ether(src=m, dst="ff:ff:ff:ff:ff:ff"))
        h1.lab.settle()
    elif flags == "port":
        h1.lab.port(br, mac=m)
    else:
        br.fdb_add(m, h1, **flags)


def fill_learned(net) -> None:
    net[0].fdb_flush()
    for i in range(1, NUM_PKTS + 1):
        add(net, "learned", mac(i))


@pytest.mark.parametrize("kind", TYPES)
def test_check_accounting(net, kind: str) -> None:
    br, h1 = net
    fill_learned(net)
    assert br.n_learned() == NUM_PKTS
    _flags, counted, overrides = TYPES[kind]
    br.fdb_flush()
    add(net, kind, mac(0))
    assert br.n_learned() == counted
    if kind == "local":
        next(p for p in br.ports.values() if p.mac == mac(0)).detach()
    else:
        br.fdb_del(mac(0), h1)
    assert br.n_learned() == 0
    if overrides:
        add(net, "learned", mac(0))
        add(net, kind, mac(0))
        assert br.n_learned() == counted


@pytest.mark.parametrize("kind", TYPES)
def test_check_limit(net, kind: str) -> None:
    br, _h1 = net
    br.set(fdb_max_learned=FDB_LIMIT)
    fill_learned(net)
    assert br.n_learned() == FDB_LIMIT
    add(net, kind, mac(0))
    assert (mac(0) in br.fdb(local=True)) is not TYPES[kind][1]  # only learnt entries hit the limit


def test_check_limit_catches_no_limit(net) -> None:
    br, _h1 = net
    fill_learned(net)
    with pytest.raises(AssertionError):
        assert br.n_learned() == FDB_LIMIT  # without fdb_max_learned all 16 are learnt
