"""``Popen.communicate(timeout=...)`` without its sleeps.

With a timeout, ``subprocess`` waits for a child by polling ``waitpid(WNOHANG)`` with sleeps of
0.5 ms and up, and a program's pipes reach EOF just before it can be reaped, so a quarter of
short runs paid a millisecond of sleep: more than the spawn itself. Here the pipes are read
until EOF and then a pidfd says when the child has exited; it is reaped at once.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import time
from typing import IO


def _decode(data: bytes, stream: IO[str] | None) -> str:
    """As ``subprocess`` does in text mode: the stream's encoding, universal newlines."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    errors = getattr(stream, "errors", None) or "strict"
    return data.decode(encoding, errors).replace("\r\n", "\n").replace("\r", "\n")


def _exited(proc: subprocess.Popen[str], deadline: float) -> bool:
    """Wait until ``proc`` (an unreaped child of ours) has exited, or ``deadline``."""
    if proc.poll() is not None:
        return True
    try:
        pidfd = os.pidfd_open(proc.pid)  # its pid cannot be reused before we reap it
    except OSError:  # no pidfd (out of fds, an old kernel): subprocess's own polling
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.0, deadline - time.monotonic()))
        return proc.returncode is not None
    try:
        poller = select.poll()  # not select(): fds above 1023 are fine (tests/lab/test_high_fds.py)
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(max(0.0, deadline - time.monotonic()) * 1e3))
    finally:
        os.close(pidfd)


def communicate(proc: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """Everything ``proc`` (started with text-mode pipes for stdout and stderr) wrote, once it
    has ended and been reaped; ``subprocess.TimeoutExpired`` after ``timeout`` seconds."""
    assert proc.stdout is not None and proc.stderr is not None
    deadline = time.monotonic() + timeout
    out, err = proc.stdout.fileno(), proc.stderr.fileno()
    chunks: dict[int, list[bytes]] = {out: [], err: []}
    poller = select.poll()
    for fd in chunks:
        poller.register(fd, select.POLLIN)
    reading = {out, err}
    while reading:
        left = deadline - time.monotonic()
        if left <= 0:
            raise subprocess.TimeoutExpired(proc.args, timeout)
        for fd, _ in poller.poll(left * 1e3):
            data = os.read(fd, 65536)
            if data:
                chunks[fd].append(data)
            else:
                reading.discard(fd)
                poller.unregister(fd)
    if not _exited(proc, deadline):
        raise subprocess.TimeoutExpired(proc.args, timeout)
    proc.wait()
    return _decode(b"".join(chunks[out]), proc.stdout), _decode(b"".join(chunks[err]), proc.stderr)
