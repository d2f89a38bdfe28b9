"""The guest's boot files: a distribution kernel and a busybox initramfs, built once and cached.

A real guest needs a kernel and a root filesystem. Shipping binaries is not an option, so the image
is assembled from three Debian packages that are already on the machine (``linux-image-cloud-amd64``
for the kernel and its virtio modules, ``busybox-static`` for userland). Building takes about a
second; the result is cached under the user cache directory, keyed by a hash of every input, so a
kernel or busybox upgrade (or a change to the init script below) makes a fresh image instead of
silently reusing a stale one. pytest-xdist workers may race to build the same key: a file lock
serialises them and the image appears by an atomic rename, so nobody ever boots a half-written one.

The cache decides what a guest boots, so it is trusted only if nobody else could have written it:
root under ``sudo -E`` keeps the user's HOME, and must not boot an image that user planted in
``~/.cache``. Every component of the cache's path must belong to this user or root and be
writable by nobody else (sticky /tmp excepted), the image's files too, and the lock is opened
without following symlinks (see :mod:`vlab.paths`).

Boot time is dominated by the emulated CPU, so the image is shaped for TCG: an uncompressed cpio
(nothing to inflate in the guest) and, where the kernel supports PVH, the decompressed ELF kernel
(qemu jumps straight into it, skipping the bzImage real-mode setup and self-decompression).
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import stat
import struct
import subprocess
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from vlab.errors import LabError
from vlab.paths import check_trusted, check_trusted_file, read_regular

#: Debian packages that provide everything a guest needs.
PACKAGES = ("qemu-system-x86", "linux-image-cloud-amd64", "busybox-static")
INSTALL_COMMAND = "apt-get install -y " + " ".join(PACKAGES)

#: virtio-net and its dependencies, in load order (busybox insmod does not resolve dependencies).
MODULES = (
    "virtio_ring",
    "virtio",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "virtio_pci",
    "failover",
    "net_failover",
    "virtio_net",
)

#: Bumped whenever the layout of a built image changes, so old cache entries are not reused.
IMAGE_FORMAT = 1

#: The guest serial port the command agent listens on. ttyS0 is the kernel console (the boot
#: log); keeping commands on a second UART means kernel messages can never interleave with them.
AGENT_TTY = "ttyS1"
READY_BANNER = b"@@vlab:ready\n"

#: PID 1 of the guest. The guest is quiet on the wire unless a test asks otherwise (no IPv6, so no
#: DAD/router solicitations/MLD; no IPv4 address, so no IGMP), like the rest of a lab. The agent
#: reads one request per line, ``<id> <timeout-seconds> <base64 command>``, and answers
#: ``@@vlab:<id>:begin:<byte count>``, exactly that many bytes of combined stdout/stderr, then
#: ``@@vlab:<id>:end:<exit status>``: the byte count makes the framing exact whatever the command
#: prints (even while a process it left in the background still appends to its output), and
#: base64 spares the host any shell quoting. Each request gets its own output file, so
#: a process a command left running in the background cannot write into a later command's reply.
#:
#: The agent is PID 1's child, and PID 1 only reaps. A process a command leaves behind (busybox
#: ``timeout``'s own watcher, which outlives every command by up to a second, or anything a
#: command put in the background) is re-parented to PID 1 when its parent exits, and its exit
#: then sends PID 1 a SIGCHLD. ash's ``read`` gives up the part of a line it has read when a
#: signal interrupts its wait for the next byte, and starts over: an agent that was PID 1 took
#: the tail of a request for a whole one and never answered the real request. That happened
#: when the guest read a request faster than QEMU fed it in, i.e. on a loaded host.
INIT_SCRIPT = f"""#!/bin/sh
export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6
echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6
echo 0 > /proc/sys/net/ipv4/igmp_link_local_mcast_reports
for m in {" ".join(MODULES)}; do
    insmod /lib/modules/$m.ko || echo "vlab-init: insmod $m failed"
