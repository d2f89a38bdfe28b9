"""Which YAML files are vlab scenarios: decided from paths and configuration, never by reading.

Installing vlab must not change anyone else's test run, and plenty of projects keep YAML that is
not a scenario (Ansible playbooks, CI configuration, fixtures) — some of it even in a directory
called ``scenarios``. So a ``*.yaml``/``*.yml`` file is a scenario only when the project says so:

1. the file was named on the command line (``pytest --vlab path/to/my.yaml``): always; or
2. it lies under a path listed in the ``vlab_scenarios`` ini option (relative to the ini file's
   directory, e.g. ``vlab_scenarios = ["scenarios"]`` in ``[tool.pytest.ini_options]``) or given
   with ``--vlab-scenarios PATH`` (what ``vlab run DIR`` passes).

Nothing else is ever opened. This module is imported by the plugin in every pytest run, so it
uses only the standard library and pytest.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

SUFFIXES = (".yaml", ".yml")
INI = "vlab_scenarios"
OPTION = "--vlab-scenarios"
_ROOTS = pytest.StashKey[tuple[frozenset[Path], tuple[Path, ...]]]()


def is_scenario_path(path: Path, named: Iterable[Path], roots: Iterable[Path]) -> bool:
    """The rule above, for an absolute ``path``: named files, or YAML under a scenario root."""
    if path.suffix not in SUFFIXES:
        return False
    if path in set(named):
        return True
    return any(path.is_relative_to(root) for root in roots)


def _resolved(base: Path, text: str) -> Path:
    return (base / text.split("::", 1)[0]).resolve()


def _roots_of(config: pytest.Config) -> tuple[frozenset[Path], tuple[Path, ...]]:
    """The files named on the command line, and every configured scenario root, resolved."""
    cached = config.stash.get(_ROOTS, None)
    if cached is not None:
        return cached
    here = config.invocation_params.dir
    named = frozenset(_resolved(here, arg) for arg in config.args)
    roots = [Path(p).resolve() for p in config.getini(INI)]  # type "paths": ini-relative
    roots += [_resolved(here, p) for p in config.getoption(OPTION) or ()]
    config.stash[_ROOTS] = (named, tuple(roots))
    return config.stash[_ROOTS]


def wanted(config: pytest.Config, file_path: Path) -> bool:
    """Whether the plugin should collect ``file_path`` as a scenario in this run."""
    if file_path.suffix not in SUFFIXES:
        return False
    named, roots = _roots_of(config)
    return is_scenario_path(file_path.resolve(), named, roots)
