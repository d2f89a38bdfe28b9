"""What a lab costs inside a real suite, not only in isolation.

- Labs in a row: the same small lab built and torn down back to back, the way a test suite
  does, with the kernel's deferred namespace cleanup counted: earlier labs' cleanup lands on
  later builds (they wait for rtnl while a kworker destroys bridges), and what is still pending
  after the last lab is waited for and added to the total. The baseline is the same lab built
  in isolation, each build after the previous lab's cleanup has finished.
- Programs in labs: ``host.run("true")`` against a plain ``subprocess.run`` outside any
  namespace (the floor), against the same spawn with ``setpriv --pdeathsig`` in front (vlab's
  launcher before :mod:`vlab.dyingexec`) and against the ``preexec_fn=setns`` way.
- Negative checks with every CPU busy: ``send`` + ``expect_none`` while one busy-looping
  process per CPU runs (bounded in time), with the marker barrier and, interleaved in the same
  run, with the migrating barrier it replaces.
- Start-up: ``pytest --vlab`` against plain ``pytest`` on a one-test file.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from scapy.layers.l2 import Ether

from benchmarks.timing import Figure, Stats
from vlab import Lab, nspool, quiesce, reaper, spawn
from vlab.netns import NetNS, setns
from vlab.rtnl import LinkRequests, Rtnl

ROOT = Path(__file__).resolve().parents[1]
BUSY_SECONDS = 60  # a busy loop ends by itself even if this process is killed


def build_lab() -> None:
    """Bridge + 3 VMs + uplink, built and torn down (what one test's lab costs)."""
    with Lab(name="row") as lab:
        br = lab.bridge("br0")
        for i in range(3):
            lab.vm(f"vm{i}", bridge=br)
        lab.uplink(br)


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(0.99 * (len(ordered) - 1) + 0.5))]


def wait_for_cleanup(timeout: float = 120.0) -> float:
    """Seconds until the kernel has destroyed every namespace this process dropped so far.

    A canary namespace is dropped last, cabled by a veth to a watcher namespace: the kernel
    cleans dropped namespaces in order, batch by batch, so once the canary's veth has vanished
    from the watcher, every earlier namespace's devices are gone too (bridges included).
    """
    start = time.perf_counter()
    reaper.drain()  # packet sockets hold namespaces too
    watcher = NetNS.create("watcher")
    canary = NetNS.create("canary")
    try:
        with watcher.entered():
            rtnl = Rtnl()
        try:
            links = LinkRequests(rtnl)
            links.add_veth(
                "canary", 0, "02:00:00:00:00:01", None, "c0", "02:00:00:00:00:02", canary.fd, 0
            )
            canary.close()
            deadline = time.monotonic() + timeout
            while "canary" in links.link_states():
                if time.monotonic() > deadline:
                    break
                time.sleep(0.001)
        finally:
            rtnl.close()
    finally:
        canary.close()
        watcher.close()
    return time.perf_counter() - start


