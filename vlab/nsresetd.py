"""vlab's reset worker: a small process of its own that resets pooled namespaces (vlab.nsreset).

Why a process: a reset is mostly Python reading netlink dumps (a few milliseconds), and in the
lab's process every one of those milliseconds holds the interpreter lock, which the next lab's
build — the test's critical path — then waits for, syscall after syscall. In a process of its own
the reset runs beside the build, on another CPU where there is one.

The worker is started on the first reset, from one of the pool's threads (which live as long as
the process), as a fresh interpreter that imports only what a reset needs. It dies with the lab's
process (PR_SET_PDEATHSIG, see vlab.deathsig), SIGKILL included. Namespaces reach it as fds over
a socketpair (SCM_RIGHTS): it enters them only with its own thread, and only while it works on
them, so it never keeps a namespace alive. Requests and results are pickled: the two ends are the
same vlab. If the worker cannot be started or dies, :class:`Worker` says so (``None``) and the
pool resets in its own process instead, as before.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import struct
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

from vlab import nsreset

_HEADER = struct.Struct("=I")
MAX_FDS = 256  # a namespace, its event socket, up to 64 taps and 16 peers, with room


def _send(sock: socket.socket, obj: object, fds: list[int]) -> None:
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    data = _HEADER.pack(len(payload)) + payload
    sent = socket.send_fds(sock, [data[:65536]], fds) if fds else sock.send(data[:65536])
    if sent < len(data):
        sock.sendall(data[sent:])


def _recv(sock: socket.socket) -> tuple[object, list[int]] | None:
    """One message and the fds that came with it; None at the end of the stream."""
    data, fds, _flags, _addr = socket.recv_fds(sock, 65536, MAX_FDS)
    if not data:
        return None
    while len(data) < _HEADER.size:
        more = sock.recv(65536)
        if not more:
            return None
        data += more
    (length,) = _HEADER.unpack_from(data)
    while len(data) < _HEADER.size + length:
        more = sock.recv(max(65536, _HEADER.size + length - len(data)))
        if not more:
            return None
        data += more
    return pickle.loads(data[_HEADER.size :]), list(fds)


def _serve(sock: socket.socket) -> None:
    refs: nsreset.References | None = None
    owner = os.getppid()
    while True:
        got = _recv(sock)
        if got is None:
            return
        message, fds = got
        assert isinstance(message, tuple)
        kind: str = message[0]
        body: object = message[1]
        try:
            if kind == "ping":  # started early, before any reference exists (Pool.prestart)
                result: object = True
            elif kind == "refs":
                assert isinstance(body, nsreset.References)
                refs = body
                result = True
            else:
                assert refs is not None
                assert isinstance(body, nsreset.Request)
                req = body
                ns_fd, events_fd, rest = fds[0], fds[1], fds[2:]
                keep = dict(zip(req.keep, rest[: len(req.keep)], strict=True))
                parked = [
                    (pair, fd)
                    for (pair, _old), fd in zip(req.parked, rest[len(req.keep) :], strict=True)
                ]
                events = socket.socket(fileno=os.dup(events_fd))
                try:
                    result = nsreset.run(
                        refs, replace(req, keep=keep, parked=parked), ns_fd, events, owner
                    )
                finally:
                    events.close()
        except Exception as exc:  # the caller drops the namespace and says why
            result = nsreset.Result(problems=[f"reset failed in the worker: {exc!r}"])
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
        _send(sock, result, [])


NICE = 10  # background upkeep: the tests, and the QEMU guests they boot, come first


def main(fd: int) -> None:
    """The worker's loop, over the socket ``fd`` inherited from the lab's process, at a lower
    CPU priority: on a small machine a reset must not take the CPU from a TCG guest's vCPU or
    from the test it is resetting for."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, NICE)  # set at the fork too: see Worker._start
    with socket.socket(fileno=fd) as sock:
        _serve(sock)


class Worker:
    """The lab process's end: one worker, one reset at a time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.failed = False  # could not start: resets stay in-process from then on
        self.refs: nsreset.References | None = None

    def _start(self, refs: nsreset.References | None) -> bool:
        """Start the worker and wait until it answers: with ``refs``, or a ping."""
        from vlab.deathsig import child_setup

        dies_with_us = child_setup(os.getpid())

        def setup() -> None:  # the import too runs behind the tests (~80 ms of CPU)
            dies_with_us()
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, 0, NICE)

        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            root = str(Path(__file__).resolve().parents[1])
            code = (
                "import sys; sys.path.insert(0, sys.argv[1]); "
                "from vlab.nsresetd import main; main(int(sys.argv[2]))"
            )
            self.proc = subprocess.Popen(
                # -S: no site-packages (.pth files, editable finders): a reset needs only the
                # standard library and vlab, found at ``root`` (half the start-up, ~50 ms)
                [sys.executable, "-S", "-c", code, root, str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                preexec_fn=setup,  # once per process: a full fork is fine
            )
        except OSError:
            mine.close()
            return False
        finally:
            theirs.close()
        self.sock = mine
        self.refs = None
        _send(mine, ("ping", None) if refs is None else ("refs", refs), [])
        return _recv(mine) is not None

    def prestart(self) -> None:
        """Start the worker before any reference exists (they come with the first reset)."""
        with self.lock:
            if self.sock is None and not self.failed and not self._start(None):
                self.failed = True
                self.close()

    def warm(self, refs: nsreset.References) -> None:
        """Start the worker now, before the first reset waits for it."""
        with self.lock:
            self._ensure(refs)

    def _ensure(self, refs: nsreset.References) -> bool:
        """A running worker with ``refs`` (the lock held); False if none can start."""
        if self.failed:
            return False
        if self.sock is not None and self.refs is not refs:
            try:  # new references (the full ones, made on first need): the worker takes them
                _send(self.sock, ("refs", refs), [])
                taken = _recv(self.sock) is not None
            except OSError:
                taken = False
            if taken:
                self.refs = refs
            else:
                self.close()
        if self.sock is None:
            if not self._start(refs):
                self.failed = True
                self.close()
                return False
            self.refs = refs
        return True

    def run(
        self, refs: nsreset.References, req: nsreset.Request, ns_fd: int, events_fd: int
    ) -> nsreset.Result | None:
        """Reset in the worker; None if there is no worker (then reset in-process)."""
        with self.lock:
            if not self._ensure(refs):
                return None
            assert self.sock is not None
            fds = [ns_fd, events_fd, *req.keep.values(), *(fd for _pair, fd in req.parked)]
            try:
                _send(self.sock, ("reset", req), fds)
                got = _recv(self.sock)
            except OSError:
                got = None
            if got is None:  # the worker died: the next reset starts another
                self.close()
                return nsreset.Result(problems=["the reset worker died"])
            result, _fds = got
            assert isinstance(result, nsreset.Result)
            return result

    def close(self) -> None:
        self.refs = None  # a worker started next has none until it is sent them
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            with contextlib.suppress(OSError):
                self.proc.kill()
            self.proc.wait()
            self.proc = None
