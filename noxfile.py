"""Sessions: lint, types, docs (CI's gates), tests (what CI runs after them), bench, fuzz.

Lab tests need root (or a user namespace) and real kernel objects; nox only provides the
environment, the plugin's ``--vlab`` option turns them on.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "types", "docs", "tests"]
nox.options.reuse_existing_virtualenvs = True
PY = None  # the interpreter nox runs on (./dev picks the newest 3.11+ the machine has)


@nox.session(python=PY)
def tests(session: nox.Session) -> None:
    """Unit, lab, scenario and QEMU tests under --vlab, two workers."""
    session.install("-e", ".[dev]")
    args = session.posargs or ["-n", "2"]
    session.run("pytest", "--vlab", "-ra", *args)


@nox.session(python=PY)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check: the code as committed is the code as formatted."""
    session.install("ruff")
    session.run("ruff", "check", "vlab", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "vlab", "tests", "benchmarks", "noxfile.py")


@nox.session(python=PY)
def types(session: nox.Session) -> None:
    """mypy --strict over the vlab package (configured in pyproject.toml)."""
    session.install("-e", ".[dev]")
    session.run("mypy")


@nox.session(python=PY)
def docs(session: nox.Session) -> None:
    """The documentation site, warnings as errors (a broken link or API reference fails)."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site", *session.posargs)


@nox.session(python=PY)
def bench(session: nox.Session) -> None:
    """Benchmarks against baselines measured in the same run; writes benchmarks/RESULTS.md."""
    session.install("-e", ".[dev]", "matplotlib")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session(python=PY)
def fuzz(session: nox.Session) -> None:
    """Long fuzzing runs of the scenario loader and frame injection."""
    session.install("-e", ".[dev]")
    session.run("pytest", "--vlab", "tests/fuzz", "--vlab-profile=thorough", *session.posargs)


@nox.session(python=PY)
def guest_kernel(session: nox.Session) -> None:
    """The scenario library, tests/kernel and the VLAN selftest ports on Debian's cloud
    kernel, in QEMU guests (TCG)."""
    import glob

    session.install("-e", ".[dev]")
    kernels = sorted(glob.glob("/boot/vmlinuz-*-cloud-amd64"))
    if not kernels:
        session.error("no /boot/vmlinuz-*-cloud-amd64: ./dev test installs linux-image-cloud-amd64")
    vlan_selftests = sorted(glob.glob("tests/selftests/test_*vlan_aware.py")) + sorted(
        glob.glob("tests/selftests/test_*_vlan.py")
    )  # ports of VLAN-aware subtests: they need the guest's VLAN filtering and 8021q
    args = session.posargs or ["-n", "2", "scenarios", "tests/kernel", *vlan_selftests]
    session.run("pytest", "--vlab", f"--vlab-kernel={kernels[-1]}", "-ra", *args)