def _rows(labs: int, block: int = 50) -> dict[bool, tuple[list[float], float]]:
    """Per-lab seconds with and without namespace reuse, in alternating blocks of a row.

    Each block ends by waiting for its cleanup (the pool's resets, then the kernel's), and that
    wait is added to the block's total, so each mode pays for its own deferred work. The reset
    workers are started first, as a ``pytest --vlab`` session's configure starts them (before
    collection): the first reused block still makes the references and its first namespaces.
    """
    pool = nspool.pool()
    was = pool.enabled
    out: dict[bool, tuple[list[float], float]] = {False: ([], 0.0), True: ([], 0.0)}
    pool.enabled = True
    pool.prestart()
    try:
        for n in range(2 * labs // block):
            reuse = n % 2 == 1
            pool.enabled = reuse
            row, total = out[reuse]
            started = time.perf_counter()
            for _ in range(block):
                start = time.perf_counter()
                build_lab()
                row.append(time.perf_counter() - start)
            pool.drain()
            wait_for_cleanup()
            out[reuse] = (row, total + time.perf_counter() - started)
    finally:
        pool.enabled = was
    return out


def labs_in_a_row(labs: int) -> list[Figure]:
    build_lab()
    wait_for_cleanup()
    isolated = []
    for _ in range(min(30, labs)):
        start = time.perf_counter()
        build_lab()
        isolated.append(time.perf_counter() - start)
        wait_for_cleanup()
    ms = 1e3
    iso = Stats.of(isolated).scaled(ms)
    figures = []
    rows = _rows(labs)
    for reuse in (False, True):
        row, total = rows[reuse]
        s = Stats.of(row).scaled(ms)
        met = s.median <= 3.0 and p99(row) * ms <= 10.0 and total / len(row) * ms <= 10.0
        how = (
            "switch namespaces reused (the `pytest --vlab` default)"
            if reuse
            else "fresh namespaces (`VLAB_REUSE_NAMESPACES=0`)"
        )
        figures.append(
            Figure(
                f"{len(row)} labs in rows of 50 (bridge + 3 VMs + uplink), per lab: {how}",
                s,
                "ms",
                "the same lab in isolation (after the previous cleanup)",
                iso,
                goal="p50 <= 3 ms and p99 <= 10 ms, cleanup counted",
                goal_met=met,
                note=(
                    f"p99 {p99(row) * ms:.1f} ms (isolated {p99(isolated) * ms:.1f}); "
                    f"{total / len(row) * ms:.1f} ms per lab with the cleanup after each row "
                    "counted; blocks alternate with the other mode"
                    + (
                        f"; pool {nspool.pool().stats}"
                        if reuse
                        else "; slow builds wait for rtnl while earlier labs' bridges are "
                        "destroyed (rcu_barrier under rtnl)"
                    )
                ),
            )
        )
    return figures


def _preexec_run(ns: NetNS, argv: list[str]) -> None:
    fd = ns.fd
    subprocess.run(
        argv, preexec_fn=lambda: setns(fd), pass_fds=(fd,), capture_output=True, check=True
    )


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _setpriv(argv: list[str]) -> list[str]:
    return ["setpriv", "--pdeathsig", "KILL", "--", *argv]


def programs(quick: bool) -> list[Figure]:
    n = 100 if quick else 400
    with Lab(name="run") as lab:
        host = lab.host("h1", bridge=lab.bridge("br0"))
        fd = host.ns.fd
        ways: dict[str, Callable[[], object]] = {
            "vlab": lambda: host.run("true"),
            "plain": lambda: subprocess.run(["true"], capture_output=True, check=True),
            "setpriv": lambda: spawn.run(host.ns, _setpriv(["true"]), check=True, timeout=10),
            "nsenter": lambda: subprocess.run(
                ["nsenter", f"--net=/proc/self/fd/{fd}", "true"],
                pass_fds=(fd,),
                capture_output=True,
                check=True,
            ),
        }
        samples: dict[str, list[float]] = {name: [] for name in ways}
        for fn in ways.values():
            fn()
        for _ in range(n):
            for name, fn in ways.items():
                start = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - start)
        # apart, after: a full fork leaves this whole process copy-on-write, and the spawns
        # measured right after one would pay for its page faults
        samples["preexec"] = []
        for _ in range(n // 4):
            start = time.perf_counter()
            _preexec_run(host.ns, ["true"])
            samples["preexec"].append(time.perf_counter() - start)
    ms = 1e3
    vlab = Stats.of(samples["vlab"]).scaled(ms)
    return [
        Figure(
            'host.run("true")',
            vlab,
            "ms",
            "`subprocess.run` outside any namespace",
            Stats.of(samples["plain"]).scaled(ms),
            goal="<= 2 ms",
            goal_met=vlab.median <= 2.0,
            note=(
                f"p99 {_p99(samples['vlab']) * ms:.2f} ms (`subprocess.run` "
                f"{_p99(samples['plain']) * ms:.2f} ms); "
                f"`setpriv --pdeathsig` from the spawning thread (how vlab ran them before) "
                f"{statistics.median(samples['setpriv']) * ms:.2f} ms; "
                f"`nsenter --net` {statistics.median(samples['nsenter']) * ms:.2f} ms; "
                f"`preexec_fn=setns` (vlab at first) "
                f"{statistics.median(samples['preexec']) * ms:.2f} ms"
            ),
        ),
        Figure(
            'host.run("true")',
            vlab,
            "ms",
            "the same spawn with `setpriv --pdeathsig` in front (a second, dynamic exec)",
            Stats.of(samples["setpriv"]).scaled(ms),
        ),
        Figure(
            'host.run("true")',
            vlab,
            "ms",
            "`preexec_fn=setns` (a full fork)",
            Stats.of(samples["preexec"]).scaled(ms),
        ),
    ]


@contextmanager
def busy_cpus() -> Iterator[int]:
    """One busy-looping process per online CPU, each ending by itself after BUSY_SECONDS."""
    count = os.cpu_count() or 1
    loop = (
        f"import time\nend = time.monotonic() + {BUSY_SECONDS}\nwhile time.monotonic() < end: pass"
    )
    procs = [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(count)]
    try:
        time.sleep(0.2)  # let them reach their loops
        yield count
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def _negative_samples(n: int) -> dict[str, list[float]]:
    """send + expect_none with the marker barrier and with the migrating one, interleaved."""
    samples: dict[str, list[float]] = {"markers": [], "migration": []}
    lab = Lab(name="busy")
    try:
        br = lab.bridge("br0", ageing_time=300)
        vm1, vm2 = lab.vm("vm1", bridge=br), lab.vm("vm2", bridge=br)
        up = lab.uplink(br)
        for ep in (vm1, vm2, up):
            ep.send(Ether(src=ep.mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / b"hello")
        lab.settle()
        for ep in (vm1, vm2, up):
            ep.clear()
        back = Ether(src=up.mac, dst=vm1.mac, type=0x88B5) / b"not for vm2"
        barriers = {"markers": quiesce.cpu_barrier, "migration": quiesce.migration_barrier}
        original = quiesce.cpu_barrier
        try:
            for block in range(2 * n // 50):
                name = ("markers", "migration")[block % 2]
                quiesce.cpu_barrier = barriers[name]  # type: ignore[assignment]
                for _ in range(50):
                    start = time.perf_counter()
                    up.send(back)
                    vm2.expect_none()
                    samples[name].append(time.perf_counter() - start)
                    vm1.clear()
        finally:
            quiesce.cpu_barrier = original  # type: ignore[assignment]
    finally:
        lab.close()
    return samples


def negative_checks(quick: bool) -> list[Figure]:
    n = 300 if quick else 1000
    idle = _negative_samples(n)
    with busy_cpus() as count:
        busy = _negative_samples(n)
    ms = 1e3
    idle_s = Stats.of(idle["markers"]).scaled(ms)
    busy_s = Stats.of(busy["markers"]).scaled(ms)
    return [
        Figure(
            "send + expect_none, idle machine (marker barrier)",
            idle_s,
            "ms",
            "the migrating barrier, same run",
            Stats.of(idle["migration"]).scaled(ms),
            goal="<= 0.3 ms",
            goal_met=idle_s.median <= 0.3,
            note=f"p99 {p99(idle['markers']) * ms:.2f} ms (migrating "
            f"{p99(idle['migration']) * ms:.2f})",
        ),
        Figure(
            f"send + expect_none, every CPU busy ({count} busy-loop processes)",
            busy_s,
            "ms",
            "the migrating barrier, same run",
            Stats.of(busy["migration"]).scaled(ms),
            goal="<= 1 ms",
            goal_met=busy_s.median <= 1.0,
            note=f"p99 {p99(busy['markers']) * ms:.2f} ms (migrating "
            f"{p99(busy['migration']) * ms:.2f})",
        ),
    ]


def startup(quick: bool) -> list[Figure]:
    runs = 5 if quick else 10
    samples: dict[str, list[float]] = {"vlab": [], "plain": []}
    with tempfile.TemporaryDirectory(prefix="vlab-bench-startup-") as tmp:
        test = Path(tmp) / "test_one.py"
        test.write_text("def test_one():\n    pass\n")
        base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)]
        argvs = {"vlab": [*base, "--vlab"], "plain": [*base, "-p", "no:vlab"]}
        for _ in range(runs):
            for name, argv in argvs.items():
                start = time.perf_counter()
                subprocess.run(argv, cwd=tmp, capture_output=True, check=True)
                samples[name].append(time.perf_counter() - start)
    vlab = Stats.of(samples["vlab"])
    plain = Stats.of(samples["plain"])
    return [
        Figure(
            "`pytest --vlab` start-up (one trivial test)",
            vlab,
            "s",
            "plain `pytest` (`-p no:vlab`)",
            plain,
            goal="<= 1.5x plain pytest",
            goal_met=vlab.median <= 1.5 * plain.median,
            note="wall time of the whole run; the plugin's lazy imports decide this one",
        )
    ]
