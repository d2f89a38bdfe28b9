"""The scenario loader reads regular files only, and never more than its size limit.

Each hostile file is loaded in a child process with a deadline and a memory measurement: a
loader that opened a FIFO blocks until the deadline, one that read ``/dev/zero`` or a sparse file
whole grows by gigabytes (or dies of MemoryError) before any size check could run. Both are what
the test would then see, so every case here fails against a loader that reads first and checks
after (as ``Path.read_bytes()`` does).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vlab.scenario import ScenarioError, load_scenario
from vlab.scenario.source import MAX_BYTES

MINIMAL = """\
name: minimal
topology:
  br0:
    vms: [vm1, vm2]
steps:
  - send: {from: vm1, frame: {src: vm1.mac, dst: "ff:ff:ff:ff:ff:ff"}}
  - expect: {at: [vm2], only: true}
"""

CHILD = textwrap.dedent(
    """
    import json, resource, sys
    from vlab.scenario import ScenarioError, load_scenario
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        load_scenario(sys.argv[1])
        outcome = "loaded"
    except ScenarioError as exc:
        outcome = str(exc)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(json.dumps({"outcome": outcome, "grown_kb": grown}))
    """
)
DEADLINE = 20.0
MAX_GROWTH_KB = 64 * 1024  # the limit is 1 MiB: anything near this means the file was slurped


def load_in_child(path: Path) -> tuple[str, int]:
    """(error text or "loaded", peak RSS growth in kB) of loading ``path`` in a fresh process."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(path)],
            capture_output=True,
            text=True,
            timeout=DEADLINE,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"loading {path} did not return within {DEADLINE:g} s (blocked on open?)")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    return result["outcome"], result["grown_kb"]


def test_a_symlink_to_dev_zero_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "zero.yaml"
    path.symlink_to("/dev/zero")
    outcome, grown = load_in_child(path)
    assert outcome.startswith(f"{path}:1:1: the scenario is a character device"), outcome
    assert "regular file" in outcome
    assert grown < MAX_GROWTH_KB, f"RSS grew by {grown} kB"


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "fifo.yaml"
    os.mkfifo(path)  # nobody ever writes: a blocking open would wait forever
    outcome, _ = load_in_child(path)
    assert outcome.startswith(f"{path}:1:1: the scenario is a FIFO"), outcome


def test_a_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dir.yaml"
    path.mkdir()
    with pytest.raises(ScenarioError, match="is a directory, not a regular file"):
        load_scenario(path)


def test_a_huge_sparse_file_is_refused_from_its_size(tmp_path: Path) -> None:
    path = tmp_path / "sparse.yaml"
    with open(path, "wb") as fh:
        fh.truncate(8 << 30)  # 8 GiB of holes: reading it whole would need 8 GiB of memory
    outcome, grown = load_in_child(path)
    assert outcome == (
        f"{path}:1:1: the scenario is {8 << 30} bytes; a scenario may be at most {MAX_BYTES} "
        "bytes; split it into several files"
    )
    assert grown < MAX_GROWTH_KB, f"RSS grew by {grown} kB"


def test_a_file_larger_than_its_stat_size_is_read_only_up_to_the_limit(tmp_path: Path) -> None:
    """/proc files claim size 0: only reading stops at the limit (+1 byte to notice)."""
    source = Path("/proc/kallsyms")
    if not source.exists() or len(source.read_bytes()[: MAX_BYTES + 1]) <= MAX_BYTES:
        pytest.skip("needs a /proc file longer than the limit that reports size 0")
    assert os.stat(source).st_size == 0
    path = tmp_path / "proc.yaml"
    path.symlink_to(source)
    outcome, grown = load_in_child(path)
    assert outcome.startswith(f"{path}:1:1: the scenario is more than {MAX_BYTES} bytes"), outcome
    assert grown < MAX_GROWTH_KB, f"RSS grew by {grown} kB"


def test_exactly_the_limit_is_still_read(tmp_path: Path) -> None:
    """The bound is the documented one: a file of MAX_BYTES is read (and then parsed)."""
    path = tmp_path / "padded.yaml"
    data = MINIMAL.encode()
    path.write_bytes(data + b"#" * (MAX_BYTES - len(data)))
    assert path.stat().st_size == MAX_BYTES
    assert load_scenario(path).name == "minimal"
    path.write_bytes(data + b"#" * (MAX_BYTES + 1 - len(data)))
    with pytest.raises(ScenarioError, match=f"is {MAX_BYTES + 1} bytes"):
        load_scenario(path)


def test_a_symlink_to_a_regular_scenario_still_loads(tmp_path: Path) -> None:
    (tmp_path / "real.yaml").write_text(MINIMAL)
    (tmp_path / "link.yaml").symlink_to(tmp_path / "real.yaml")
    assert load_scenario(tmp_path / "link.yaml").name == "minimal"


def _vlab(*args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [sys.executable, "-m", "vlab.cli", *args],
            capture_output=True,
            text=True,
            timeout=DEADLINE,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"vlab {' '.join(args)} did not return within {DEADLINE:g} s")


def test_vlab_up_and_run_refuse_fifos_and_devices(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.yaml"
    zero.symlink_to("/dev/zero")
    for path, kind in ((fifo, "FIFO"), (zero, "character device")):
        up = _vlab("up", str(path))
        assert up.returncode == 1, up.stderr
        assert up.stderr == f"vlab: {path}:1:1: the scenario is a {kind}, not a regular file; " \
            "give the path of a regular file (not a FIFO, device or directory)\n"  # fmt: skip
        run = _vlab("run", str(path))
        assert run.returncode == 4, run.stdout + run.stderr
        assert run.stderr == f"vlab: run: not a regular file or directory: {path} ({kind})\n"
