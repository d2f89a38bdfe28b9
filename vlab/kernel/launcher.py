"""Host side of a kernel-under-test worker: a "python" that is really a Python inside a guest.

execnet starts a ``popen`` gateway as ``<python> -u -c <bootstrap>`` and speaks its protocol over
the child's stdin/stdout. ``--vlab-kernel`` makes that ``<python>`` this module::

    python -m vlab.kernel.launcher --kernel /boot/vmlinuz-X [--work DIR] -- -u -c <bootstrap>

which boots the kernel under QEMU (TCG) with the host's root shared over virtio-fs, waits for the
guest side (:mod:`vlab.kernel.guest`) to say hello on a virtio-serial port, sends it the argv,
working directory and environment, and from then on copies bytes both ways between its own
stdin/stdout and that port. To execnet and pytest-xdist it is an ordinary worker process.

Bounded and leak-proof: the guest must say hello within ``--timeout`` seconds (60 by default,
generous for TCG on a loaded machine) or the launcher prints the console's last lines and the fix
on stderr and exits; QEMU and the virtio-fs daemons get PR_SET_PDEATHSIG(SIGKILL) from this
process's main thread, and this process gets it from its parent, so a SIGKILLed pytest takes the
whole chain with it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from vlab import deathsig, scratch
from vlab.errors import LabError
from vlab.kernel.image import (
    HELLO,
    PORT_NAME,
    ROOT_TAG,
    WORK_TAG,
    BootFiles,
    ensure_boot_files,
    inspect_kernel,
)

QEMU = "qemu-system-x86_64"
VIRTIOFSD = "/usr/lib/qemu/virtiofsd"
#: Guest RAM. It must be a shared memfd: virtiofsd maps it to serve the guest's requests.
MEMORY_MB = 1024
BOOT_TIMEOUT = 60.0
#: Same reasoning as vlab.qemu.KERNEL_CMDLINE: less for the emulated CPU to do while booting.
CMDLINE = ("console=ttyS0", "quiet", "panic=-1", "cryptomgr.notests", "acpi=off", "pci=nomsi")


class BootError(LabError):
    """The guest did not come up; the message has the console's last lines and what to do."""


