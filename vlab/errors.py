"""The one exception type users see.

Every mistake a user can make (a bad option, an unknown name, a missing kernel feature) surfaces as
:class:`LabError` with a message that says what to do, so a test report never shows a pyroute2 or
ctypes traceback in place of the actual problem.
"""


class LabError(Exception):
    """A lab could not be built or used as asked; the message says why and how to fix it."""


class Unsupported(LabError):
    """The running kernel (or machine) lacks a feature the lab asked for: a skip, not a bug."""