done
ip link set lo up
ip link set eth0 up || echo "vlab-init: no eth0"
# Ready means usable: eth0 drops what it sends until it has carrier and a real qdisc. (Waiting
# for operstate "up" instead would cost ~1 s: the link watcher batches events a second apart.)
n=0
until [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" = 1 ] && ! tc qdisc show dev eth0 |
    grep -q noop || [ $n -ge 500 ]; do
    usleep 10000; n=$((n + 1))
done
cd /root
agent() {{
    exec </dev/{AGENT_TTY} >/dev/{AGENT_TTY}
    stty raw -echo
    printf '{READY_BANNER.decode().strip()}\\n'
    while read -r id t cmd; do
        c=/tmp/.vlab-$id.sh o=/tmp/.vlab-$id.out
        echo "$cmd" | base64 -d > $c
        timeout -s KILL "$t" sh $c </dev/null >$o 2>&1
        rc=$?
        n=$(wc -c <$o)
        echo "@@vlab:$id:begin:$n"
        head -c $n $o
        rm -f $c $o
        echo "@@vlab:$id:end:$rc"
    done
    echo "vlab-init: command channel closed" >/dev/console
}}
# PID 1 only reaps (see INIT_SCRIPT in vlab/guest_image.py)
agent &
pid=$!
while kill -0 $pid 2>/dev/null; do wait $pid; done
"""


class GuestError(LabError):
    """A guest could not be built, booted or driven; the message carries what the guest said."""


@dataclass(frozen=True)
class GuestInputs:
    """Host files a guest image is made from."""

    kernel: Path
    release: str
    modules: tuple[Path, ...]
    busybox: Path

    def files(self) -> tuple[Path, ...]:
        return (self.kernel, *self.modules, self.busybox)


@dataclass(frozen=True)
class GuestImage:
    """A built image: what qemu gets as ``-kernel`` and ``-initrd``."""

    directory: Path
    kernel: Path
    initrd: Path
    release: str
    #: True when ``kernel`` is the decompressed ELF (booted through PVH), False for the bzImage.
    pvh: bool


CACHE_FIX = (
    "use a cache only you (or root) can write: set XDG_CACHE_HOME to a directory of yours "
    "(under sudo, use -H rather than -E)"
)
#: The only file names a manifest may point at: never a path out of the image directory.
KERNEL_NAMES = ("vmlinux", "bzImage")
INITRD_NAMES = ("initrd.cpio",)


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/vlab/guest`` (``~/.cache/vlab/guest`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vlab" / "guest"


def _version_key(release: str) -> list[tuple[int, str]]:
    """Sort key that orders 6.1.0-9 before 6.1.0-10."""
    return [(int(p), "") if p.isdigit() else (-1, p) for p in re.split(r"(\d+)", release) if p]


def _module_index(moddir: Path) -> dict[str, Path]:
    """Module name -> file, from modules.dep (names use '_' where files may use '-')."""
    index: dict[str, Path] = {}
    dep = moddir / "modules.dep"
    lines = dep.read_text().splitlines() if dep.exists() else []
    for line in lines:
        rel = line.split(":", 1)[0]
        name = re.sub(r"\.ko(\.(xz|gz|zst))?$", "", os.path.basename(rel)).replace("-", "_")
        index[name] = moddir / rel
    return index


def _is_static_elf(path: Path) -> bool:
    """A dynamically linked busybox (the plain ``busybox`` package) cannot run in the initramfs."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            return False
        phoff, _, _, _, phentsize, phnum = struct.unpack_from("<QQIHHH", head, 0x20)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))


def _locate() -> tuple[GuestInputs | None, list[str]]:
    """The inputs if all are present, and what is missing otherwise."""
    problems: list[str] = []
    busybox = next(
        (Path(p) for p in ("/bin/busybox", "/usr/bin/busybox") if Path(p).exists()), None
    )
    if busybox is None or not _is_static_elf(busybox):
        problems.append("a statically linked busybox")
    candidates = sorted(
        Path("/boot").glob("vmlinuz-*-cloud-amd64"),
        key=lambda p: _version_key(p.name.removeprefix("vmlinuz-")),
        reverse=True,
    )
    for candidate in candidates:
        release = candidate.name.removeprefix("vmlinuz-")
        index = _module_index(Path("/lib/modules") / release)
        if all(m in index for m in MODULES) and os.access(candidate, os.R_OK):
            modules = tuple(index[m] for m in MODULES)
            if busybox is None or problems:
                return None, problems
            return GuestInputs(candidate, release, modules, busybox), []
    problems.append("a readable /boot/vmlinuz-*-cloud-amd64 with its virtio_net modules")
    return None, problems


def missing_inputs() -> list[str]:
    """What the host lacks to build a guest image (empty when nothing is missing)."""
    return _locate()[1]


def find_inputs() -> GuestInputs:
    """Locate kernel, modules and busybox, or say which packages to install."""
    inputs, problems = _locate()
    if inputs is None:
        raise GuestError(f"QEMU guests need {' and '.join(problems)}: {INSTALL_COMMAND}")
    return inputs


def image_key(inputs: GuestInputs) -> str:
    """Hash of everything that shapes the image; file identity is (path, size, mtime, inode)."""
    h = hashlib.sha256()
    h.update(f"format={IMAGE_FORMAT}\nrelease={inputs.release}\n".encode())
    for path in inputs.files():
        st = path.stat()
        h.update(f"{path}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}\n".encode())
    h.update(INIT_SCRIPT.encode())
    return h.hexdigest()[:24]


# -- initramfs -------------------------------------------------------------------------------


