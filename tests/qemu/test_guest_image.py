"""The guest image: cpio writer, kernel extraction, and a cache that parallel workers share."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from vlab import guest_image as gi

INPUTS_MISSING = gi.missing_inputs()
needs_inputs = pytest.mark.skipif(
    bool(INPUTS_MISSING), reason=f"guest image inputs missing: {gi.INSTALL_COMMAND}"
)


def parse_newc(archive: bytes) -> dict[str, tuple[int, bytes, tuple[int, int]]]:
    """Independent reader of the format, as the kernel's initramfs unpacker sees it."""
    entries: dict[str, tuple[int, bytes, tuple[int, int]]] = {}
    i = 0
    while True:
        assert archive[i : i + 6] == b"070701"
        fields = [int(archive[i + 6 + 8 * k : i + 14 + 8 * k], 16) for k in range(13)]
        mode, size, rmaj, rmin, namesize = fields[1], fields[6], fields[9], fields[10], fields[11]
        name_at = i + 110
        name = archive[name_at : name_at + namesize - 1].decode()
        data_at = (name_at + namesize + 3) // 4 * 4
        if name == "TRAILER!!!":
            return entries
        entries[name] = (mode, archive[data_at : data_at + size], (rmaj, rmin))
        i = (data_at + size + 3) // 4 * 4


def test_cpio_newc_round_trips() -> None:
    archive = gi.cpio_newc(
        [
            ("dir", stat.S_IFDIR | 0o755, b"", (0, 0)),
            ("dir/file", stat.S_IFREG | 0o644, b"hello", (0, 0)),
            ("dev/console", stat.S_IFCHR | 0o600, b"", (5, 1)),
            ("link", stat.S_IFLNK | 0o777, b"dir/file", (0, 0)),
        ]
    )
    assert len(archive) % 512 == 0
    entries = parse_newc(archive)
    assert entries["dir/file"] == (stat.S_IFREG | 0o644, b"hello", (0, 0))
    assert entries["dev/console"][2] == (5, 1)
    assert entries["link"][1] == b"dir/file"


def test_lz4_block_decoding_handles_literals_and_overlapping_matches() -> None:
    out = bytearray()
    # "ab", then a match 2 back of length 6 (overlapping: "ababab"), then the literal "c".
    gi._lz4_block(memoryview(bytes([0x22]) + b"ab" + b"\x02\x00" + bytes([0x10]) + b"c"), out)
    assert bytes(out) == b"ababababc"
    out = bytearray()
    literals = bytes(range(256)) * 2  # 512 literals: length continues in extra bytes
    gi._lz4_block(memoryview(bytes([0xF0, 255, 512 - 15 - 255]) + literals), out)
    assert bytes(out) == literals


def test_lz4_rejects_a_match_before_the_start() -> None:
    with pytest.raises(ValueError):
        gi._lz4_block(memoryview(bytes([0x10]) + b"a" + b"\x05\x00"), bytearray())


def test_kernel_versions_sort_numerically() -> None:
    releases = ["6.1.0-9-cloud-amd64", "6.1.0-10-cloud-amd64", "6.12.0-1-cloud-amd64"]
    assert sorted(releases, key=gi._version_key)[-1] == "6.12.0-1-cloud-amd64"
    assert sorted(releases[:2], key=gi._version_key)[-1] == "6.1.0-10-cloud-amd64"


def test_a_dynamic_executable_is_not_taken_for_busybox_static() -> None:
    assert not gi._is_static_elf(Path(os.path.realpath(sys.executable)))


def test_init_script_is_valid_shell() -> None:
    shell = "/bin/busybox" if Path("/bin/busybox").exists() else "/bin/sh"
    argv = [shell, "sh", "-n"] if shell.endswith("busybox") else [shell, "-n"]
    subprocess.run(argv, input=gi.INIT_SCRIPT, text=True, check=True)


@needs_inputs
def test_inputs_resolve_modules_in_load_order() -> None:
    inputs = gi.find_inputs()
    names = [p.name.split(".ko")[0].replace("-", "_") for p in inputs.modules]
    assert names == list(gi.MODULES)
    assert gi._is_static_elf(inputs.busybox)


@needs_inputs
def test_image_is_built_once_and_shared_by_parallel_builders(tmp_path: Path) -> None:
    results: list[gi.GuestImage | BaseException] = []

    def build() -> None:
        try:
            results.append(gi.ensure_image(tmp_path))
        except BaseException as e:
            results.append(e)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(isinstance(r, gi.GuestImage) for r in results), results
    images = {r.directory for r in results if isinstance(r, gi.GuestImage)}
    assert len(images) == 1
    image = gi.ensure_image(tmp_path)
    assert image.directory in images
    # one image directory and its lock; no temporary directory left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [image.directory.name, image.directory.name + ".lock"]
    )
    entries = parse_newc(image.initrd.read_bytes())
    assert entries["init"][1].decode() == gi.INIT_SCRIPT
    assert entries["bin/sh"][1] == b"/bin/busybox"
    assert {f"lib/modules/{m}.ko" for m in gi.MODULES} <= entries.keys()
    if image.pvh:
        assert image.kernel.read_bytes()[:4] == b"\x7fELF"


@needs_inputs
def test_an_interrupted_build_is_cleaned_up_and_redone(tmp_path: Path) -> None:
    key = gi.image_key(gi.find_inputs())
    (tmp_path / f".{key}.dead").mkdir()  # what a killed builder leaves
    (tmp_path / key).mkdir()  # a directory without manifest is not an image
    image = gi.ensure_image(tmp_path)
    assert image.directory == tmp_path / key
    assert not (tmp_path / f".{key}.dead").exists()


@needs_inputs
def test_pvh_kernel_is_an_elf_qemu_can_boot_directly() -> None:
    elf = gi.pvh_kernel(gi.find_inputs().kernel.read_bytes())
    if elf is None:
        pytest.skip("this kernel's compression or lack of a PVH note means bzImage boot")
    assert elf[:4] == b"\x7fELF"
    assert gi._has_pvh_note(elf)
