"""Running pytest in a subprocess, hurting it, and checking what it left on the machine.

A leak after a crash is only visible from outside the process that crashed, so every fault test
runs a small generated test file in a child pytest and inspects the machine afterwards:

* namespaces: the inodes of every namespace the child's labs held (the child records them) must
  no longer be held by any process, thread or open fd anywhere, and nothing new may appear in
  ``ip netns list`` or among nsfs bind mounts;
* links: ``ip -o link`` of the host is unchanged (a tap or veth end that escaped into it);
* processes: none still carries the child's environment token (a QEMU or helper that outlived it);
* files: the child's TMPDIR and working directory stay empty; pcaps exist only under --basetemp.

The token makes the check exact on a machine where other people build labs at the same time.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

TOKEN_VAR = "VLAB_FAULT_TOKEN"
ROOT = Path(__file__).resolve().parents[2]

#: Shared by every generated test file: records namespaces and proves teardown in-process.
PRELUDE = '''
import os
import time
from pathlib import Path

import pytest
from scapy.layers.l2 import Ether

from vlab import Lab, nspool

OUT = Path(os.environ["VLAB_FAULT_OUT"])
pytestmark = pytest.mark.vlab


def net_inodes():
    """Every network namespace this process holds: threads' own and open fds."""
    found = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            found.add(os.stat(f"/proc/self/task/{tid}/ns/net").st_ino)
        except OSError:
            pass
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("net:["):
            found.add(int(target[5:-1]))
    return found


HOME = os.stat("/proc/self/ns/net").st_ino


def record(tag):
    """Append the lab namespaces alive now, so the parent can look for them after the fault."""
    with open(OUT / "inodes", "a") as fh:
        fh.write(f"{tag} " + " ".join(str(i) for i in sorted(net_inodes() - {HOME})) + "\\n")


def mark(name, text=""):
    (OUT / name).write_text(text)


@pytest.fixture
def leakprobe(request):
    """Requested before ``lab``: its teardown runs after the lab's, and reports what is left."""
    yield
    nspool.empty()  # closed labs' switch namespaces wait there for reuse, on purpose
    left = sorted(net_inodes() - {HOME})
    with open(OUT / "after_teardown", "a") as fh:
        fh.write(f"{request.node.name} {len(left)}\\n")


def build(lab, vms=3):
    br = lab.bridge("br0", ageing_time=30)
    eps = [lab.vm(f"vm{i}", bridge=br) for i in range(vms)]
    eps.append(lab.host("h1", bridge=br))
    up = lab.uplink(br)
    frame = Ether(src=eps[0].mac, dst="02:00:00:00:00:99", type=0x88B5) / b"fault"
    eps[0].send(frame)
    up.expect(frame)
    return br, eps, up
