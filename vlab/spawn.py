"""Running programs inside lab namespaces at the cost of a plain spawn.

A child process inherits the network namespace of the *thread* that forks it. The obvious way
to start a program in a lab namespace — ``preexec_fn=lambda: setns(fd)`` — makes Python give up
``vfork``: it has to fork the whole (large) interpreter to run Python code in the child, which
costs ~10 ms a call. Here one daemon thread does nothing but spawn: it enters the target
namespace with ``setns`` and starts the program with ``vfork``/``exec``, so the program starts in
the namespace and the caller pays about what ``subprocess.run`` costs outside any namespace.

The spawning thread is not the caller's: the caller's thread never changes namespace, so neither
a signal handler running in the main thread nor an interrupt can open a socket in a lab by
accident. Between requests the thread is back in the namespace it started in: a thread parked
in a lab namespace would keep that namespace alive after the lab closed (and the host check
would rightly call it a leaked ``setns``).

Where vlab's own death-signal launcher runs (:mod:`vlab.dyingexec`), :func:`run` needs no
thread at all: the caller's thread spawns the launcher with vfork, passing it the namespace fd,
and the launcher enters the namespace before it execs the program (no thread of vlab changes
namespace, and no other thread has to be woken: that hop cost more than the spawn on a loaded
machine). Background programs (``host.spawn``) still start from the spawning thread
(:func:`background`): a program's death signal is tied to the thread that forked it, and this
one lives as long as the process.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar

from vlab import dyingexec, limits
from vlab.communicate import communicate
from vlab.errors import LabError
from vlab.netns import NetNS, setns

_P = TypeVar("_P", bound="subprocess.Popen[Any]")


@dataclass
class _Request:
    fd: int
    start: Callable[[], subprocess.Popen[Any]]
    done: threading.Event = field(default_factory=threading.Event)
    proc: subprocess.Popen[Any] | None = None
    error: BaseException | None = None


_requests: queue.SimpleQueue[_Request] = queue.SimpleQueue()
_thread: threading.Thread | None = None
_lock = threading.Lock()


ANSWER_TIMEOUT = 30.0  # the spawning thread answers in microseconds; never wait forever


def _serve(home: int) -> None:
    """Serve requests until the thread cannot get home again (then it ends, leaving nothing:
    a thread parked in a lab namespace would hold it)."""
    while True:
        req = _requests.get()
        stranded = False
        try:
            setns(req.fd)
            try:
                req.proc = req.start()
            finally:
                try:
                    setns(home)
                except OSError:
                    stranded = True
        except BaseException as exc:  # handed to the caller, who raises it
            req.error = exc
        finally:
            req.done.set()
        if stranded:
            os.close(home)
            return


def _ensure_thread() -> None:
    """Start the spawning thread if it is not running.

    Its way home is opened here, in the caller's thread: out of fds, that open fails for the
    caller (a LabError naming the limit) instead of killing the thread before it serves.
    """
    global _thread
    with _lock:
        if _thread is None or not _thread.is_alive():
            home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            _thread = threading.Thread(target=_serve, args=(home,), name="vlab-spawn", daemon=True)
            _thread.start()


def _started(ns: NetNS, argv: list[str], start: Callable[[], _P]) -> _P:
    """``start()`` run by the spawning thread while it is inside ``ns``."""
    if ns.fd < 0:
        raise LabError(f"cannot run {argv[0]!r} in {ns.name}: its lab is closed")
    _ensure_thread()
    req = _Request(ns.fd, start)
    _requests.put(req)
    if not req.done.wait(ANSWER_TIMEOUT):
        raise LabError(
            f"cannot run {argv[0]!r} in {ns.name}: vlab's spawning thread did not answer within "
            f"{ANSWER_TIMEOUT:g} s"
        )
    if req.error is not None:
        raise req.error
    assert req.proc is not None
    return req.proc  # type: ignore[return-value]


def popen(ns: NetNS, argv: list[str]) -> subprocess.Popen[str]:
    """Start ``argv`` inside ``ns`` with stdout and stderr piped (text)."""
    return _started(
        ns,
        argv,
        lambda: subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
    )


def background(ns: NetNS, argv: list[str], out: IO[bytes]) -> subprocess.Popen[bytes]:
    """Start a background program (a :data:`vlab.programs.Launcher`): stdout and stderr to
    ``out``, stdin from /dev/null, a session of its own (a Ctrl-C meant for pytest is not also
    the program's).

    Started by the spawning thread with vfork, not forked from the caller with
    ``preexec_fn``: ~10 ms less, and the death signal is tied to a thread that lives as long as
    the process, not to the caller's (a program started from a short-lived thread outlives it).
    """
    return _started(
        ns,
        argv,
        lambda: subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
    )


def _start(
    ns: NetNS, argv: list[str], wrap: Callable[[list[str]], list[str]] | None
) -> subprocess.Popen[str]:
    """With a death signal asked for (``wrap``) and vlab's launcher at hand, the caller's thread
    spawns it (vfork) and the launcher enters ``ns``; otherwise the spawning thread does, with
    ``wrap`` in front of the program."""
    if wrap is not None:
        if ns.fd < 0:
            raise LabError(f"cannot run {argv[0]!r} in {ns.name}: its lab is closed")
        path = shutil.which(argv[0])
        if path is None:
            raise FileNotFoundError(2, "No such file or directory", argv[0])
        direct = dyingexec.argv(path, argv, ns.fd)
        if direct is not None:
            return subprocess.Popen(
                direct, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, pass_fds=(ns.fd,)
            )
    return popen(ns, wrap(argv) if wrap is not None else argv)


def run(
    ns: NetNS,
    argv: list[str],
    check: bool,
    timeout: float,
    wrap: Callable[[list[str]], list[str]] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run`` in ``ns``: output captured as text, every failure a ``LabError``.

    ``wrap`` asks for the death signal: vlab's launcher (:mod:`vlab.dyingexec`) where it runs,
    else ``wrap`` put in front of the program (vlab's setpriv wrapper). Errors and the result
    still name the program as the caller gave it.
    """
    if not argv:
        raise LabError(f"nothing to run in {ns.name}: give a program and its arguments")
    try:
        proc = _start(ns, argv, wrap)
    except FileNotFoundError:
        raise LabError(f"cannot run {argv[0]!r} in {ns.name}: not installed") from None
    except OSError as exc:
        problem = limits.fd_limit_error(exc, f"cannot run {argv[0]!r} in {ns.name}")
        raise problem or LabError(f"cannot run {argv[0]!r} in {ns.name}: {exc.strerror}") from None
    with proc:
        try:
            stdout, stderr = communicate(proc, timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise LabError(
                f"{' '.join(argv)} in {ns.name} did not finish within {timeout:g} s"
            ) from None
        except BaseException:  # Ctrl-C: the program must not outlive the call
            proc.kill()
            proc.wait()
            raise
    if check and proc.returncode:
        raise LabError(
            f"{' '.join(argv)} failed in {ns.name} (exit {proc.returncode}): {stderr.strip()}"
        )
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)
