"""Programs in lab namespaces: started by a spawning thread, with subprocess.run semantics."""

from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest

from vlab import Lab, LabError
from vlab.netns import current_inode

pytestmark = pytest.mark.vlab


def _threads_in_namespace(inode: int) -> list[str]:
    found = []
    for tid in os.listdir("/proc/self/task"):
        try:
            if os.stat(f"/proc/self/task/{tid}/ns/net").st_ino == inode:
                found.append(tid)
        except OSError:
            pass
    return found


def test_a_host_program_runs_in_the_hosts_namespace_and_no_thread_stays_there(lab: Lab) -> None:
    br = lab.bridge("br0")
    h = lab.host("h1", bridge=br)
    out = h.run("readlink", "/proc/self/ns/net").stdout.strip()
    assert out == f"net:[{h.ns.inode}]"
    assert "eth0" in h.run("ip", "-o", "link").stdout
    assert "br0" in lab.run("switch", "ip", "-o", "link").stdout
    assert "br0" not in h.run("ip", "-o", "link").stdout
    assert _threads_in_namespace(h.ns.inode) == []  # the spawner went home


def test_exit_status_output_and_check(lab: Lab) -> None:
    br = lab.bridge("br0")
    h = lab.host("h1", bridge=br)
    done = h.run("sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
    assert done.args == ["sh", "-c", "echo out; echo err >&2; exit 3"]
    with pytest.raises(LabError, match=r"failed in h1 \(exit 3\): err"):
        h.run("sh", "-c", "echo err >&2; exit 3")
    with pytest.raises(LabError, match="cannot run 'no-such-program-here' in h1: not installed"):
        h.run("no-such-program-here")


def test_a_timeout_kills_the_program(lab: Lab) -> None:
    br = lab.bridge("br0")
    h = lab.host("h1", bridge=br)
    start = time.monotonic()
    with pytest.raises(LabError, match=r"did not finish within 0\.2 s"):
        h.run("sh", "-c", "echo $$ > /dev/shm/vlab-spawn-test.pid; exec sleep 30", timeout=0.2)
    assert time.monotonic() - start < 5
    with open("/dev/shm/vlab-spawn-test.pid") as fh:
        pid = int(fh.read())
    os.unlink("/dev/shm/vlab-spawn-test.pid")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped


def test_programs_from_many_threads_each_land_in_their_own_namespace() -> None:
    home = current_inode()
    with Lab() as lab:
        br = lab.bridge("br0")
        hosts = [lab.host(f"h{i}", bridge=br) for i in range(4)]
        wrong: list[str] = []

        def work(h: object) -> None:
            for _ in range(10):
                got = h.run("readlink", "/proc/self/ns/net").stdout.strip()  # type: ignore[attr-defined]
                if got != f"net:[{h.ns.inode}]":  # type: ignore[attr-defined]
                    wrong.append(got)

        threads = [threading.Thread(target=work, args=(h,)) for h in hosts]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert wrong == []
    assert current_inode() == home


def test_a_closed_lab_refuses_to_run() -> None:
    lab = Lab()
    br = lab.bridge("br0")
    h = lab.host("h1", bridge=br)
    lab.close()
    with pytest.raises(LabError):
        h.run("true")


def test_a_program_that_closes_its_output_still_times_out(lab: Lab) -> None:
    """The output is at EOF long before the program ends: the wait for its exit keeps the
    deadline (and the ordinary case still returns at once)."""
    h = lab.host("h1", bridge=lab.bridge("br0"))
    start = time.monotonic()
    with pytest.raises(LabError, match=r"did not finish within 0\.3 s"):
        h.run("sh", "-c", "exec >&- 2>&-; exec sleep 30", timeout=0.3)
    assert time.monotonic() - start < 5
    start = time.monotonic()
    assert h.run("sh", "-c", "exec >&- 2>&-; sleep 0.2", timeout=10).returncode == 0
    assert 0.2 <= time.monotonic() - start < 5


def test_output_is_text_as_subprocess_makes_it(lab: Lab) -> None:
    h = lab.host("h1", bridge=lab.bridge("br0"))
    done = h.run("printf", "a\\r\\nb\\rc\\n\\303\\251")
    assert done.stdout == "a\nb\nc\n\u00e9"
    assert (
        done.stdout
        == subprocess.run(
            ["printf", "a\\r\\nb\\rc\\n\\303\\251"], capture_output=True, text=True
        ).stdout
    )
