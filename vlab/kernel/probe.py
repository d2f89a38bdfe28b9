"""One program in a guest booted with a chosen kernel: what ``vlab doctor --kernel`` runs on.

The launcher's ``--oneshot`` mode: the guest runs ``python ARGS...`` from the host's root and
reboots when it ends; its stdout comes back here and its exit status is the launcher's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vlab.errors import LabError
from vlab.kernel.image import ensure_boot_files, inspect_kernel
from vlab.kernel.launcher import BOOT_TIMEOUT, unavailable


@dataclass(frozen=True)
class GuestRun:
    status: int
    stdout: str
    release: str


def run_python(kernel: str | os.PathLike[str], args: list[str], timeout: float = 600) -> GuestRun:
    """``python ARGS...`` in a guest booted with ``kernel``; LabError if it cannot boot."""
    image = inspect_kernel(kernel)
    problem = unavailable()
    if problem:
        raise LabError(problem)
    ensure_boot_files(image)
    with tempfile.TemporaryDirectory(prefix="vlab-probe-") as work:
        logs = Path(work) / "logs"
        argv = [sys.executable, "-m", "vlab.kernel.launcher", "--kernel", str(image.path)]
        argv += ["--work", work, "--log-dir", str(logs), "--timeout", f"{BOOT_TIMEOUT:g}"]
        argv += ["--oneshot", "--", *args]
        try:
            done = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise LabError(
                f"the guest on {image.release} did not finish within {timeout:g}s"
            ) from None
        errors = sorted(logs.glob("*.error"))
        if errors:
            raise LabError(errors[0].read_text().strip().removeprefix("vlab: "))
    return GuestRun(done.returncode, done.stdout, image.release)
