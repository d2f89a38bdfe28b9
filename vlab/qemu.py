"""Real QEMU guests on a lab tap: the seed's VM, booted, with its own kernel driving frames.

libvirt's way of cabling a VM is to open the tap itself and hand QEMU the file descriptor
(``-netdev tap,fd=N``); vlab does the same, so the guest's virtio-net reads and writes the very tap
that is a port of the lab's bridge. The guest is a distribution kernel with a busybox initramfs
(see :mod:`vlab.guest_image`), emulated with TCG because nested KVM is not dependable on the
machines this runs on.

Two serial ports keep the guest scriptable without guessing: ttyS0 is the kernel console and goes
to the boot log file (attached to failing tests), ttyS1 carries only the command agent's framed
answers over a socketpair, so kernel messages can never corrupt a command's output.

Lifetime: QEMU must never outlive the test process, not even when that process is SIGKILLed. The
child sets PR_SET_PDEATHSIG(SIGKILL) before exec. That signal fires when the *thread* that forked
the child exits, so every guest is forked by its own waiter thread, which lives exactly as long as
that QEMU (it reaps it, so no zombie either). A thread per guest is also why a guest started from
a thread that has entered a lab namespace pins nothing beyond the guest's own life.
"""

from __future__ import annotations

import base64
import contextlib
import math
import os
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

from vlab import deathsig
from vlab.guest_image import (
    INSTALL_COMMAND,
    READY_BANNER,
    GuestError,
    GuestImage,
    ensure_image,
    missing_inputs,
)

__all__ = ["GuestError", "GuestResult", "QemuGuest", "qemu_unavailable"]

QEMU = "qemu-system-x86_64"
MEMORY_MB = 128

#: Kernel command line. ``quiet`` keeps the serial console (slow under TCG) short; the rest each
#: remove work the emulated CPU is slow at and a lab guest does not need: cryptomgr self-tests
#: (~0.25 s), ACPI table parsing and ACPI-routed PCI IRQs (~0.3 s; INTx via the MP table works),
#: MSI setup (which warns without ACPI). ``panic=-1`` with ``-no-reboot`` turns a guest panic
#: (e.g. /init failing) into QEMU exiting, which the host sees at once instead of a timeout.
KERNEL_CMDLINE = (
    "console=ttyS0",
    "quiet",
    "panic=-1",
    "cryptomgr.notests",
    "acpi=off",
    "pci=nomsi",
)

#: A request line (base64 command) must fit the guest tty's input buffer: the emulated UART has no
#: flow control, so a longer line could be silently truncated.
MAX_REQUEST = 3072
#: The guest's ``timeout`` works in whole seconds; allow for that, for the reply's transfer, and
#: for a TCG guest crawling on a loaded 2-core CI machine.
REPLY_GRACE = 10.0
#: SIGKILL from the guest's ``timeout``.
TIMED_OUT_STATUS = 137

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class GuestResult:
    """A command's exit status and its combined stdout/stderr, byte for byte (decoded as UTF-8)."""

    status: int
    output: str

    @property
    def ok(self) -> bool:
        """True when the command exited with status 0."""
        return self.status == 0


def qemu_unavailable() -> str | None:
    """None if guests can run here, else one line saying what is missing and how to install it."""
    missing = [] if shutil.which(QEMU) else [QEMU]
    missing += missing_inputs()
    if not missing:
        return None
    return f"QEMU guests need {' and '.join(missing)}: {INSTALL_COMMAND}"


