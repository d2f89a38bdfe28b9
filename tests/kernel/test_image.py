"""Kernel checks and boot files of ``--vlab-kernel``: no guest boots here (no root needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kernel_helpers import guest_kernel

from vlab import LabError
from vlab.kernel.image import bzimage_release, inspect_kernel, load_order


def _moddir(tmp_path: Path, lines: list[str], builtin: tuple[str, ...] = ()) -> Path:
    (tmp_path / "modules.dep").write_text("\n".join(lines) + "\n")
    (tmp_path / "modules.builtin").write_text("".join(f"{b}\n" for b in builtin))
    return tmp_path


DEP = [
    "kernel/drivers/virtio/virtio_ring.ko:",
    "kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko",
    "kernel/drivers/virtio/virtio_pci_modern_dev.ko:",
    "kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko "
    "kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
    "kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio.ko "
    "kernel/drivers/virtio/virtio_ring.ko",
    "kernel/fs/fuse/fuse.ko:",
    "kernel/fs/fuse/virtiofs.ko: kernel/drivers/virtio/virtio.ko "
    "kernel/drivers/virtio/virtio_ring.ko kernel/fs/fuse/fuse.ko",
]


def test_boot_modules_load_dependencies_first(tmp_path: Path) -> None:
    names = [p.name for p in load_order(_moddir(tmp_path, DEP))]
    assert set(names) == {Path(line.split(":")[0]).name for line in DEP}
    for before, after in [
        ("virtio_ring.ko", "virtio.ko"),
        ("virtio.ko", "virtio_pci.ko"),
        ("virtio_pci_modern_dev.ko", "virtio_pci.ko"),
        ("fuse.ko", "virtiofs.ko"),
        ("virtio.ko", "virtio_console.ko"),
    ]:
        assert names.index(before) < names.index(after), names


def test_built_in_drivers_are_not_loaded(tmp_path: Path) -> None:
    moddir = _moddir(tmp_path, DEP, builtin=("kernel/fs/fuse/fuse.ko",))
    assert "fuse.ko" not in [p.name for p in load_order(moddir)]


def test_a_kernel_without_virtiofs_is_refused_with_the_fix(tmp_path: Path) -> None:
    moddir = _moddir(tmp_path, [line for line in DEP if "virtiofs" not in line])
    with pytest.raises(LabError, match=r"no virtiofs .*CONFIG_VIRTIO_FS"):
        load_order(moddir)


def test_release_comes_from_the_boot_header() -> None:
    kernel = guest_kernel()
    if kernel is None or not kernel.exists():
        pytest.skip("no Debian cloud kernel in /boot")
    release = kernel.name.removeprefix("vmlinuz-")
    assert bzimage_release(kernel.read_bytes()[:0x10000]) == release
    assert inspect_kernel(kernel).release == release
    assert bzimage_release(b"\0" * 0x1000) is None


def test_not_a_kernel(tmp_path: Path) -> None:
    junk = tmp_path / "vmlinuz-junk"
    junk.write_bytes(b"MZ" + b"\0" * 4096)
    with pytest.raises(LabError, match=r"is not a Linux kernel .*or 'host'"):
        inspect_kernel(junk)
    with pytest.raises(LabError, match="does not exist"):
        inspect_kernel(tmp_path / "missing")


def test_a_release_without_modules_is_refused(tmp_path: Path) -> None:
    """A real boot header with a release that has no /lib/modules directory."""
    kernel = guest_kernel()
    if kernel is None or not kernel.exists():
        pytest.skip("no Debian cloud kernel in /boot")
    data = bytearray(kernel.read_bytes()[:0x10000])
    release = kernel.name.removeprefix("vmlinuz-").encode()
    at = data.index(release)
    data[at : at + len(release)] = b"0.0.0-vlab-none".ljust(len(release), b"x")
    fake = tmp_path / "vmlinuz-fake"
    fake.write_bytes(bytes(data))
    with pytest.raises(LabError, match=r"modules\.dep does not exist"):
        inspect_kernel(fake)
