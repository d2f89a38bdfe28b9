"""The guest image cache is trusted only when nobody but this user (or root) could have filled it.

``sudo -E`` keeps the user's HOME, so root's guest image cache becomes ``~user/.cache/vlab/guest``:
a real user made for the test plants a complete image there (and a ``.lock`` symlink), and root
must refuse both with an error naming the path, instead of booting the user's kernel or creating
a file wherever the symlink points. The control copies the very same planted files into a cache
of root's own, where they are accepted: ownership is the only difference, so the refusal is the
check at work, not a malformed plant.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import localusers
import pytest
from localusers import User, local_user

from vlab import guest_image as gi
from vlab.errors import LabError

PLANTED_KERNEL = b"planted kernel, would run as the guest of root"


@pytest.fixture
def key() -> str:
    if gi.missing_inputs():
        pytest.skip(f"no guest inputs: {gi.INSTALL_COMMAND}")
    return gi.image_key(gi.find_inputs())


@pytest.fixture
def user() -> Iterator[User]:
    reason = localusers.why_not()
    if reason:
        pytest.skip(reason)
    base = Path(tempfile.mkdtemp(prefix="vlab-cache-users-"))
    os.chmod(base, 0o755)
    try:
        with local_user(base, "vlabc") as the_user:
            yield the_user
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _plant_image(user: User, key: str) -> Path:
    """A complete image in the user's cache, written by the user: what ``_load`` accepts."""
    image = user.home / ".cache" / "vlab" / "guest" / key
    manifest = {"kernel": "vmlinux", "initrd": "initrd.cpio", "release": "planted", "pvh": True}
    user.sh(
        f"mkdir -p {image} && printf '{PLANTED_KERNEL.decode()}' > {image}/vmlinux && "
        f"echo initrd > {image}/initrd.cpio && "
        f"echo '{json.dumps(manifest)}' > {image}/manifest.json"
    )
    return image


def _as_root_with_home_of(user: User, monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``sudo -E`` leaves: root, with the user's HOME and no cache override."""
    monkeypatch.setenv("HOME", str(user.home))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert gi.cache_root() == user.home / ".cache" / "vlab" / "guest"


def test_root_does_not_boot_an_image_a_user_planted(
    user: User, key: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    planted = _plant_image(user, key)
    # control: the same files in a cache of root's are a bootable image
    trusted = tmp_path / "cache"
    shutil.copytree(planted, trusted / key)
    accepted = gi.ensure_image(trusted)
    assert accepted.kernel.read_bytes() == PLANTED_KERNEL and accepted.release == "planted"

    _as_root_with_home_of(user, monkeypatch)
    with pytest.raises(LabError) as refused:
        gi.ensure_image()
    text = str(refused.value)
    assert text.startswith(f"guest image cache {gi.cache_root()}: ")
    assert f"belongs to uid {user.uid}, not to you (uid 0) or root" in text
    assert "XDG_CACHE_HOME" in text and "sudo" in text


def test_root_does_not_follow_a_lock_symlink_a_user_planted(
    user: User, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = user.home.parent / "created-by-root"
    cache = user.home / ".cache" / "vlab" / "guest"
    user.sh(f"mkdir -p {cache} && ln -s {target} {cache}/{key}.lock")  # no image: root would build
    _as_root_with_home_of(user, monkeypatch)
    with pytest.raises(LabError, match=f"belongs to uid {user.uid}"):
        gi.ensure_image()
    assert not os.path.lexists(target), "root created a file where the user's symlink pointed"
    assert not os.path.lexists(cache / key)  # and built nothing in the user's directory


def test_a_lock_symlink_is_not_followed_even_in_a_trusted_cache(key: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    target = tmp_path / "target"
    (cache / f"{key}.lock").symlink_to(target)
    with pytest.raises(gi.GuestError, match=f"cannot open the guest image lock {cache}/{key}.lock"):
        gi.ensure_image(cache)
    assert not os.path.lexists(target)


@pytest.mark.parametrize("where", ["cache", "image", "kernel"])
def test_anything_others_can_write_is_refused(key: str, tmp_path: Path, where: str) -> None:
    cache = tmp_path / "cache"
    image = gi.ensure_image(cache)  # a real, good image of root's
    path = {"cache": cache, "image": image.directory, "kernel": image.kernel}[where]
    os.chmod(path, 0o777 if path.is_dir() else 0o666)
    with pytest.raises(LabError, match=f"{path} is mode 0(777|666)"):
        gi.ensure_image(cache)


def test_a_sticky_world_writable_ancestor_is_fine(key: str) -> None:
    """/tmp itself is 1777: nobody can replace what is ours in it, so a cache below it is used."""
    base = Path(tempfile.mkdtemp(prefix="vlab-cache-sticky-"))
    try:
        os.chmod(base, 0o1777)
        image = gi.ensure_image(base / "cache")
        assert image.kernel.is_file()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_manifest_cannot_point_out_of_its_image(key: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    image = gi.ensure_image(cache)
    outside = tmp_path / "outside"
    outside.write_bytes(PLANTED_KERNEL)
    manifest = json.loads((image.directory / "manifest.json").read_text())
    manifest["kernel"] = f"../../{outside.name}"
    (image.directory / "manifest.json").write_text(json.dumps(manifest))
    rebuilt = gi.ensure_image(cache)  # not believed: the image is rebuilt instead
    assert rebuilt.kernel.parent == image.directory
    assert rebuilt.kernel.read_bytes() != PLANTED_KERNEL
