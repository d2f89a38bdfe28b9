"""Programs in a lab: background daemons (dnsmasq, a DHCP client) that die with the lab.

Two ways a program can outlive its lab, and what stops each:

* the lab is closed (end of test): :func:`stop_all` kills every program still running, then
  the namespaces go;
* the test process itself dies (SIGKILL, OOM, a crash): nothing in Python runs, so the kernel
  must do it. Every program vlab starts is run under a launcher that sets its
  ``PR_SET_PDEATHSIG`` (:mod:`vlab.dyingexec`; ``setpriv --pdeathsig KILL`` where that one
  cannot run): the kernel sends it SIGKILL when the thread that started it exits. The death
  signal is tied to that *thread*: start programs from a thread that outlives them (the test's
  own thread, or a dedicated spawning thread). A program that daemonizes (forks and lets its
  parent exit) loses the signal: run daemons in the foreground (``dnsmasq
  --keep-in-foreground``, ``dhclient -d``).

How a process is started inside namespace X is not this module's business: :class:`Launcher`
is that small function. Labs use :func:`vlab.spawn.background` (vlab's spawning thread, which
has entered the namespace, with vfork); :func:`launch`, which forks the caller, is the plain
fallback.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING

from vlab import dyingexec, limits
from vlab.errors import LabError
from vlab.netns import setns

if TYPE_CHECKING:
    from vlab.lab import Lab
    from vlab.netns import NetNS
    from vlab.switch import Switch

Launcher = Callable[["NetNS", list[str], IO[bytes]], "subprocess.Popen[bytes]"]
"""Start ``argv`` in a namespace with stdout and stderr going to the given file."""

TAIL_LINES = 30  # lines of each program's output shown in a failure report


def dying(argv: list[str]) -> list[str]:
    """``argv`` run so that it is SIGKILLed when the thread starting it dies.

    FileNotFoundError (as a direct exec would raise) when the program is not installed: the
    wrapper would otherwise turn that into an exit status. The launcher is vlab's own
    (:mod:`vlab.dyingexec`, no second dynamic exec) where it works, ``setpriv`` elsewhere.
    """
    path = shutil.which(argv[0])
    if path is None:
        raise FileNotFoundError(2, "No such file or directory", argv[0])
    launched = dyingexec.argv(path, argv)
    if launched is not None:
        return launched
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise LabError("setpriv (util-linux) is needed so that lab programs die with the lab")
    return [setpriv, "--pdeathsig", "KILL", "--", *argv]


def launch(ns: NetNS, argv: list[str], out: IO[bytes]) -> subprocess.Popen[bytes]:
    """The default launcher: fork, enter ``ns`` in the child, exec."""
    fd = ns.fd
    return subprocess.Popen(
        argv,
        preexec_fn=lambda: setns(fd),
        pass_fds=(fd,),
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a Ctrl-C meant for pytest is not also the program's
    )


class Program:
    """A background program in a lab namespace: ``.pid``, ``.poll()``, ``.output()``, ``.kill()``.

    Its stdout and stderr go to ``.log``, whose tail the failure report shows.
    """

    def __init__(self, node: str, argv: list[str], proc: subprocess.Popen[bytes], log: Path):
        self.node = node
        self.argv = argv
        self.proc = proc
        self.log = log

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        """Its exit status, or None while it runs."""
        return self.proc.poll()

    def wait(self, timeout: float = 10.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise LabError(
                f"{' '.join(self.argv)} in {self.node} still runs after {timeout:g} s"
            ) from None

    def kill(self) -> None:
        """SIGKILL and reap it (nothing if it already ended)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def output(self) -> str:
        """Everything it wrote so far (stdout and stderr, interleaved as written)."""
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def describe(self) -> str:
        code = self.proc.poll()
        state = "running" if code is None else f"exited with status {code}"
        return f"{' '.join(self.argv)} (pid {self.pid}) in {self.node}: {state}; output {self.log}"

    def __repr__(self) -> str:
        return f"<Program {self.argv[0]} pid={self.pid} in {self.node}>"


def as_list(argv: object, node: str) -> list[str]:
    """A shell-like string is refused (it would be run as a program named by its characters)."""
    if isinstance(argv, str) or not isinstance(argv, list | tuple):
        raise LabError(f"spawn in {node}: give argv as a list, e.g. ['sleep', '10'], not {argv!r}")
    return list(argv)


def log_dir(lab: Lab) -> Path:
    """Beside the lab's pcaps, or a temporary directory kept for the report."""
    if lab.artifacts is not None:
        path = lab.artifacts / "programs"
        path.mkdir(parents=True, exist_ok=True)
        return path
    return Path(tempfile.mkdtemp(prefix=f"vlab-{lab.name[:20]}-programs-"))


def start(
    switch: Switch, node: str, ns: NetNS, argv: list[str], launcher: Launcher = launch
) -> Program:
    """Start ``argv`` in ``ns`` (node ``node`` of ``switch``); it is killed when the lab closes."""
    n = len(switch.programs)
    base = os.path.basename(argv[0])[:30]
    log = log_dir(switch.lab) / f"{node}-{n}-{base}.log"
    try:
        wrapped = dying(argv)
        with open(log, "wb") as out:
            proc = launcher(ns, wrapped, out)
    except FileNotFoundError:
        raise LabError(f"cannot run {argv[0]!r} in {node}: not installed") from None
    except OSError as exc:
        what = f"cannot run {argv[0]!r} in {node}"
        raise limits.fd_limit_error(exc, what) or LabError(f"{what}: {exc.strerror}") from None
    program = Program(node, argv, proc, log)
    switch.programs.append(program)
    return program


def stop_all(switch: Switch) -> None:
    """At the lab's close: no program survives the namespaces it runs in."""
    while switch.programs:
        switch.programs.pop().kill()


def report(lab: Lab) -> str:
    """The programs of a lab and the last lines of their output, for a failure report."""
    parts = []
    for program in lab.programs():
        tail = "\n".join(program.output().splitlines()[-TAIL_LINES:])
        parts.append(f"program {program.describe()}, last lines:\n{tail}")
    return "\n\n".join(parts)
