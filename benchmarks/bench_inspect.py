"""``vlab where`` on a host with hundreds of taps, against the article's bridge-by-bridge search.

A lab with a few hundred VMs (taps whose fds vlab holds, as QEMU would) spread over several
bridges stands for a busy hypervisor; every VM has sent a frame, so every bridge has learnt its
guests. vlab answers from two netlink dumps and one pass over /proc — in-process and as the
``vlab where`` command (Python start-up included). The baseline is what the article suggests,
run in the same namespace in the same run: for every bridge ``bridge fdb show br BR`` and
``ip -d link show master BR``, searching the output for the MAC. The baseline only finds the
port; vlab also names the process holding the tap (and for QEMU the VM and NIC).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from scapy.layers.l2 import Ether

from benchmarks.timing import Figure, Stats, repeat
from vlab import Lab
from vlab.hostview import inspect_host, where
from vlab.netns import setns

ROOT = Path(__file__).resolve().parents[1]
BRIDGES = 4


def _vlab_cli() -> list[str]:
    script = Path(sys.executable).parent / "vlab"
    return [str(script)] if script.exists() else [sys.executable, "-m", "vlab.cli"]


def _baseline(fd: int, bridges: list[str], mac: str) -> str:
    """The article's way: each bridge's fdb and ports, one command each, grep for the MAC."""
    found = ""
    for br in bridges:
        for argv in (
            ["bridge", "fdb", "show", "br", br],
            ["ip", "-d", "link", "show", "master", br],
        ):
            out = subprocess.run(
                argv,
                preexec_fn=lambda: setns(fd),
                pass_fds=(fd,),
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            if not found and argv[0] == "bridge":
                found = next((line for line in out.splitlines() if line.startswith(mac)), "")
    if not found:
        raise AssertionError(f"baseline did not find {mac}")
    return found


def _one(count: int, n_bridges: int, trials: int) -> list[Figure]:
    with Lab(name="inspect") as lab:
        bridges = [lab.bridge(f"br{i}") for i in range(n_bridges)]
        machines = [lab.vm(f"vm{i}", bridge=bridges[i % n_bridges]) for i in range(count)]
        for vm in machines:
            vm.send(Ether(src=vm.mac, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / b"hello")
        lab.settle()
        target = machines[-1]  # on the last bridge: the baseline searches all of them
        fd = lab.namespaces()["switch"].fd
        path = f"/proc/{os.getpid()}/fd/{fd}"

        def library() -> None:
            _view, answer = where(target.mac, path)
            assert answer.found and answer.locations[0].port is not None
            assert answer.locations[0].port.name == target.port
            assert answer.locations[0].tap is not None and answer.locations[0].tap.holders

        def cli() -> None:
            done = subprocess.run(
                [*_vlab_cli(), "where", target.mac, "--netns", path],
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            assert done.returncode == 0 and f"tap {target.port} " in done.stdout, done.stderr

        names = [b.name for b in bridges]
        base = Stats.of(repeat(lambda: _baseline(fd, names, target.mac), trials)).scaled(1e3)
        lib = Stats.of(repeat(library, trials)).scaled(1e3)
        command = Stats.of(repeat(cli, max(5, trials // 2))).scaled(1e3)
        entries = len(inspect_host(path).fdb)
    what = f"{count} taps on {n_bridges} bridges"
    baseline = f"bridge fdb show + ip -d link per bridge ({2 * n_bridges} commands)"
    note = f"{entries} fdb entries; vlab also names the tap's holder process"
    return [
        Figure(f"where MAC, library ({what})", lib, "ms", baseline, base, note=note),
        Figure(
            f"vlab where MAC, command ({what})",
            command,
            "ms",
            baseline,
            base,
            note="includes Python start-up and importing vlab (scapy: ~0.25 s)",
        ),
    ]


def run(quick: bool, vms: int | None = None) -> list[Figure]:
    """``vms`` taps (400; 120 with ``quick``) on 4 and on 16 bridges: vlab's cost stays, the
    per-bridge baseline's grows with the bridges."""
    count = vms or (120 if quick else 400)
    trials = 7 if quick else 15
    return _one(count, 4, trials) + _one(count, 16, trials)
