"""The death-signal launcher, without the cost of a second program.

Every program vlab starts must die with vlab's process, SIGKILL included; only the kernel can
promise that, through ``PR_SET_PDEATHSIG`` set in the child between fork and exec. Python cannot
run code there without giving up ``vfork`` (the whole interpreter is then forked: ~10 ms a
program), so a launcher goes in front of the program: it sets the signal and execs the program.
``setpriv --pdeathsig KILL`` is such a launcher, but it is linked dynamically, so its exec costs
about what the program's does (~1.2 ms measured here): most of ``host.run("true")``.

This module's launcher is a static executable of under 300 bytes, built at first use into a sealed
memfd: no file on disk, nothing to clean up and nothing anyone else could replace. Its machine
code (x86-64, listed in :func:`x86_64_code`) does this::

    launcher PPID NSFD PATH ARGV0 ARGS...

    prctl(PR_SET_PDEATHSIG, SIGKILL)
    getppid() == PPID, or exit 127: the parent died between the fork and the prctl, so the
        signal would never come (this sees a parent process die, not a parent thread: the
        launcher is started only by threads that outlive it, the caller of ``run``, which
        waits for the program, and vlab's spawning thread)
    unless NSFD is "-": setns(NSFD, CLONE_NEWNET), close(NSFD)
    execve(PATH, [ARGV0, ARGS...], environ); on failure a line on stderr and exit 127

and costs ~0.07 ms. Entering the namespace itself, it lets ``run`` spawn from the caller's
thread with vfork: no thread of vlab changes namespace and no other thread is woken. It is
executed by its path in procfs (``/proc/<vlab's pid>/fd/<n>``), so its own fd needs no passing
to the child and stays close-on-exec. It is used only once proven on this machine (run once
with the right parent pid and once with a wrong one, before the first real use); anywhere else
(another architecture, memfd exec forbidden by ``vm.memfd_noexec`` or a security module)
:func:`launcher` says None and vlab falls back to setpriv.
"""

from __future__ import annotations

import errno
import fcntl
import os
import platform
import shutil
import struct
import subprocess
import threading

from vlab import limits

MFD_EXEC = 0x0010  # kernels >= 6.3 want executability asked for (vm.memfd_noexec)
EXEC_FAILED = b"vlab launcher: setns or execve failed\n"
_BASE = 0x400000
_HEADERS = 64 + 56  # ELF header and one program header

_lock = threading.Lock()
_state: dict[str, int | None] = {}  # "fd": the read-only memfd, or None when unusable


def x86_64_code() -> bytes:
    """The launcher's machine code for x86-64, assembled by hand (the listing is beside)."""
    out = bytearray()
    fixups: list[tuple[int, str, str]] = []  # (where, label, kind: rel8, rel32, rip)
    labels: dict[str, int] = {}

    def emit(hex_bytes: str) -> None:
        out.extend(bytes.fromhex(hex_bytes))

    def jump(opcode: str, label: str) -> None:
        fixups.append((len(out), label, "rel8"))
        emit(opcode + "00")

    emit("bf01000000")  # mov edi, 1             PR_SET_PDEATHSIG
    emit("be09000000")  # mov esi, 9             SIGKILL
    emit("b89d000000")  # mov eax, 157           prctl
    emit("0f05")  # syscall
    emit("488b742410")  # mov rsi, [rsp+16]      argv[1]: the parent's pid
    fixups.append((len(out), "number", "rel32"))
    emit("e800000000")  # call number            rbx = its value
    emit("b86e000000")  # mov eax, 110           getppid
    emit("0f05")  # syscall
    emit("4839d8")  # cmp rax, rbx
    jump("75", "orphan")  # jne orphan
    emit("488b742418")  # mov rsi, [rsp+24]      argv[2]: a namespace fd, or "-"
    emit("803e2d")  # cmp byte [rsi], '-'
    jump("74", "exec")  # je exec
    fixups.append((len(out), "number", "rel32"))
    emit("e800000000")  # call number            rbx = the fd
    emit("89df")  # mov edi, ebx
    emit("be00000040")  # mov esi, 0x40000000    CLONE_NEWNET
    emit("b834010000")  # mov eax, 308           setns
    emit("0f05")  # syscall
    emit("4885c0")  # test rax, rax
    jump("75", "failed")  # jnz failed
    emit("89df")  # mov edi, ebx
    emit("b803000000")  # mov eax, 3             close: the program does not get it
    emit("0f05")  # syscall
    labels["exec"] = len(out)
    emit("488b7c2420")  # mov rdi, [rsp+32]      argv[3]: the program's path
    emit("488d742428")  # lea rsi, [rsp+40]      &argv[4]: its argv
    emit("488b0c24")  # mov rcx, [rsp]           argc
    emit("488d54cc10")  # lea rdx, [rsp+rcx*8+16] envp
    emit("b83b000000")  # mov eax, 59            execve
    emit("0f05")  # syscall
    labels["failed"] = len(out)
    emit("b801000000")  # mov eax, 1             write
    emit("bf02000000")  # mov edi, 2             stderr
    fixups.append((len(out), "message", "rip"))
    emit("488d3500000000")  # lea rsi, [rip+message]
    emit(f"ba{len(EXEC_FAILED):02x}000000")  # mov edx, len(message)
    emit("0f05")  # syscall
    labels["orphan"] = len(out)
    emit("bf7f000000")  # mov edi, 127
    emit("b8e7000000")  # mov eax, 231           exit_group
    emit("0f05")  # syscall
    labels["number"] = len(out)  # rbx = the decimal number at rsi
    emit("31db")  # xor ebx, ebx
    labels["digit"] = len(out)
    emit("0fb606")  # movzx eax, byte [rsi]
    emit("84c0")  # test al, al
    jump("74", "done")  # jz done
    emit("83e830")  # sub eax, '0'
    emit("486bdb0a")  # imul rbx, rbx, 10
    emit("4801c3")  # add rbx, rax
    emit("48ffc6")  # inc rsi
    jump("eb", "digit")  # jmp digit
    labels["done"] = len(out)
    emit("c3")  # ret
    labels["message"] = len(out)
    out.extend(EXEC_FAILED)
    for at, label, kind in fixups:
        if kind == "rip":  # lea rsi, [rip+x]: from the end of its 7 bytes
            struct.pack_into("<i", out, at + 3, labels[label] - (at + 7))
        elif kind == "rel32":  # call: from the end of its 5 bytes
            struct.pack_into("<i", out, at + 1, labels[label] - (at + 5))
        else:
            rel = labels[label] - (at + 2)
            assert -128 <= rel < 128
            out[at + 1] = rel & 0xFF
    return bytes(out)


