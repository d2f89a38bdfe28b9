"""Which kernel to boot, what it needs, and the tiny initramfs that hands over to the host's root.

The guest does not get a root filesystem of its own: its initramfs loads the virtio, virtio-console
and virtio-fs drivers, mounts the host's ``/`` read-only over virtio-fs, puts tmpfs on the
directories a running system writes (``/run``, ``/dev/shm``; ``TMPDIR`` is ``/run/tmp``) and
the host's pytest temporary directory on top, writable (a second virtio-fs share, so pcaps and
artifacts a test writes in the guest land on the host beside the report), then
``switch_root``\\ s into it. The host's ``/tmp`` stays visible (read-only): test projects and
files made there by the host are where the tests expect them.
Everything else the guest runs is the host's own files: the same Python, venv, vlab and tests,
and the kernel's modules from ``/lib/modules/<release>``, which the guest's ``modprobe`` finds
there on demand (``switch_root`` moves the new root onto ``/``, so the kernel's own module loader
sees it too).

A kernel is checked before anything boots: a missing file, a file that is not a bzImage, or a
release whose ``/lib/modules`` lacks the drivers the guest cannot start without is a
:class:`vlab.LabError` naming the fix, in milliseconds, instead of a guest that hangs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vlab.errors import LabError
from vlab.guest_image import (
    applets,
    cache_root,
    cpio_newc,
    is_static_elf,
    locked,
    pvh_kernel,
    read_module,
)

#: The drivers the guest needs before it can see the host's root: they cannot come from there.
#: Their dependencies (from modules.dep) are added and everything is loaded in dependency order.
BOOT_MODULES = ("virtio_pci", "virtio_console", "virtiofs")
#: The virtio-fs tags the launcher exports and the initramfs mounts.
ROOT_TAG = "vlabroot"
WORK_TAG = "vlabwork"
#: Name of the virtio-serial port that carries the worker's stdin/stdout.
PORT_NAME = "vlab.stdio"
HELLO = b"@@vlab-kernel:hello\n"
#: Bumped whenever the initramfs layout changes.
FORMAT = 1
INSTALL_HINT = "apt-get install -y linux-image-cloud-amd64 busybox-static"


@dataclass(frozen=True)
class KernelImage:
    """A bootable kernel of the host: the bzImage, its release and its modules directory."""

    path: Path
    release: str
    moddir: Path
    #: Module files to insmod in the initramfs, in load order (built-in drivers are left out).
    boot_modules: tuple[Path, ...]


def bzimage_release(data: bytes) -> str | None:
    """The release string a bzImage carries in its setup header, or None if it is not one.

    The boot protocol puts ``HdrS`` at 0x202 and a pointer to the version string (``6.1.0-57-
    cloud-amd64 (debian-kernel@...) #1 SMP ...``) at 0x20e, relative to 0x200.
    """
    if len(data) < 0x210 or data[0x202:0x206] != b"HdrS":
        return None
    pointer = int.from_bytes(data[0x20E:0x210], "little")
    if not pointer:
        return None
    start = 0x200 + pointer
    text = data[start : start + 256].split(b"\0", 1)[0].decode(errors="replace")
    release = text.split(" ", 1)[0]
    return release or None


def _deps(moddir: Path) -> tuple[dict[str, tuple[str, list[str]]], set[str]]:
    """``{name: (relative path, [dependency names])}`` from modules.dep, and the built-in names."""

    def name_of(rel: str) -> str:
        base = re.sub(r"\.ko(\.(xz|gz|zst))?$", "", os.path.basename(rel))
        return base.replace("-", "_")

    table: dict[str, tuple[str, list[str]]] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        rel, _, rest = line.partition(":")
        table[name_of(rel)] = (rel, [name_of(d) for d in rest.split()])
    builtin_file = moddir / "modules.builtin"
    lines = builtin_file.read_text().splitlines() if builtin_file.exists() else []
    return table, {name_of(line) for line in lines if line}


def load_order(moddir: Path, wanted: tuple[str, ...] = BOOT_MODULES) -> tuple[Path, ...]:
    """The module files ``wanted`` needs, dependencies first (busybox insmod resolves nothing)."""
    table, builtin = _deps(moddir)
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order or name in builtin:
            return
        if name not in table:
            raise LabError(
                f"kernel modules in {moddir} have no {name} (neither a module nor built in): "
                "the guest cannot reach the host's root without virtio and virtio-fs; "
                f"use a kernel built with CONFIG_VIRTIO_PCI, CONFIG_VIRTIO_CONSOLE and "
                f"CONFIG_VIRTIO_FS, e.g. Debian's cloud kernel ({INSTALL_HINT})"
            )
        _, deps = table[name]
        # modules.dep lists the full closure, deepest last: load from the end
        for dep in reversed(deps):
            visit(dep)
        order.append(name)

    for name in wanted:
        visit(name)
    return tuple(moddir / table[name][0] for name in order)


def inspect_kernel(path: str | os.PathLike[str]) -> KernelImage:
    """Check that ``path`` is a kernel vlab can boot, or raise :class:`LabError` with the fix."""
    kernel = Path(path)
    found = sorted(str(p) for p in Path("/boot").glob("vmlinuz-*"))
    hint = f"pass a bzImage such as {found[0] if found else '/boot/vmlinuz-<release>'}, or 'host'"
    if not kernel.exists():
        also = f" (this machine has {', '.join(found)})" if found else f" ({INSTALL_HINT})"
        raise LabError(f"kernel {kernel} does not exist: {hint}{also}")
    try:
        with open(kernel, "rb") as f:
            head = f.read(0x10000)
    except OSError as exc:
        raise LabError(f"cannot read kernel {kernel}: {exc.strerror}: {hint}") from None
    release = bzimage_release(head)
    if release is None:
        raise LabError(f"{kernel} is not a Linux kernel (no bzImage boot header): {hint}")
    moddir = Path("/lib/modules") / release
    if not (moddir / "modules.dep").exists():
        raise LabError(
            f"kernel {kernel} is release {release}, but {moddir}/modules.dep does not exist: "
            f"install that kernel's modules (its linux-image package) or run depmod {release}"
        )
    return KernelImage(kernel, release, moddir, load_order(moddir))


def _init_script() -> str:
    """PID 1 of the initramfs: drivers, the host's root, writable overlays, switch_root."""
    return f"""#!/bin/sh
export PATH=/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() {{ echo "vlab-kernel: $*" >/dev/console; echo b >/proc/sysrq-trigger; sleep 5; }}
for m in /lib/modules/*.ko; do insmod "$m" || echo "vlab-kernel: insmod $m failed"; done
work=; python=; guest=
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        vlab.work=*) work="${{arg#vlab.work=}}" ;;
        vlab.python=*) python="${{arg#vlab.python=}}" ;;
        vlab.guest=*) guest="${{arg#vlab.guest=}}" ;;
    esac
done
mkdir -p /newroot
mount -t virtiofs -o ro {ROOT_TAG} /newroot || fail "cannot mount the host root over virtio-fs"
for d in run dev/shm; do mount -t tmpfs -o mode=1777 tmpfs /newroot/$d; done
mkdir -p /newroot/run/tmp && chmod 1777 /newroot/run/tmp
if [ -n "$work" ]; then
    mkdir -p "/newroot$work"
    mount -t virtiofs {WORK_TAG} "/newroot$work" || fail "cannot mount the work share $work"
fi
for p in /sys/class/virtio-ports/*; do
    [ "$(cat "$p/name" 2>/dev/null)" = {PORT_NAME} ] && port="/dev/${{p##*/}}"
done
[ -n "$port" ] || fail "no virtio-serial port named {PORT_NAME}"
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
mount --move /dev /newroot/dev
mkdir -p /newroot/dev/pts && mount -t devpts devpts /newroot/dev/pts
exec switch_root /newroot /bin/sh -c '
    modprobe -q tun; ip link set lo up
    "$0" -I -S "$1" "$2" </dev/null 2>/dev/console
    echo "vlab-kernel: worker exited with status $?" >/dev/console
    echo b >/proc/sysrq-trigger; sleep 5' "$python" "$guest" "$port"
"""


INIT_SCRIPT = _init_script()


def _busybox() -> Path:
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        path = Path(candidate)
        if path.exists() and is_static_elf(path):
            return path
    raise LabError(f"the guest's initramfs needs a statically linked busybox: {INSTALL_HINT}")


def build_initramfs(kernel: KernelImage, busybox: Path) -> bytes:
    """busybox and its applets, the boot modules (numbered: the glob loads them in order), /init."""
    d, f, link = stat.S_IFDIR | 0o755, stat.S_IFREG, stat.S_IFLNK | 0o777
    entries: list[tuple[str, int, bytes, tuple[int, int]]] = []
    dirs = ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "newroot")
    entries += [(name, d, b"", (0, 0)) for name in (*dirs, "lib", "lib/modules")]
    entries.append(("dev/console", stat.S_IFCHR | 0o600, b"", (5, 1)))
    entries.append(("bin/busybox", f | 0o755, busybox.read_bytes(), (0, 0)))
    for applet in applets(busybox):
        if applet != "bin/busybox" and applet.split("/", 1)[0] in ("bin", "sbin", "usr"):
            entries.append((applet, link, b"/bin/busybox", (0, 0)))
    for n, module in enumerate(kernel.boot_modules):
        name = f"lib/modules/{n:02d}-{module.name.split('.ko')[0]}.ko"
        entries.append((name, f | 0o644, read_module(module), (0, 0)))
    entries.append(("init", f | 0o755, INIT_SCRIPT.encode(), (0, 0)))
    return cpio_newc(entries)