def cpio_newc(entries: Iterable[tuple[str, int, bytes, tuple[int, int]]]) -> bytes:
    """A cpio "newc" archive (what the kernel unpacks as initramfs) from (name, mode, data, rdev).

    Written here rather than with the ``cpio`` tool to need nothing beyond the three packages.
    """
    out = bytearray()

    def pad() -> None:
        out.extend(b"\0" * (-len(out) % 4))

    ino = 1
    for name, mode, data, (major, minor) in [*entries, ("TRAILER!!!", 0, b"", (0, 0))]:
        encoded = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, major, minor, len(encoded), 0)
        out.extend(b"070701" + "".join(f"{v:08X}" for v in fields).encode())
        out.extend(encoded)
        pad()
        out.extend(data)
        pad()
        ino += 1
    out.extend(b"\0" * (-len(out) % 512))
    return bytes(out)


def _read_module(path: Path) -> bytes:
    """Module bytes, decompressed: busybox insmod hands the file to the kernel as is."""
    raw = path.read_bytes()
    if path.suffix == ".xz":
        return lzma.decompress(raw)
    if path.suffix == ".gz":
        return gzip.decompress(raw)
    if path.suffix == ".zst":
        zstd = shutil.which("zstd")
        if zstd is None:
            raise GuestError(f"{path} is zstd-compressed: apt-get install -y zstd")
        return subprocess.run([zstd, "-dc", str(path)], capture_output=True, check=True).stdout
    return raw


def _applets(busybox: Path) -> list[str]:
    """Paths (bin/sh, sbin/ip, ...) of every applet this busybox was built with."""
    done = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True, timeout=30)
    return [p for p in done.stdout.split() if p and not p.startswith("/")]


def build_initramfs(inputs: GuestInputs) -> bytes:
    """Uncompressed initramfs: busybox and its applet links, the virtio modules, /init."""
    d, f, link = stat.S_IFDIR | 0o755, stat.S_IFREG, stat.S_IFLNK | 0o777
    entries: list[tuple[str, int, bytes, tuple[int, int]]] = []
    dirs = ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "root")
    entries += [(name, d, b"", (0, 0)) for name in (*dirs, "etc", "lib", "lib/modules")]
    entries.append(("dev/console", stat.S_IFCHR | 0o600, b"", (5, 1)))
    entries.append(("bin/busybox", f | 0o755, inputs.busybox.read_bytes(), (0, 0)))
    for applet in _applets(inputs.busybox):
        if applet != "bin/busybox" and applet.split("/", 1)[0] in ("bin", "sbin", "usr"):
            entries.append((applet, link, b"/bin/busybox", (0, 0)))
    for name, path in zip(MODULES, inputs.modules, strict=True):
        entries.append((f"lib/modules/{name}.ko", f | 0o644, _read_module(path), (0, 0)))
    entries.append(("init", f | 0o755, INIT_SCRIPT.encode(), (0, 0)))
    return cpio_newc(entries)


# -- kernel ----------------------------------------------------------------------------------


def _lz4_block(src: memoryview, out: bytearray) -> None:
    """Decode one raw LZ4 block (the kernel's default compression on Debian cloud kernels)."""
    i, n = 0, len(src)
    while i < n:
        token = src[i]
        i += 1
        literals = token >> 4
        if literals == 15:
            while True:
                b = src[i]
                i += 1
                literals += b
                if b != 255:
                    break
        out += src[i : i + literals]
        i += literals
        if i >= n:
            break
        offset = src[i] | (src[i + 1] << 8)
        i += 2
        length = token & 15
        if length == 15:
            while True:
                b = src[i]
                i += 1
                length += b
                if b != 255:
                    break
        length += 4
        start = len(out) - offset
        if offset <= 0 or start < 0:
            raise ValueError("corrupt lz4 block")
        if offset >= length:
            out += out[start : start + length]
        else:
            chunk = out[start:]
            whole, rest = divmod(length, offset)
            out += chunk * whole + chunk[:rest]


def _lz4_legacy(data: bytes) -> bytes:
    """Decode the LZ4 "legacy" frame format the kernel build uses (``lz4 -l``)."""
    view, out, i = memoryview(data), bytearray(), 4
    while i + 4 <= len(data):
        (size,) = struct.unpack_from("<I", data, i)
        i += 4
        if size == 0x184C2102:  # a new frame's magic
            continue
        if i + size > len(data):  # the trailing uncompressed-size field
            break
        _lz4_block(view[i : i + size], out)
        i += size
    return bytes(out)