def _kill(proc: subprocess.Popen[bytes], sock: socket.socket) -> None:
    """Last-resort cleanup of a guest nobody closed (garbage collection, interpreter exit)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    sock.close()


class _Timeout(Exception):
    pass


class _Closed(Exception):
    pass


class QemuGuest:
    """One running QEMU guest. Create with :meth:`start`; always :meth:`close` (the lab does)."""

    def __init__(
        self,
        name: str,
        proc: subprocess.Popen[bytes],
        waiter: threading.Thread,
        sock: socket.socket,
        boot_log_path: Path,
        image: GuestImage,
        started: float,
    ) -> None:
        self.name = name
        self.image = image
        self.boot_log_path = boot_log_path
        #: Seconds from spawning QEMU until the agent answered; None until :meth:`wait_ready` did.
        self.boot_time: float | None = None
        self._proc = proc
        self._waiter = waiter
        self._sock = sock
        self._started = started
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._ready = False
        self._broken: str | None = None
        self._closed = False
        self._token = secrets.token_hex(4)
        self._seq = 0
        self._finalizer = weakref.finalize(self, _kill, proc, sock)

    @classmethod
    def start(cls, *, name: str, tap_fd: int, mac: str, workdir: Path) -> QemuGuest:
        """Spawn QEMU on an open tap fd and return at once; the guest boots in the background.

        The tap must be IFF_TAP|IFF_NO_PI without a vnet header. The caller keeps its own copy of
        the fd open (the tap's carrier depends on it) and must not read from it: every frame read
        there is a frame the guest never sees.
        """
        if not _NAME.match(name):
            raise GuestError(f"guest name {name!r} must match {_NAME.pattern}")
        if not _MAC.match(mac.lower()):
            raise GuestError(f"guest MAC {mac!r} is not of the form 52:54:00:12:34:56")
        try:
            os.fstat(tap_fd)
        except OSError as e:
            raise GuestError(f"tap fd {tap_fd} for guest {name!r} is not open: {e}") from e
        qemu = shutil.which(QEMU)
        if qemu is None:
            raise GuestError(qemu_unavailable() or f"{QEMU} not found: {INSTALL_COMMAND}")
        image = ensure_image()  # says what to install if the kernel or busybox is missing
        workdir.mkdir(parents=True, exist_ok=True)
        log_path = workdir / f"{name}.boot.log"
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        host, guest = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        argv = [
            qemu,
            *("-name", f"vlab-{name},process=vlab-{name}"),
            *("-accel", "tcg", "-nodefaults", "-no-user-config", "-display", "none"),
            *("-no-reboot", "-machine", "pc", "-m", str(MEMORY_MB)),
            *("-kernel", str(image.kernel), "-initrd", str(image.initrd)),
            *("-append", " ".join(KERNEL_CMDLINE)),
            # The console shares the log file with QEMU's stderr; both append.
            *(
                "-chardev",
                f"file,id=console,path={log_path},append=on",
                "-serial",
                "chardev:console",
            ),
            *("-chardev", f"socket,id=agent,fd={guest.fileno()}", "-serial", "chardev:agent"),
            *("-netdev", f"tap,id=net0,fd={tap_fd}"),
            # romfile= : no iPXE option ROM to load (-kernel boots without it).
            *("-device", f"virtio-net-pci,netdev=net0,mac={mac.lower()},romfile="),
        ]
        spawned = threading.Event()
        outcome: list[subprocess.Popen[bytes] | BaseException] = []

        def wait_for_qemu() -> None:
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log_fd,
                    stderr=log_fd,
                    pass_fds=(tap_fd, guest.fileno()),
                    preexec_fn=deathsig.child_setup(os.getpid()),
                )
            except BaseException as e:  # handed to the starting thread
                outcome.append(e)
                spawned.set()
                return
            outcome.append(proc)
            spawned.set()
            proc.wait()

        started = time.monotonic()
        waiter = threading.Thread(target=wait_for_qemu, name=f"vlab-qemu-{name}", daemon=True)
        try:
            waiter.start()
            spawned.wait()
        finally:
            guest.close()
            os.close(log_fd)
        result = outcome[0]
        if isinstance(result, BaseException):
            host.close()
            raise GuestError(f"cannot start {QEMU} for guest {name!r}: {result}") from result
        return cls(name, result, waiter, host, log_path, image, started)

    # -- observation ---------------------------------------------------------------------------

    @property
    def boot_log(self) -> str:
        """Everything the guest printed on its console, plus QEMU's own messages."""
        try:
            return self.boot_log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def answering(self) -> bool:
        """Whether the guest has booted and its command channel still works (run() will answer)."""
        return self._ready and self._broken is None and not self._closed and self.returncode is None

    @property
    def pid(self) -> int:
        """The QEMU process's pid."""
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        """QEMU's exit status once it has exited, None while it runs."""
        return self._proc.poll()

    def tail(self, lines: int = 30) -> str:
        """The last ``lines`` of the boot log, indented, for an error message about the guest."""
        tail = self.boot_log.rstrip("\n").splitlines()[-lines:]
        body = "\n".join(f"  | {line}" for line in tail) or "  | (empty)"
        return f"\nlast lines of the boot log {self.boot_log_path}:\n{body}"

    def _exit_note(self) -> str:
        self._waiter.join(timeout=2.0)
        code = self._proc.poll()
        return "" if code is None else f" (qemu exited with status {code})"

    # -- the command channel ------------------------------------------------------------------

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Timeout
        self._sock.settimeout(remaining)
        try:
            chunk = self._sock.recv(65536)
        except TimeoutError:
            raise _Timeout from None
        except OSError:
            raise _Closed from None
        if not chunk:
            raise _Closed
        self._buf += chunk

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the guest's command agent is listening (at most ``timeout`` seconds)."""
        with self._lock:
            if self._ready:
                return
            self._check_usable()
            deadline = time.monotonic() + timeout
            try:
                while (at := self._buf.find(READY_BANNER)) < 0:
                    self._fill(deadline)
            except _Timeout:
                raise GuestError(
                    f"guest {self.name!r} did not become ready within {timeout:g}s" + self.tail()
                ) from None
            except _Closed:
                self._broken = f"guest {self.name!r} died while booting{self._exit_note()}"
                raise GuestError(self._broken + self.tail()) from None
            del self._buf[: at + len(READY_BANNER)]
            self._ready = True
            self.boot_time = time.monotonic() - self._started

    def run(self, cmd: str, timeout: float = 10.0) -> GuestResult:
        """Run ``cmd`` with the guest's /bin/sh; stdout and stderr come back combined.

        Exceeding ``timeout`` (rounded up to whole seconds: busybox ``timeout``) kills the command
        in the guest and raises :class:`GuestError` with what it printed so far.
        """
        if timeout <= 0:
            raise GuestError(f"run() timeout must be positive, not {timeout!r}")
        self.wait_ready()
        payload = base64.b64encode(cmd.encode()).decode()
        if len(payload) > MAX_REQUEST:
            raise GuestError(
                f"command for guest {self.name!r} is {len(cmd.encode())} bytes; the serial agent "
                f"takes at most {MAX_REQUEST * 3 // 4}: split it into several run() calls"
            )
        seconds = max(1, math.ceil(timeout))
        with self._lock:
            self._check_usable()
            self._seq += 1
            rid = f"{self._token}.{self._seq}".encode()
            begin = re.compile(rb"@@vlab:" + re.escape(rid) + rb":begin:\s*(\d+)\n")
            closing = b"@@vlab:" + rid + b":end:"
            end = re.compile(re.escape(closing) + rb"(\d+)\n")
            started = time.monotonic()
            deadline = started + seconds + REPLY_GRACE
            try:
                self._sock.sendall(b"%s %d %s\n" % (rid, seconds, payload.encode()))
                while (head := begin.search(self._buf)) is None:
                    self._fill(deadline)
                size, body = int(head.group(1)), head.end()
                while (tail := end.match(self._buf, body + size)) is None:
                    after = bytes(self._buf[body + size : body + size + len(closing)])
                    if not closing.startswith(after):
                        raise GuestError(f"guest {self.name!r}: garbled reply to {cmd!r}")
                    self._fill(deadline)
            except _Timeout:
                self._broken = f"guest {self.name!r} stopped answering (during {cmd!r})"
                raise GuestError(
                    f"guest {self.name!r} did not answer {cmd!r} within {seconds + REPLY_GRACE:g}s"
                    + self.tail()
                ) from None
            except (_Closed, BrokenPipeError, ConnectionResetError):
                self._broken = f"guest {self.name!r} died{self._exit_note()}"
                raise GuestError(f"{self._broken} while running {cmd!r}" + self.tail()) from None
            output = bytes(self._buf[body : body + size]).decode("utf-8", errors="replace")
            status = int(tail.group(1))
            del self._buf[: tail.end()]
        if status == TIMED_OUT_STATUS and time.monotonic() - started >= seconds:
            raise GuestError(
                f"command {cmd!r} in guest {self.name!r} timed out after {seconds}s and was "
                f"killed; its output so far:\n{output}"
            )
        return GuestResult(status=status, output=output)

    def _check_usable(self) -> None:
        if self._closed:
            raise GuestError(f"guest {self.name!r} is closed")
        if self._broken is not None:
            raise GuestError(self._broken + self.tail())

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Kill QEMU and reap it. Idempotent; takes milliseconds (nothing in the guest to save)."""
        if self._closed:
            return
        self._closed = True
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
        self._waiter.join(timeout=10.0)
        self._proc.wait(timeout=10.0)
        self._sock.close()
        self._finalizer.detach()

    def __enter__(self) -> QemuGuest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "ready" if self._ready else "booting"
        return f"<QemuGuest {self.name} pid={self._proc.pid} {state}>"
