"""``vlab doctor --kernel`` and ``vlab run --kernel A --kernel B``, against the host kernel."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from kernel_helpers import ROOT, in_guest, kernel_or_skip

from vlab.kernel.image import inspect_kernel
from vlab.scenario.features import missing

pytestmark = [
    pytest.mark.vlab,
    pytest.mark.qemu,
    pytest.mark.skipif(in_guest(), reason="drives pytest and vlab from the host; this is a guest"),
]


def vlab(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vlab.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _table(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    rows = json.loads(done.stdout)["checks"]
    return {row["name"]: row["status"] for row in rows}


def test_doctor_probes_the_kernel_in_the_guest() -> None:
    kernel = kernel_or_skip()
    guest = vlab("doctor", "--json", "--kernel", str(kernel))
    host = vlab("doctor", "--json")
    assert guest.returncode == 0, guest.stderr
    in_guest, on_host = _table(guest), _table(host)
    # Debian's cloud kernel has what the 6.18 host lacks: the two tables must tell them apart
    for feature in ("dummy", "vlan filtering", "vlan (802.1Q)", "netem"):
        assert in_guest[feature] == "ok", (feature, in_guest)
        if platform.release().startswith("6.18"):
            assert on_host[feature] == "missing", (feature, on_host)
    text = vlab("doctor", "--kernel", str(kernel))
    assert f"kernel {inspect_kernel(kernel).release} ({kernel}), probed in a QEMU guest" in (
        text.stdout
    )


def test_doctor_with_a_bad_kernel_says_what_to_pass() -> None:
    done = vlab("doctor", "--kernel", "/nonexistent/vmlinuz", timeout=60)
    assert done.returncode == 1
    assert "does not exist" in done.stderr and "or 'host'" in done.stderr


def test_matrix_shows_a_real_difference_between_kernels(tmp_path: Path) -> None:
    kernel = kernel_or_skip()
    if missing(("vlan_filtering",)) is None:
        pytest.skip("the host kernel has VLAN filtering: this pair of kernels does not differ")
    release = inspect_kernel(kernel).release
    out = tmp_path / "matrix.json"
    md = tmp_path / "matrix.md"
    scenarios = ["scenarios/forwarding/broadcast.yaml", "scenarios/forwarding/vlan_filtering.yaml"]
    done = vlab(
        "run",
        "--kernel",
        "host",
        "--kernel",
        str(kernel),
        *scenarios,
        "--json",
        str(out),
        "--markdown",
        str(md),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    matrix = json.loads(out.read_text())
    assert [k["release"] for k in matrix["kernels"]] == [platform.release(), release]
    tests = {t["test"].split("::")[-1]: t for t in matrix["tests"]}
    vlan = tests["vlan_filtering"]["results"]
    broadcast = tests["broadcast"]["results"]
    # the kernels really differ on this one: a skip with its reason vs a pass
    assert vlan[platform.release()]["outcome"] == "skipped"
    assert "vlan_filtering" in vlan[platform.release()]["reason"]
    assert vlan[release]["outcome"] == "passed"
    assert tests["vlan_filtering"]["differs"] and not tests["broadcast"]["differs"]
    assert broadcast[platform.release()]["outcome"] == broadcast[release]["outcome"] == "passed"
    assert matrix["differences"] == 1
    # differences first, in the terminal table and the markdown alike
    table = done.stdout[done.stdout.index("TEST ") :].splitlines()
    assert "vlan_filtering" in table[1] and "broadcast" in table[2], table
    assert md.read_text().splitlines()[2].startswith("| **scenarios/forwarding/vlan_filtering")