def elf(code: bytes, machine: int) -> bytes:
    """A static ELF executable: one read+execute segment holding the headers and ``code``."""
    size = _HEADERS + len(code)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little-endian, System V
    header = ident + struct.pack(
        "<HHIQQQIHHHHHH", 2, machine, 1, _BASE + _HEADERS, 64, 0, 0, 64, 56, 1, 0, 0, 0
    )
    segment = struct.pack("<IIQQQQQQ", 1, 5, 0, _BASE, _BASE, size, size, 0x1000)
    return header + segment + code


def _image() -> bytes | None:
    if platform.machine() in ("x86_64", "AMD64"):
        return elf(x86_64_code(), 0x3E)
    return None


def _memfd(image: bytes) -> int:
    """A sealed, read-only memfd holding ``image``."""
    flags = os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING
    try:
        fd = os.memfd_create("vlab-launcher", flags | MFD_EXEC)
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # a kernel before MFD_EXEC
            raise
        fd = os.memfd_create("vlab-launcher", flags)
    try:
        os.write(fd, image)
        seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
        # a file open for writing cannot be executed (ETXTBSY): keep a read-only fd only
        return os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(fd)


def _proven(path: str) -> bool:
    """Whether the launcher runs a program here, and refuses a parent that is not its own."""
    true = shutil.which("true")
    if true is None:
        return False
    try:
        ok = subprocess.run([path, str(os.getpid()), "-", true, "true"], capture_output=True)
        orphan = subprocess.run([path, "0", "-", true, "true"], capture_output=True)
    except OSError as exc:
        if exc.errno in limits.FD_ERRNOS:  # proves nothing about the launcher
            raise
        return False
    return ok.returncode == 0 and orphan.returncode == 127


def _build() -> int | None:
    """The launcher's fd; None if it cannot work here. Out of fds is the caller's error (it
    names the limit), not a reason to give up the launcher for good."""
    image = _image()
    if image is None:
        return None
    try:
        fd = _memfd(image)
    except OSError as exc:
        if exc.errno in limits.FD_ERRNOS:
            raise
        return None
    try:
        proven = _proven(f"/proc/{os.getpid()}/fd/{fd}")
    except BaseException:
        os.close(fd)
        raise
    if proven:
        return fd
    os.close(fd)
    return None


def launcher() -> str | None:
    """The launcher's path for a child of this process, or None where it cannot be used."""
    with _lock:
        if "fd" not in _state:
            _state["fd"] = _build()
        fd = _state["fd"]
    return None if fd is None else f"/proc/{os.getpid()}/fd/{fd}"


def held_fds() -> set[int]:
    """The launcher's one long-lived fd (once built): not a leak of any lab."""
    fd = _state.get("fd")
    return set() if fd is None else {fd}


def argv(path: str, program: list[str], ns_fd: int | None = None) -> list[str] | None:
    """``program`` (found at ``path``) behind the launcher, or None without one; with
    ``ns_fd`` (to be passed to the child) the launcher enters that network namespace first and
    closes the fd, so the caller's thread spawns it with vfork without changing namespace."""
    where = launcher()
    if where is None:
        return None
    ns = "-" if ns_fd is None else str(ns_fd)
    return [where, str(os.getpid()), ns, path, *program]
