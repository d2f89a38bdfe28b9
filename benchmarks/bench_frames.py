"""Frame latency and throughput through VM -> tap -> bridge -> uplink.

Latency: ``send`` + ``expect`` (the frame arrives) and ``send`` + ``expect_none`` (it must be
proven not to arrive, which is where other harnesses sleep: PTF 100 ms per negative check, the
kernel's forwarding selftests 1 s). The measured baseline is the kernel floor: the same frame
written to the tap fd and read from the uplink's socket with no harness around it, so the gap
between the two is exactly what vlab's bookkeeping costs.

Throughput: frames per second from a VM to the uplink through the API, against raw writes to
the tap fd in the same lab.
"""

from __future__ import annotations

import os
import select
import time

from scapy.layers.l2 import Ether

from benchmarks.timing import Figure, Stats
from vlab import Lab
from vlab.endpoints import Endpoint

PTF_NEGATIVE_S = 0.1
SELFTEST_NEGATIVE_S = 1.0


def _lab() -> tuple[Lab, Endpoint, Endpoint, Endpoint]:
    lab = Lab(name="frames")
    br = lab.bridge("br0", ageing_time=300)
    vm1, vm2 = lab.vm("vm1", bridge=br), lab.vm("vm2", bridge=br)
    up = lab.uplink(br)
    for ep in (vm1, vm2, up):  # let the bridge learn everyone, so unicast goes to one port
        ep.send(Ether(src=ep.mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / b"hello")
    lab.settle()
    for ep in (vm1, vm2, up):
        ep.clear()
    return lab, vm1, vm2, up


def _raw_round_trip(vm: Endpoint, up: Endpoint, data: bytes, n: int) -> list[float]:
    tap_fd = vm.tap_fd  # type: ignore[attr-defined]
    sock = up.io.sock  # type: ignore[attr-defined]
    out = []
    for _ in range(n):
        start = time.perf_counter()
        os.write(tap_fd, data)
        while True:
            select.select([sock], [], [], 1.0)
            try:
                if sock.recv(65536) == data:
                    break
            except BlockingIOError:
                continue
        out.append(time.perf_counter() - start)
    return out


def latency(quick: bool) -> list[Figure]:
    n = 300 if quick else 3000
    lab, vm1, vm2, up = _lab()
    try:
        frame = Ether(src=vm1.mac, dst=up.mac, type=0x88B5) / b"latency"
        data = bytes(frame)
        _raw_round_trip(vm1, up, data, 50)
        floor = Stats.of(_raw_round_trip(vm1, up, data, n))
        positive = []
        for _ in range(n + 50):
            start = time.perf_counter()
            vm1.send(frame)
            up.expect(frame)
            positive.append(time.perf_counter() - start)
        back = Ether(src=up.mac, dst=vm1.mac, type=0x88B5) / b"not for vm2"
        negative = []
        for _ in range(n + 50):
            start = time.perf_counter()
            up.send(back)
            vm2.expect_none()
            negative.append(time.perf_counter() - start)
            vm1.clear()
    finally:
        lab.close()
    ms = 1e3
    pos = Stats.of(positive[50:]).scaled(ms)
    neg = Stats.of(negative[50:]).scaled(ms)
    p99 = {
        name: sorted(xs[50:])[int(0.99 * (len(xs) - 51))] * ms
        for name, xs in (("pos", positive), ("neg", negative))
    }
    fixed = f"fixed: PTF {PTF_NEGATIVE_S * ms:g} ms, selftests {SELFTEST_NEGATIVE_S * ms:g} ms"
    return [
        Figure(
            "send + expect (VM -> uplink)",
            pos,
            "ms",
            "raw tap write + socket read",
            floor.scaled(ms),
            goal="<= 0.2 ms",
            goal_met=pos.median <= 0.2,
            note=(
                f"p99 {p99['pos']:.3f} ms; ratio < 1: the price of matching, logging, "
                "the readiness and loss checks"
            ),
        ),
        Figure(
            "send + expect_none (uplink -> VM, checked at another VM)",
            neg,
            "ms",
            "PTF negative check (fixed sleep)",
            Stats(PTF_NEGATIVE_S * ms, PTF_NEGATIVE_S * ms, PTF_NEGATIVE_S * ms, 1),
            goal="<= 1 ms",
            goal_met=neg.median <= 1.0,
            note=f"p99 {p99['neg']:.3f} ms; {fixed}",
        ),
        Figure(
            "send + expect_none",
            neg,
            "ms",
            "net/forwarding selftests (fixed sleep)",
            Stats(SELFTEST_NEGATIVE_S * ms, SELFTEST_NEGATIVE_S * ms, SELFTEST_NEGATIVE_S * ms, 1),
        ),
    ]


def throughput(quick: bool) -> list[Figure]:
    """Frames per second in batches; every batch is settled and counted at the uplink."""
    batch, batches = 500, (10 if quick else 40)
    lab, vm1, _vm2, up = _lab()
    try:
        frame = Ether(src=vm1.mac, dst=up.mac, type=0x88B5) / bytes(50)
        data = bytes(frame)
        tap_fd = vm1.tap_fd  # type: ignore[attr-defined]

        def api_bytes() -> None:
            for _ in range(batch):
                vm1.send(data)

        def api_scapy() -> None:
            for _ in range(batch):
                vm1.send(frame)

        def raw() -> None:
            for _ in range(batch):
                os.write(tap_fd, data)

        senders = {"api": api_bytes, "scapy": api_scapy, "raw": raw}
        rates: dict[str, list[float]] = {name: [] for name in senders}
        delivered = dict.fromkeys(senders, 0)
        for i in range(batches + 2):
            for name, send in senders.items():
                start = time.perf_counter()
                send()
                lab.settle()
                got = len(up.pending)
                elapsed = time.perf_counter() - start
                up.clear()
                if i >= 2:  # the first batches warm caches up
                    rates[name].append(got / elapsed)
                    delivered[name] += got
    finally:
        lab.close()
    sent = batch * batches
    scapy = Stats.of(rates["scapy"]).median
    return [
        Figure(
            "frames/s VM -> tap -> bridge -> uplink (64 B, `send(bytes)`)",
            Stats.of(rates["api"]),
            "frames/s",
            "raw writes to the tap fd",
            Stats.of(rates["raw"]),
            higher_is_better=True,
            note=(
                f"`send(scapy packet)`: {scapy:,.0f} frames/s (building the bytes dominates); "
                f"delivered {delivered['api']}/{sent}, {delivered['scapy']}/{sent}, "
                f"{delivered['raw']}/{sent} (bytes, scapy, raw)"
            ),
        )
    ]


def _flood_lab(kind: str) -> tuple[Lab, Endpoint, Endpoint]:
    lab = Lab(name=f"flood-{kind}")
    br = lab.bridge("br0", ageing_time=300)
    ep: Endpoint = lab.vm("vm1", bridge=br) if kind == "vm" else lab.host("h1", bridge=br)
    up = lab.uplink(br)
    ep.send(Ether(src=ep.mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / b"learn me")
    lab.settle()
    up.clear()
    return lab, ep, up


def sustained(quick: bool) -> list[Figure]:
    """Frames/s into one endpoint with every frame kept: the uplink floods 64-byte frames at
    a VM (tap) or a host (veth), vlab reads the endpoint between batches, and the kernel's
    counters (vlab.loss) must show nothing lost; the baseline is the same sends unread."""
    from vlab import loss

    batch, batches = 1000, (20 if quick else 100)
    figures = []
    for kind in ("vm", "host"):
        lab, ep, up = _flood_lab(kind)
        try:
            head = bytes(Ether(src=up.mac, dst=ep.mac, type=0x88B5))
            frames = [head + i.to_bytes(4, "big") + bytes(46) for i in range(batch)]
            kept_rates, raw_rates, kept = [], [], 0
            for i in range(batches + 2):
                start = time.perf_counter()
                for data in frames:
                    up.send(data)
                got = ep.pull()
                while got < batch and time.perf_counter() - start < 1.0:
                    select.select([ep.io.fileno()], [], [], 0.01)
                    got += ep.pull()
                elapsed = time.perf_counter() - start
                ep.pending.clear()
                if i >= 2:
                    kept_rates.append(got / elapsed)
                    kept += got
            lost = sum(item.count for item in loss.losses(ep, fresh=True))
            sock = up.io.sock  # type: ignore[attr-defined]
            for _ in range(10):
                start = time.perf_counter()
                for data in frames[: batch // 4]:  # the tap holds 4096: stay under it
                    sock.send(data)
                raw_rates.append(batch // 4 / (time.perf_counter() - start))
                lab.settle()
                ep.pending.clear()
        finally:
            lab.close()
        sent = batch * batches
        rate = Stats.of(kept_rates)
        figures.append(
            Figure(
                f"sustained frames/s kept at a {'VM (tap)' if kind == 'vm' else 'host (veth)'}"
                " from the uplink (64 B)",
                rate,
                "frames/s",
                "raw socket sends, nothing read",
                Stats.of(raw_rates),
                higher_is_better=True,
                goal=">= 100k frames/s, 0 lost",
                goal_met=rate.median >= 100_000 and lost == 0 and kept == sent,
                note=f"kept {kept}/{sent}, lost {lost} (kernel counters); read every {batch}",
            )
        )
    return figures
