"""The pytest plugin: ``pytest --vlab`` builds a fresh lab for every test that asks for one.

Lab tests are opt-in because they need root (or a user namespace) and real kernel objects; without
``--vlab`` they are skipped with the reason, so a plain ``pytest`` stays green on a laptop. With
``--vlab`` on a machine that cannot build labs, the whole session stops with one message: a CI job
must never go green having skipped every lab test.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from vlab.errors import LabError, Unsupported
from vlab.scenario import select

if TYPE_CHECKING:
    from vlab.lab import Lab
    from vlab.qemu import QemuGuest
    from vlab.scenario.collect import ScenarioFile

pytest_plugins = ["vlab.kernel.pytest_plugin"]  # --vlab-kernel: see docs/kernel-under-test.md

SKIP_REASON = "lab tests need --vlab"
LAB_FIXTURES = frozenset({"lab"})
_LAB_KEY = pytest.StashKey["Lab"]()
_CALL_FAILED = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vlab", "network namespace labs")
    group.addoption(
        "--vlab",
        action="store_true",
        default=False,
        help="run lab tests (marked vlab or using the lab fixture): needs root or user namespaces",
    )
    group.addoption(
        "--vlab-profile",
        choices=("ci", "thorough"),
        default="ci",
        help="depth of vlab's property tests: ci (fast, bounded) or thorough (many examples)",
    )
    group.addoption(
        "--vlab-strict",
        action="store_true",
        default=False,
        help="a lab test fails if it ends with frames no expect() consumed (vlab_strict marker)",
    )
    group.addoption(
        select.OPTION,
        action="append",
        default=[],
        metavar="PATH",
        help="collect every *.yaml/*.yml under PATH as a vlab scenario (repeatable)",
    )
    parser.addini(
        "vlab_reuse_namespaces",
        default="true",
        help="reuse closed labs' switch namespaces (reset and verified; see vlab.nspool): "
        "true (default) or false; the environment variable VLAB_REUSE_NAMESPACES wins",
    )
    parser.addini(
        select.INI,
        type="paths",
        default=[],
        help="paths (relative to the ini file) whose *.yaml/*.yml files are vlab scenarios",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "vlab: a test that builds a network lab (needs --vlab)")
    config.addinivalue_line("markers", "qemu: a lab test that boots a real QEMU guest")
    from vlab import strict

    config.addinivalue_line("markers", strict.MARKER_HELP)
    from vlab import profiles  # light: hypothesis itself loads with the first property test

    profiles.register(config.getoption("--vlab-profile"))
    if config.getoption("--vlab"):
        from vlab import rootless

        try:  # non-root: become root of a user namespace, while pytest is still single-threaded
            rootless.ensure()
        except LabError as exc:
            raise pytest.UsageError(f"--vlab: cannot build labs on this machine: {exc}") from None
    if config.getoption("--vlab"):
        from vlab import nspool

        nspool.configure(str(config.getini("vlab_reuse_namespaces")))
    if config.getoption("--vlab") and not hasattr(config, "workerinput"):
        problem = capability_problem()
        if problem:
            raise pytest.UsageError(f"--vlab: cannot build labs on this machine: {problem}")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """The session's pooled switch namespaces go before anyone checks what is left."""
    if session.config.getoption("--vlab"):
        from vlab import nspool

        nspool.empty()


def capability_problem() -> str | None:
    """What keeps this process from building labs, or None; probed for real, not guessed."""
    from vlab.netns import NetNS

    try:
        NetNS.create("probe").close()
    except LabError as exc:
        return str(exc)
    # /dev/net/tun is not needed by bridges, hosts and uplinks: VM endpoints skip without it
    return None


def _skip_unsupported() -> Generator[None, None, None]:
    """A lab that needs what this machine lacks is a skip with the reason, not a failure.

    The kernel without a feature (vlan_filtering), a rootless lab where /dev/net/tun cannot be
    opened, a machine without QEMU: all raise :class:`vlab.errors.Unsupported`.
    """
    try:
        return (yield)
    except Unsupported as exc:  # reported at the test, not at this hook
        raise pytest.skip.Exception(str(exc), _use_item_location=True) from None


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> ScenarioFile | None:
    """Collect a YAML file as a scenario only where the project asked for scenarios."""
    if not select.wanted(parent.config, file_path):
        return None
    from vlab.scenario.collect import ScenarioFile

    return ScenarioFile.from_parent(parent, path=file_path)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    return (yield from _skip_unsupported())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    return (yield from _skip_unsupported())


