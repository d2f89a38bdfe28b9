"""Programs in lab namespaces: started by a spawning thread, with subprocess.run semantics."""

from __future__ import annotations

import os
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