_VERDICT = re.compile(r"Kernel panic|BUG:|Oops|vlab-kernel:")


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, indented, for error messages.

    A panic's first line (the reason) is usually followed by a stack trace longer than the
    tail; lines saying what went wrong are kept in front of it.
    """
    try:
        text = path.read_text(errors="replace")
    except OSError:
        text = ""
    all_lines = text.rstrip("\n").splitlines()
    last = all_lines[-lines:]
    verdicts = [x for x in all_lines[:-lines] if _VERDICT.search(x)][-5:]
    shown = [*verdicts, "...", *last] if verdicts else last
    body = "\n".join(f"  | {line}" for line in shown)
    return f"last lines of the guest console {path}:\n{body or '  | (empty)'}"


def unavailable() -> str | None:
    """Why this machine cannot boot a kernel under test, or None."""
    if shutil.which(QEMU) is None:
        return f"{QEMU} is missing: apt-get install -y qemu-system-x86"
    if not os.access(VIRTIOFSD, os.X_OK):
        return f"{VIRTIOFSD} is missing: apt-get install -y qemu-system-common"
    if os.geteuid() != 0:
        return (
            "a kernel under test shares the host's root with the guest through virtiofsd, which "
            "must run as root: run pytest as root (sudo), or use --vlab-kernel=host"
        )
    return None


class Guest:
    """virtiofsd x2 + QEMU for one worker; :meth:`close` kills all three (idempotent)."""

    def __init__(self, boot: BootFiles, work: Path | None, python: str, log: Path) -> None:
        problem = unavailable()
        if problem:
            raise BootError(problem)
        for value in (str(work or ""), python):
            if any(c.isspace() for c in value):
                raise BootError(f"{value!r}: paths on the guest's command line cannot hold spaces")
        self.boot = boot
        self.log = log
        self.procs: list[subprocess.Popen[bytes]] = []
        # in this process's scratch directory: if the launcher is SIGKILLed (its deathsig when
        # pytest dies), the next one to start reaps it instead of leaving sockets in /tmp
        self.runtime = scratch.make("kernel")
        self.started = time.monotonic()
        log.parent.mkdir(parents=True, exist_ok=True)
        log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        self.host, guest = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            shares = [(ROOT_TAG, Path("/"), "always")]
            if work is not None:
                shares.append((WORK_TAG, work, "auto"))
            fs_args: list[str] = []
            for tag, source, cache in shares:
                sock = self.runtime / f"{tag}.sock"
                self._spawn(
                    [
                        VIRTIOFSD,
                        f"--socket-path={sock}",
                        *("-o", f"source={source}", "-o", f"cache={cache}"),
                        *("-o", "log_level=err", "-o", "sandbox=chroot"),
                    ],
                    log_fd,
                )
                fs_args += ["-chardev", f"socket,id={tag},path={sock}"]
                fs_args += ["-device", f"vhost-user-fs-pci,chardev={tag},tag={tag}"]
            self._wait_sockets([self.runtime / f"{tag}.sock" for tag, _, _ in shares])
            script = Path(__file__).with_name("guest.py")
            append = [*CMDLINE, f"vlab.python={python}", f"vlab.guest={script}"]
            if work is not None:
                append.append(f"vlab.work={work}")
            mem = f"{MEMORY_MB}M"
            argv = [
                QEMU,
                *("-name", "vlab-kernel,process=vlab-kernel"),
                *("-accel", "tcg", "-nodefaults", "-no-user-config", "-display", "none"),
                *("-no-reboot", "-machine", "pc,memory-backend=mem", "-m", mem),
                *("-object", f"memory-backend-memfd,id=mem,size={mem},share=on"),
                *("-kernel", str(boot.kernel), "-initrd", str(boot.initrd)),
                *("-append", " ".join(append)),
                *("-chardev", f"file,id=console,path={log},append=on"),
                *("-serial", "chardev:console"),
                *fs_args,
                *("-device", "virtio-serial-pci,romfile="),
                *("-chardev", f"socket,id=stdio,fd={guest.fileno()}"),
                *("-device", f"virtserialport,chardev=stdio,name={PORT_NAME}"),
            ]
            self.qemu = self._spawn(argv, log_fd, (guest.fileno(),))
        except BaseException:
            self.close()
            raise
        finally:
            guest.close()
            os.close(log_fd)

    def _spawn(
        self, argv: list[str], log_fd: int, fds: tuple[int, ...] = ()
    ) -> subprocess.Popen[bytes]:
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                pass_fds=fds,
                preexec_fn=deathsig.child_setup(os.getpid()),
            )
        except OSError as exc:
            raise BootError(f"cannot start {argv[0]}: {exc.strerror}") from None
        self.procs.append(proc)
        return proc

    def _wait_sockets(self, paths: list[Path]) -> None:
        deadline = time.monotonic() + 10.0
        while not all(p.exists() for p in paths):
            if any(p.poll() is not None for p in self.procs) or time.monotonic() > deadline:
                raise BootError(f"virtiofsd did not start (needs root); {tail(self.log)}")
            time.sleep(0.005)

    def wait_hello(self, timeout: float) -> float:
        """Seconds until the guest's Python spoke; raises :class:`BootError` with the console."""
        deadline = self.started + timeout
        got = b""
        while not got.endswith(HELLO):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BootError(
                    f"guest kernel {self.boot.release} did not start Python within {timeout:g}s "
                    "(a kernel that hangs or lacks a driver; raise --vlab-kernel-timeout if the "
                    f"machine is only slow); {tail(self.log)}"
                )
            self.host.settimeout(min(remaining, 0.5))
            try:
                chunk = self.host.recv(1)
            except TimeoutError:
                continue
            if not chunk:
                self.qemu.wait()
                raise BootError(
                    f"guest kernel {self.boot.release} stopped while booting (qemu exit status "
                    f"{self.qemu.returncode}: a panic, or a kernel QEMU cannot boot); "
                    f"{tail(self.log)}"
                )
            got = (got + chunk)[-len(HELLO) :]
        self.host.settimeout(None)
        return time.monotonic() - self.started

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self.procs.clear()
        with contextlib.suppress(OSError):
            self.host.close()
        shutil.rmtree(self.runtime, ignore_errors=True)