def _wants_lab(item: pytest.Item) -> bool:
    if item.get_closest_marker("vlab") is not None:
        return True
    return bool(LAB_FIXTURES & set(getattr(item, "fixturenames", ())))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--vlab"):
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if _wants_lab(item):
            item.add_marker(skip)


@pytest.fixture
def lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Lab]:
    """A fresh lab for this test, torn down after it whatever happened.

    On failure, the report gets the lab's topology and fdb and the path of one pcap per endpoint.
    """
    if not request.config.getoption("--vlab"):
        pytest.skip(SKIP_REASON)
    from vlab.lab import Lab

    name = request.node.name[:40]
    marker = request.node.get_closest_marker("vlab")  # @pytest.mark.vlab(quiet=False)
    options = dict(marker.kwargs) if marker is not None else {}
    if set(options) - {"quiet"}:
        raise LabError(f"@pytest.mark.vlab{tuple(options)}: the lab options it takes: quiet")
    with Lab(name=name, artifacts=tmp_path / "vlab", **options) as the_lab:
        request.node.stash[_LAB_KEY] = the_lab
        yield the_lab
        from vlab import strict

        if strict.wanted(request.node) and not request.node.stash.get(_CALL_FAILED, False):
            strict.check(the_lab)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if call.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    the_lab = item.stash.get(_LAB_KEY, None)
    if the_lab is not None and report.failed and call.when in ("call", "setup"):
        try:
            text = the_lab.describe()
            with contextlib.suppress(OSError):
                text += "\n" + the_lab.fdb_text()
            if the_lab.programs():
                from vlab import programs

                text += "\n\n" + programs.report(the_lab)
            try:
                directory = the_lab.write_artifacts()
                pcaps = sorted(p.name for p in directory.glob("*.pcap*"))
                text += f"\npcaps in {directory}: {', '.join(pcaps)}"
            except Exception as exc:  # disk full, read-only: keep the topology, say why
                text += f"\n(pcaps and topology could not be written: {exc})"
            for guest in [
                g for ep in the_lab.endpoints.values() if (g := getattr(ep, "guest", None))
            ]:
                text += _guest_logs(guest)
        except Exception as exc:  # a broken report must not hide the test's own failure
            text = f"(could not collect lab artifacts: {exc})"
        report.sections.append(("vlab lab", text))
    return report


def _guest_logs(guest: QemuGuest) -> str:
    """The end of a guest's console log and, while it still answers, of its kernel log.

    Guests boot ``quiet`` (the serial console is slow under TCG), so the console shows only the
    kernel's errors; its full log is read with ``dmesg`` at failure time, saved next to the boot
    log and its end shown here.
    """
    tail = "\n".join(guest.boot_log.splitlines()[-40:]) or "(empty)"
    text = f"\n\nboot log of {guest.name} ({guest.boot_log_path}), last lines:\n{tail}"
    if not guest.answering:
        return text + f"\n(guest {guest.name} no longer answers: no kernel log)"
    try:
        kernel = guest.run("dmesg", timeout=3).output
    except LabError as exc:
        return text + f"\n(kernel log of {guest.name} unavailable: {exc})"
    path = guest.boot_log_path.with_name(f"{guest.boot_log_path.stem}-dmesg.log")
    with contextlib.suppress(OSError):
        path.write_text(kernel)
    tail = "\n".join(kernel.splitlines()[-40:])
    return text + f"\n\nkernel log of {guest.name} (dmesg, in {path}), last lines:\n{tail}"


def pytest_report_header(config: pytest.Config) -> list[str]:
    if not config.getoption("--vlab"):
        return ["vlab: lab tests skipped (run with --vlab)"]
    return [
        f"vlab: labs on kernel {os.uname().release}, profile {config.getoption('--vlab-profile')}"
    ]


__all__ = ["capability_problem", "lab", "pytest_collect_file"]