'''


@dataclass
class Machine:
    """What a crashed lab could leave outside its own process."""

    links: set[str]
    named: set[str]
    nsfs_mounts: set[str]

    @classmethod
    def now(cls) -> Machine:
        out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True)
        links = {re.sub(r"^\d+: ", "", line).split(" ")[0] for line in out.stdout.splitlines()}
        named = set()
        for directory in ("/run/netns", "/var/run/netns"):
            with contextlib.suppress(OSError):
                named |= {f"{directory}/{e}" for e in os.listdir(directory)}
        with open("/proc/self/mountinfo") as fh:
            mounts = {line.split()[4] for line in fh if " nsfs " in line}
        return cls(links, named, mounts)


def held_namespaces() -> dict[int, set[tuple[int, str]]]:
    """Every network namespace any process holds: ``inode -> {(pid, "thread N" or "fd N")}``."""
    held: dict[int, set[tuple[int, str]]] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                inode = os.stat(f"/proc/{pid}/task/{tid}/ns/net").st_ino
                held.setdefault(inode, set()).add((int(pid), f"thread {tid}"))
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("net:["):
                    held.setdefault(int(target[5:-1]), set()).add((int(pid), f"fd {fd}"))
        except OSError:
            continue  # exited meanwhile, or not ours to read
    return held


def carries(pid: int, token: str) -> bool:
    """Whether process ``pid`` inherited the child's environment token (it descends from it)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return f"{TOKEN_VAR}={token}".encode() in fh.read().split(b"\0")
    except OSError:
        return False


def token_processes(token: str) -> list[str]:
    """Processes whose environment carries ``token``: descendants of the child, even orphaned."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit() and carries(int(pid), token):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            found.append(f"pid {pid}: {cmd[:120]}")
    return found


@dataclass
class Child:
    """One child pytest run over a generated test file, with everything needed to judge it."""

    tmp: Path
    source: str
    extra_args: tuple[str, ...] = ()
    prelude: bool = True
    env: dict[str, str] = field(default_factory=dict)
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    proc: subprocess.Popen[str] | None = None
    before: Machine | None = None
    held_before: set[int] = field(default_factory=set)
    output: str = ""

    @property
    def out(self) -> Path:
        return self.tmp / "out"

    @property
    def basetemp(self) -> Path:
        return self.tmp / "basetemp"

    @property
    def tmpdir(self) -> Path:
        return self.tmp / "tmpdir"

    @property
    def workdir(self) -> Path:
        return self.tmp / "cwd"

    def start(self) -> Child:
        for d in (self.out, self.tmpdir, self.workdir, self.tmp / "tests"):
            d.mkdir(parents=True, exist_ok=True)
        test_file = self.tmp / "tests" / "test_fault_child.py"
        body = textwrap.dedent(self.source)
        test_file.write_text(PRELUDE + body if self.prelude else body)
        env = dict(os.environ)
        env.update(
            {
                TOKEN_VAR: self.token,
                "VLAB_FAULT_OUT": str(self.out),
                "TMPDIR": str(self.tmpdir),
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p
                ),
            }
        )
        env.update(self.env)
        env.pop("PYTEST_XDIST_WORKER", None)
        env.pop("PYTEST_ADDOPTS", None)
        self.before = Machine.now()
        self.held_before = set(held_namespaces())
        argv = [
            sys.executable,
            "-m",
            "pytest",
            "--vlab",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:benchmark",
        ]
        argv += ["-p", "no:randomly", "-q", "--basetemp", str(self.basetemp)]
        argv += ["--rootdir", str(self.tmp), *self.extra_args, str(test_file)]
        self.proc = subprocess.Popen(
            argv,
            cwd=self.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        return self

    def wait_for(self, name: str, timeout: float = 30.0) -> None:
        """Until the child writes marker ``name`` (it is then in the middle of a lab)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while not (self.out / name).exists():
            if self.proc.poll() is not None:
                raise AssertionError(f"child exited before {name!r}:\n{self.finish()}")
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"child never reached {name!r}:\n{self.finish()}")
            time.sleep(0.01)

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def finish(self, timeout: float = 60.0) -> str:
        """Wait for the child to end (killing it if it hangs) and return its output."""
        assert self.proc is not None
        try:
            self.output, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.output, _ = self.proc.communicate()
            self.output += f"\n[child hung for {timeout:g} s and was killed]"
        return self.output

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.returncode

    def recorded_inodes(self) -> set[int]:
        path = self.out / "inodes"
        if not path.exists():
            return set()
        return {int(i) for line in path.read_text().splitlines() for i in line.split()[1:]}

    def after_teardown(self) -> dict[str, int]:
        """``test name -> namespaces the child still held after its lab's teardown``."""
        path = self.out / "after_teardown"
        if not path.exists():
            return {}
        rows = (line.rsplit(" ", 1) for line in path.read_text().splitlines())
        return {name: int(n) for name, n in rows}

    def leftovers(self) -> list[str]:
        """Everything the child left behind; an empty list is a clean machine."""
        assert self.before is not None
        problems = []
        # Namespace inodes are reused at once, and other people may be building labs on this
        # machine: a namespace is ours if a process descending from the child holds it.
        held = held_namespaces()
        suspects = self.recorded_inodes() | (set(held) - self.held_before)
        for inode in sorted(suspects & set(held)):
            ours = sorted(f"pid {p} {how}" for p, how in held[inode] if carries(p, self.token))
            if ours:
                problems.append(f"lab namespace net:[{inode}] still held by {ours}")
        problems += [f"process outlived the run: {p}" for p in token_processes(self.token)]
        after = Machine.now()
        for what, old, new in (
            ("host link", self.before.links, after.links),
            ("named namespace", self.before.named, after.named),
            ("nsfs mount", self.before.nsfs_mounts, after.nsfs_mounts),
        ):
            problems += [f"new {what}: {x}" for x in sorted(new - old)]
        for directory in (self.tmpdir, self.workdir):
            problems += [f"file outside --basetemp: {p}" for p in sorted(directory.rglob("*"))]
        return problems


def files_under(root: Path, pattern: str) -> list[Path]:
    return sorted(root.rglob(pattern)) if root.exists() else []
