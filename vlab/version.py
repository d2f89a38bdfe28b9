"""vlab's version, read from the installed distribution on first use of ``vlab.__version__``.

Not at ``import vlab``: importlib.metadata costs ~45 ms to import, which the reset worker
(vlab.nsresetd), a fresh interpreter started while the first labs are built, would otherwise pay
for a name it never reads.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vlab")
    """The installed distribution's version: pyproject.toml is its only source."""
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