@dataclass(frozen=True)
class BootFiles:
    """What QEMU gets: ``-kernel`` (the PVH ELF if possible, else the bzImage) and ``-initrd``."""

    kernel: Path
    initrd: Path
    release: str


def _key(kernel: KernelImage, busybox: Path) -> str:
    h = hashlib.sha256(f"format={FORMAT}\n{INIT_SCRIPT}".encode())
    for path in (kernel.path, busybox, *kernel.boot_modules):
        st = path.stat()
        h.update(f"{path}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}\n".encode())
    return h.hexdigest()[:24]


def ensure_boot_files(kernel: KernelImage, cache: Path | None = None) -> BootFiles:
    """The cached boot files for ``kernel``, built once (about a second) and shared by workers."""
    busybox = _busybox()
    root = cache if cache is not None else cache_root().parent / "kernel"
    final = root / _key(kernel, busybox)
    manifest = final / "manifest.json"
    if not manifest.exists():
        root.mkdir(parents=True, exist_ok=True)
        with locked(root / f"{final.name}.lock"):
            if not manifest.exists():
                tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{final.name}."))
                try:
                    data = kernel.path.read_bytes()
                    elf = pvh_kernel(data)
                    name = "vmlinux" if elf is not None else "bzImage"
                    (tmp / name).write_bytes(elf if elf is not None else data)
                    (tmp / "initrd.cpio").write_bytes(build_initramfs(kernel, busybox))
                    (tmp / "manifest.json").write_text(json.dumps({"kernel": name}) + "\n")
                    tmp.chmod(0o755)
                    shutil.rmtree(final, ignore_errors=True)
                    os.rename(tmp, final)
                except BaseException:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
    name = json.loads(manifest.read_text())["kernel"]
    return BootFiles(final / name, final / "initrd.cpio", kernel.release)
