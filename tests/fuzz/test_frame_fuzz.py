"""Fuzzing frame injection: random bytes at every kind of endpoint never break the harness.

Tests of bridge bugs send malformed frames on purpose (runts, bogus ethertypes, truncated tags),
so every endpoint must either put the bytes on the wire or refuse them with a LabError that says
why; never an OSError, never a wedged socket. After each fuzzed frame an ordinary frame must still
make the trip through the bridge, which proves the endpoint, the bridge port and the capture path
all survived.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest
from fuzzkit import budget, net_fds
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.l2 import Ether

from vlab import Lab, LabError
from vlab.endpoints import Endpoint

pytestmark = pytest.mark.vlab
MTU = 1500
KINDS = ("vm", "host", "uplink")
ETHERTYPES = [0x0000, 0x0001, 0x05DC, 0x05FF, 0x0600, 0x0800, 0x0806, 0x86DD, 0x8100, 0x88A8]
ETHERTYPES += [0x88CC, 0x888E, 0x8809, 0x9100, 0xFFFF]
BROADCAST = "ff:ff:ff:ff:ff:ff"


def header(dst: bytes, src: bytes, ethertype: int) -> bytes:
    return dst + src + struct.pack("!H", ethertype)


def frames() -> st.SearchStrategy[bytes]:
    mac = st.binary(min_size=6, max_size=6) | st.sampled_from(
        [b"\xff" * 6, b"\x01\x80\xc2\x00\x00\x00", b"\x01\x80\xc2\x00\x00\x0e", b"\0" * 6]
    )
    ethertype = st.sampled_from(ETHERTYPES) | st.integers(0, 0xFFFF)
    return st.one_of(
        st.just(b""),
        st.binary(min_size=1, max_size=13),  # runts: not even an Ethernet header
        st.binary(min_size=14, max_size=64),  # short and minimum-size frames
        st.builds(
            lambda d, s, t, p: header(d, s, t) + p, mac, mac, ethertype, st.binary(max_size=200)
        ),
        st.builds(  # a tag, possibly truncated, in front of a garbage ethertype
            lambda d, s, tci, p: header(d, s, 0x8100) + struct.pack("!H", tci) + p,
            mac,
            mac,
            st.integers(0, 0xFFFF),
            st.binary(max_size=6),
        ),
        st.integers(MTU + 10, MTU + 30).map(lambda n: b"\x02" * 12 + b"\x88\xb5" + bytes(n - 14)),
        st.integers(MTU + 19, 66000).map(lambda n: bytes(12) + b"\x08\x00" + bytes(n - 14)),
    )


@pytest.fixture
def lab_of_every_kind() -> Iterator[tuple[Lab, dict[str, Endpoint], Endpoint]]:
    """One endpoint of each kind plus a witness VM that receives every broadcast."""
    before = net_fds()
    with Lab(name="framefuzz") as lab:
        br = lab.bridge("br0", ageing_time=30)
        eps: dict[str, Endpoint] = {
            "vm": lab.vm("vm1", bridge=br),
            "host": lab.host("h1", bridge=br),
            "uplink": lab.uplink(br),
        }
        witness = lab.vm("witness", bridge=br)
        yield lab, eps, witness
    assert net_fds() == before


def oversized(data: bytes) -> bool:
    """Longer than a sender with this MTU can put on the wire (a tag earns 4 more bytes)."""
    tagged = len(data) >= 14 and data[12:14] in (b"\x81\x00", b"\x88\xa8")
    return len(data) > MTU + 14 + (4 if tagged else 0)


@pytest.mark.parametrize("kind", KINDS)
def test_fuzzed_frames_are_sent_or_refused_and_the_harness_survives(
    lab_of_every_kind: tuple[Lab, dict[str, Endpoint], Endpoint], kind: str
) -> None:
    lab, eps, witness = lab_of_every_kind
    ep = eps[kind]
    counter = iter(range(1 << 30))

    @budget(60)
    @given(data=frames())
    def inject(data: bytes) -> None:
        try:
            ep.send(data)
            sent = True
        except LabError as exc:
            sent = False
            assert str(exc), "a LabError must say why"
        # Below a header there is nothing to send; above the MTU no NIC could send it.
        if len(data) < 14:
            assert not sent, f"a {len(data)}-byte runt cannot be a frame"
        if oversized(data):
            assert not sent, f"{len(data)} bytes exceed {ep.name}'s MTU {MTU}: must be refused"
        probe = Ether(src=ep.mac, dst=BROADCAST, type=0x88B5) / f"probe {next(counter)}".encode()
        ep.send(probe)
        witness.expect(probe)
        lab.settle()
        for other in (*eps.values(), witness):
            other.clear()

    inject()
    lab.expect_quiet()


@pytest.mark.parametrize("extra", [1, 4, 5000])
def test_a_frame_above_the_mtu_is_refused_at_a_vm_as_at_a_host(extra: int) -> None:
    """A guest cannot put more than MTU + 14 bytes on its vNIC; the tap forwards such a frame
    to the bridge, which drops it silently at egress, so accepting it would make a test's
    ``expect`` fail for a reason the test never sees. Hosts and uplinks refuse it already."""
    with Lab(name="mtu") as lab:
        br = lab.bridge("br0")
        vm, host = lab.vm("vm1", bridge=br), lab.host("h1", bridge=br)
        big = Ether(src=vm.mac, dst=BROADCAST, type=0x88B5) / bytes(MTU + extra)
        with pytest.raises(LabError, match="MTU"):
            host.send(Ether(src=host.mac, dst=BROADCAST, type=0x88B5) / bytes(MTU + extra))
        with pytest.raises(LabError, match="MTU"):
            vm.send(big)
