"""Deprecated name of :mod:`vlab.reference.bridge`, kept so that ``vlab.model.BridgeModel`` works.

The reference bridge moved into :mod:`vlab.reference` when the scenario schema and the host
views stopped sharing the name ``model``; import from there.
"""

from __future__ import annotations

import warnings

from vlab.reference.bridge import *  # noqa: F403
from vlab.reference.bridge import BridgeModel, LearnedEntry, NotModelled, ParsedFrame

warnings.warn(
    "vlab.model is deprecated: import vlab.reference (BridgeModel, LearnedEntry, NotModelled)",
    DeprecationWarning,
    stacklevel=2,
)

FdbEntry = LearnedEntry
"""The model's fdb entry under its old name."""

__all__ = ["BridgeModel", "FdbEntry", "LearnedEntry", "NotModelled", "ParsedFrame"]
