"""Fixtures of the CLI tests (defined in cli_helpers, which the tests also import)."""

from cli_helpers import start_up, state_dir, vlab

__all__ = ["start_up", "state_dir", "vlab"]
