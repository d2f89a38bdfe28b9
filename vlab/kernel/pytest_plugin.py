"""``pytest --vlab --vlab-kernel=PATH``: the session's tests run in guests booted with PATH.

Nothing here runs tests. The option is turned into pytest-xdist gateway specs whose "python" is
:mod:`vlab.kernel.launcher`, so xdist does what it always does (collect in the workers, schedule,
send reports back) and the workers happen to live in guests: ``-n N`` is N guests, each booted
once for the session. Collection in the worker is what makes kernel-dependent markers follow the
kernel that runs the test (scenario kernel ranges read ``platform.release()`` there).

The guest writes nothing on the host except below pytest's temporary root (shared writable), so
``tmp_path``, lab artifacts and pcaps of a test in the guest are on the host when its report is.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Generator
from pathlib import Path

import pytest

from vlab.errors import LabError

HOST = "host"
LOG_DIR = "vlab-kernel"  # below the basetemp: guest consoles and launcher errors
_KEY = pytest.StashKey["_Guests"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vlab")
    group.addoption(
        "--vlab-kernel",
        default=HOST,
        metavar="PATH",
        help="run lab tests in QEMU guests booted with this bzImage (modules from "
        "/lib/modules/<its release>); 'host' (default) is the running kernel. -n N: N guests",
    )
    group.addoption(
        "--vlab-kernel-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long a --vlab-kernel guest may take to boot before the session fails",
    )


def launcher_spec(kernel: Path, work: Path, timeout: float) -> str:
    """An xdist ``--tx`` spec whose worker Python runs in a guest booted with ``kernel``."""
    command = [sys.executable, "-m", "vlab.kernel.launcher", "--kernel", str(kernel)]
    command += ["--work", str(work), "--timeout", f"{timeout:g}"]
    command += ["--log-dir", str(work / LOG_DIR)]
    python = shlex.join(command)
    if "//" in python:
        raise pytest.UsageError(f"--vlab-kernel: no '//' allowed in {python!r} (xdist specs)")
    return f"popen//python={python}"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """On the controller: check the kernel now, and ask xdist for one worker per guest."""
    value = config.getoption("--vlab-kernel")
    if value == HOST or hasattr(config, "workerinput"):
        return
    if not config.getoption("--vlab"):
        raise pytest.UsageError("--vlab-kernel needs --vlab (it runs lab tests in a guest)")
    if not config.pluginmanager.hasplugin("xdist"):
        raise pytest.UsageError(
            "--vlab-kernel runs tests through pytest-xdist: pip install pytest-xdist"
        )
    from vlab.kernel.image import ensure_boot_files, inspect_kernel
    from vlab.kernel.launcher import unavailable

    try:
        kernel = inspect_kernel(value)
        problem = unavailable()
        if problem:
            raise LabError(problem)
        ensure_boot_files(kernel)  # once, here, rather than raced by every worker
    except LabError as exc:
        raise pytest.UsageError(f"--vlab-kernel={value}: {exc}") from None
    if config.getoption("collectonly", False):
        return  # nothing runs: collection stays on the host
    count = len(config.option.tx or []) or 1
    # placeholders: xdist decides at configure time that the session is distributed; the real
    # specs need the basetemp, which exists only from session start (see below)
    config.option.tx = ["popen"] * count
    if config.option.dist == "no":
        config.option.dist = "load"
    config.stash[_KEY] = _Guests(kernel.path.resolve(), kernel.release, count)


class _Guests:
    def __init__(self, path: Path, release: str, count: int) -> None:
        self.path, self.release, self.count = path, release, count

    def label(self) -> str:
        return f"{self.release} ({self.path}) in {self.count} QEMU guest(s), TCG"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> Generator[None, None, None]:
    """Point the workers at the guests, sharing the basetemp; a guest that fails is a usage error.

    Runs before xdist starts its gateways. The basetemp is shared as it is: pytest made it just
    now and keeps it for the session, so what the guest writes there is on the host at once.
    """
    config = session.config
    guests = config.stash.get(_KEY, None)
    if guests is None:
        return (yield)
    basetemp = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    spec = launcher_spec(guests.path, basetemp, config.option.vlab_kernel_timeout)
    config.option.tx = [spec] * guests.count
    try:
        return (yield)
    except (OSError, EOFError) as exc:  # execnet: the gateway's process went away
        errors = sorted((basetemp / LOG_DIR).glob("*.error"))
        if not errors:
            raise
        text = "\n".join(e.read_text().rstrip() for e in errors)
        raise pytest.UsageError(f"--vlab-kernel={guests.path}: no guest came up:\n{text}") from exc


def pytest_report_header(config: pytest.Config) -> list[str]:
    guests = config.stash.get(_KEY, None)
    return [] if guests is None else [f"vlab: kernel under test {guests.label()}"]
