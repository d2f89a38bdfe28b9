"""vlab: throwaway network labs for testing the VM -> tap -> bridge -> uplink path.

The public names are imported on first use (PEP 562), not with the package: ``vlab.Lab`` pulls
in scapy and the lab core (~0.4 s, seconds on a cold cache), and the ``vlab`` command must be
able to catch Ctrl-C before that happens (see :func:`vlab.cli.main`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vlab.bridge import Bridge, FdbEntry, Port
    from vlab.endpoints import VM, Endpoint, Host, Uplink
    from vlab.errors import LabError, Unsupported
    from vlab.frames import Mask
    from vlab.lab import Lab, Where

_HOMES = {
    "Bridge": "vlab.bridge",
    "FdbEntry": "vlab.bridge",
    "Port": "vlab.bridge",
    "VM": "vlab.endpoints",
    "Endpoint": "vlab.endpoints",
    "Host": "vlab.endpoints",
    "Uplink": "vlab.endpoints",
    "LabError": "vlab.errors",
    "Unsupported": "vlab.errors",
    "Mask": "vlab.frames",
    "Lab": "vlab.lab",
    "Where": "vlab.lab",
}

__all__ = [
    "VM",
    "Bridge",
    "Endpoint",
    "FdbEntry",
    "Host",
    "Lab",
    "LabError",
    "Mask",
    "Port",
    "Unsupported",
    "Uplink",
    "Where",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'vlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
