"""Pcap timestamps are arrival times from the kernel, for every endpoint kind, and a sender's
stamp never comes after a receiver's; the whole lab is one time-ordered pcapng."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from scapy.layers.l2 import Ether
from scapy.utils import PcapNgReader, rdpcap

from vlab import Endpoint, Lab, pcapng

pytestmark = pytest.mark.vlab
MS = 1_000_000


def stamps(ep: Endpoint, data: bytes, sent: bool) -> list[int]:
    return [ts for ts, was_sent, frame in ep.log if frame == data and was_sent is sent]


def test_vm_and_uplink_stamp_the_same_frame_within_milliseconds(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm1 = lab.vm("vm1", bridge=br)
    up = lab.uplink(br)
    frame = bytes(Ether(src=up.mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / b"when")
    up.send(frame)
    time.sleep(0.3)  # vlab reads the tap long after the frame arrived ...
    vm1.expect(frame)
    (sent,) = stamps(up, frame, sent=True)
    (received,) = stamps(vm1, frame, sent=False)
    # ... and the VM's stamp is still the kernel's arrival time, not the read (300 ms later)
    assert 0 <= received - sent < 20 * MS, (sent, received)


def test_reverse_direction_vm_sends_uplink_receives(lab: Lab) -> None:
    br = lab.bridge("br0")
    vm1 = lab.vm("vm1", bridge=br)
    up = lab.uplink(br)
    h1 = lab.host("h1", bridge=br)
    frame = bytes(Ether(src=vm1.mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / b"when")
    vm1.send(frame)
    time.sleep(0.3)
    lab.expect(frame, at=[up, h1])
    (sent,) = stamps(vm1, frame, sent=True)
    for ep in (up, h1):
        (received,) = stamps(ep, frame, sent=False)
        assert 0 <= received - sent < 20 * MS, (ep.name, sent, received)


def test_a_senders_stamp_never_follows_a_receivers(lab: Lab) -> None:
    """200 frames each way: every send stamp (taken before the write) precedes the kernel's
    receive stamp of the same frame at the other end."""
    br = lab.bridge("br0")
    vm1 = lab.vm("vm1", bridge=br)
    h1 = lab.host("h1", bridge=br)
    up = lab.uplink(br)
    pairs = [(vm1, up), (up, vm1), (h1, vm1), (vm1, h1)]
    for i in range(50):
        for sender, receiver in pairs:
            frame = bytes(
                Ether(src=sender.mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B5)
                / f"{sender.name}-{receiver.name}-{i}".encode()
            )
            sender.send(frame)
            receiver.expect(frame)
            (sent,) = stamps(sender, frame, sent=True)
            (received,) = stamps(receiver, frame, sent=False)
            assert sent <= received, (sender.name, receiver.name, i, received - sent)
        lab.settle()
        for ep in (vm1, h1, up):
            ep.clear()


def test_merged_pcapng_has_an_interface_per_endpoint_in_time_order(
    lab: Lab, tmp_path: Path
) -> None:
    br = lab.bridge("br0")
    vm1 = lab.vm("vm1", bridge=br)
    h1 = lab.host("h1", bridge=br)
    up = lab.uplink(br)
    for i in range(20):
        for ep in (up, vm1, h1):
            ep.send(Ether(src=ep.mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / (bytes([i]) * 20))
    lab.settle()
    directory = lab.write_artifacts(tmp_path / "art")
    path = directory / "lab.pcapng"
    names, records = pcapng.read(path)
    assert names == ["vm1 (vnet0)", "h1 (veth0)", "uplink (eth0)"]
    assert len(records) == 60 + 60 * 2  # 60 sent, each received at the two other endpoints
    times = [ts for _i, ts, _sent, _data in records]
    assert times == sorted(times)
    endpoints: list[Endpoint] = [vm1, h1, up]
    for index, one in enumerate(endpoints):
        mine = [(ts, sent, data) for i, ts, sent, data in records if i == index]
        assert sorted(mine) == sorted(one.log)  # every frame of its log, with its direction
    # Wireshark's reader's view, independently: scapy reads names, ns times and directions
    scapy_pkts = list(PcapNgReader(str(path)))
    assert [p.sniffed_on for p in scapy_pkts[:3]] == [names[r[0]] for r in records[:3]]
    assert [int(p.time * 10**9) // 1000 for p in scapy_pkts] == [t // 1000 for t in times]
    assert {p.direction for p in scapy_pkts} == {1, 2}  # inbound and outbound both present
    per_endpoint = rdpcap(str(directory / "vm1-vnet0.pcap"))
    assert len(per_endpoint) == 60 - 20 + 20  # 40 received, 20 sent
    stamped = [int(p.time * 10**9) for p in per_endpoint]
    assert stamped == sorted(stamped)
