"""Guest side of a kernel-under-test worker: become the host's worker process, then exec it.

Started by the initramfs (``python -I -S .../vlab/kernel/guest.py /dev/vportNpM``) once the
host's root is mounted: a script on the standard library only, because under TCG every import
counts (importing the ``vlab`` package here would cost seconds, only to be thrown away by the
exec). It says hello on the port, reads one JSON line from the launcher (the argv, working
directory and environment the host gave the launcher), puts the port on stdin/stdout and execs
that argv, so execnet's bootstrap runs in the guest exactly as it would on the host.
"""

from __future__ import annotations

import json
import os
import sys

HELLO = b"@@vlab-kernel:hello\n"  # vlab.kernel.image.HELLO


def _read_line(fd: int) -> bytes:
    """One line, read byte by byte: nothing past it may be consumed (it belongs to the worker)."""
    line = bytearray()
    while not line.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            raise SystemExit("vlab-kernel: the host closed the port before sending the command")
        line += chunk
    return bytes(line)


def main(argv: list[str]) -> None:
    port = os.open(argv[1], os.O_RDWR)
    os.write(port, HELLO)
    request = json.loads(_read_line(port))
    os.dup2(port, 0)
    os.dup2(port, 1)
    os.close(port)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ["TMPDIR"] = "/run/tmp"  # a tmpfs: the host's /tmp is read-only in the guest
    os.environ["VLAB_KERNEL_GUEST"] = "1"  # for tests that must not boot guests from a guest
    if not os.access(".", os.W_OK):  # the host's root is read-only here: hypothesis' example
        os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", "/run/tmp/vlab-hypothesis")  # db too
    command = request["argv"]
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv)