def _pump_in(src: int, sock: socket.socket, ended: threading.Event) -> None:
    """stdin -> guest. EOF means the controller is done with this worker: nothing left to save."""
    try:
        while data := os.read(src, 65536):
            sock.sendall(data)
    except OSError:
        pass
    ended.set()
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)  # ends _pump_out, and with it the guest


def _pump_out(sock: socket.socket, dst: int) -> None:
    try:
        while data := sock.recv(65536):
            view = memoryview(data)
            while view:
                view = view[os.write(dst, view) :]
    except OSError:
        pass


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="python -m vlab.kernel.launcher", add_help=True)
    parser.add_argument("--kernel", required=True, help="bzImage to boot")
    parser.add_argument("--work", help="host directory the guest may write (pytest's basetemp)")
    parser.add_argument("--timeout", type=float, default=BOOT_TIMEOUT, help="boot deadline, s")
    parser.add_argument("--log-dir", help="for <pid>.console.log and <pid>.error (default: /tmp)")
    parser.add_argument(
        "--oneshot",
        action="store_true",
        help="run one program: stdin is not forwarded, the exit status is the guest program's",
    )
    return parser.parse_known_args(argv)


def main(argv: list[str] | None = None) -> int:
    parent = os.getppid()
    deathsig.die_with_parent()
    if os.getppid() != parent:
        return 1
    args, rest = parse(sys.argv[1:] if argv is None else argv)
    if rest[:1] == ["--"]:
        rest = rest[1:]
    work = Path(args.work).resolve() if args.work else None
    log_dir = Path(args.log_dir) if args.log_dir else Path(tempfile.gettempdir())
    log = log_dir / f"{os.getpid()}.console.log"
    guest: Guest | None = None
    booted = False
    try:
        boot = ensure_boot_files(inspect_kernel(args.kernel))
        guest = Guest(boot, work, sys.executable, log)
        guest.wait_hello(args.timeout)
        booted = True
        request = {"argv": [sys.executable, *rest], "cwd": os.getcwd(), "env": dict(os.environ)}
        guest.host.sendall(json.dumps(request).encode() + b"\n")
        ended = threading.Event()
        if args.oneshot:
            _pump_out(guest.host, 1)  # until the guest rebooted after its program ended
            guest.qemu.wait()
            found = re.findall(r"worker exited with status (\d+)", log.read_text(errors="replace"))
            if not found:
                raise BootError(f"the guest died before its program ended; {tail(log)}")
            return int(found[-1])
        feeder = threading.Thread(target=_pump_in, args=(0, guest.host, ended), daemon=True)
        feeder.start()
        _pump_out(guest.host, 1)
        if not ended.is_set():  # the guest went away while the controller still talked to it
            with contextlib.suppress(subprocess.TimeoutExpired):
                guest.qemu.wait(timeout=3)
            raise BootError(f"the guest kernel's worker ended early; {tail(log)}")
        return 0
    except LabError as exc:
        message = f"vlab: {exc}"
        if booted or not args.log_dir:  # boot failures: the pytest controller reports them
            print(message, file=sys.stderr)
        with contextlib.suppress(OSError):  # for the controller's error message
            log_dir.mkdir(parents=True, exist_ok=True)
            (log_dir / f"{os.getpid()}.error").write_text(message + "\n")
        return 3
    finally:
        if guest is not None:
            guest.close()


if __name__ == "__main__":
    sys.exit(main())