def _has_pvh_note(elf: bytes) -> bool:
    """True if the ELF kernel has XEN_ELFNOTE_PHYS32_ENTRY, which qemu needs to boot it directly."""
    if elf[:5] != b"\x7fELF\x02":
        return False
    phoff, _, _, _, phentsize, phnum = struct.unpack_from("<QQIHHH", elf, 0x20)
    for k in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", elf, phoff + k * phentsize
        )
        if p_type != 4:  # PT_NOTE
            continue
        i, end = p_offset, p_offset + p_filesz
        while i + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, i)
            name = elf[i + 12 : i + 12 + namesz]
            if name == b"Xen\0" and ntype == 18:
                return True
            i += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def pvh_kernel(bzimage: bytes) -> bytes | None:
    """The decompressed ELF inside a bzImage if qemu can PVH-boot it, else None (use the bzImage).

    Saves ~0.2 s per boot under TCG. Formats Python can decode: lz4 (Debian's), gzip, xz.
    """
    if bzimage[0x202:0x206] != b"HdrS":
        return None
    setup_sects = bzimage[0x1F1] or 4
    payload_offset, payload_length = struct.unpack_from("<II", bzimage, 0x248)
    start = (setup_sects + 1) * 512 + payload_offset
    payload = bzimage[start : start + payload_length]
    try:
        if payload.startswith(b"\x02\x21\x4c\x18"):
            elf = _lz4_legacy(payload)
        elif payload.startswith(b"\x1f\x8b"):
            elf = zlib.decompressobj(wbits=31).decompress(payload)
        elif payload.startswith(b"\xfd7zXZ\x00"):
            elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
        else:
            return None
    except (ValueError, lzma.LZMAError, zlib.error, IndexError):
        return None
    return elf if _has_pvh_note(elf) else None


# -- cache -----------------------------------------------------------------------------------


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path``, which is never followed if it is a symlink."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as e:
        raise GuestError(f"cannot open the guest image lock {path}: {e.strerror}") from e
    try:
        check_trusted_file(path, "guest image lock", CACHE_FIX)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _load(directory: Path) -> GuestImage | None:
    """The complete image in ``directory``, None if there is none; refuses one not ours."""
    if not os.path.lexists(directory / "manifest.json"):
        return None
    check_trusted(directory, "guest image", CACHE_FIX)
    try:
        check_trusted_file(directory / "manifest.json", "guest image manifest", CACHE_FIX)
        manifest = json.loads(read_regular(directory / "manifest.json", 1 << 16, follow=False))
        if manifest["kernel"] not in KERNEL_NAMES or manifest["initrd"] not in INITRD_NAMES:
            return None
        image = GuestImage(
            directory=directory,
            kernel=directory / manifest["kernel"],
            initrd=directory / manifest["initrd"],
            release=manifest["release"],
            pvh=manifest["pvh"],
        )
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None
    if not (os.path.lexists(image.kernel) and os.path.lexists(image.initrd)):
        return None
    for part in (image.kernel, image.initrd):
        check_trusted_file(part, "guest image file", CACHE_FIX)
    return image


def _build(inputs: GuestInputs, directory: Path) -> None:
    bzimage = inputs.kernel.read_bytes()
    elf = pvh_kernel(bzimage)
    kernel_name = "vmlinux" if elf is not None else "bzImage"
    (directory / kernel_name).write_bytes(elf if elf is not None else bzimage)
    (directory / "initrd.cpio").write_bytes(build_initramfs(inputs))
    manifest = {
        "kernel": kernel_name,
        "initrd": "initrd.cpio",
        "release": inputs.release,
        "pvh": elf is not None,
        "inputs": [str(p) for p in inputs.files()],
    }
    # Written last: a directory with a manifest is complete.
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def ensure_image(cache: Path | None = None) -> GuestImage:
    """The cached image for the installed packages, building it first if needed."""
    inputs = find_inputs()
    root = cache if cache is not None else cache_root()
    check_trusted(root, "guest image cache", CACHE_FIX)
    key = image_key(inputs)
    final = root / key
    image = _load(final)
    if image is not None:
        return image
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GuestError(f"cannot create the guest image cache {root}: {e}") from e
    check_trusted(root, "guest image cache", CACHE_FIX)  # what was just made, or raced in
    with _locked(root / f"{key}.lock"):
        image = _load(final)  # another worker may have built it while we waited
        if image is not None:
            return image
        for stale in root.glob(f".{key}.*"):  # left by a build that was killed
            shutil.rmtree(stale, ignore_errors=True)
        shutil.rmtree(final, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{key}."))
        try:
            _build(inputs, tmp)
            tmp.chmod(0o755)  # mkdtemp's 0700 would hide the image from other users
            os.rename(tmp, final)
        except BaseException as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(e, OSError | subprocess.SubprocessError):
                raise GuestError(f"cannot build the guest image in {root}: {e}") from e
            raise
    image = _load(final)
    if image is None:
        raise GuestError(f"guest image at {final} is incomplete after building it")
    return image


# what the guest-kernel image builder (vlab.kernel.image) shares with this module
applets = _applets
is_static_elf = _is_static_elf
locked = _locked
read_module = _read_module
