"""Helpers of the kernel-under-test tests: which guest kernel, and inner pytest sessions on it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vlab.guest_image import _version_key

ROOT = Path(__file__).resolve().parents[2]


def in_guest() -> bool:
    """True inside a ``--vlab-kernel`` worker (set by the guest side before exec)."""
    return os.environ.get("VLAB_KERNEL_GUEST") == "1"


def guest_kernel() -> Path | None:
    """``$VLAB_TEST_KERNEL``, else the newest Debian cloud kernel in /boot, else None."""
    chosen = os.environ.get("VLAB_TEST_KERNEL")
    if chosen:
        return Path(chosen)
    found = sorted(
        Path("/boot").glob("vmlinuz-*-cloud-amd64"),
        key=lambda p: _version_key(p.name.removeprefix("vmlinuz-")),
    )
    return found[-1] if found else None


def kernel_or_skip() -> Path:
    """The guest kernel for host-side tests that boot one; skip where that cannot work."""
    from vlab.kernel.launcher import unavailable

    if in_guest():
        pytest.skip("boots guests from the host; this already runs in one")
    kernel = guest_kernel()
    if kernel is None:
        pytest.skip("no /boot/vmlinuz-*-cloud-amd64: apt-get install -y linux-image-cloud-amd64")
    problem = unavailable()
    if problem:
        pytest.skip(problem)
    return kernel


def pytest_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]


def run_pytest(cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """An inner pytest session as a user runs it, to completion."""
    return subprocess.run(
        pytest_argv(*args), cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
