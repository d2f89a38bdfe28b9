"""vlab: throwaway network labs for testing the VM -> tap -> bridge -> uplink path."""

from vlab.bridge import Bridge, FdbEntry, Port
from vlab.endpoints import VM, Endpoint, Host, Uplink
from vlab.errors import LabError, Unsupported
from vlab.frames import Mask
from vlab.lab import Lab, Where
from vlab.stats import LinkStats

__all__ = [
    "VM",
    "Bridge",
    "Endpoint",
    "FdbEntry",
    "Host",
    "Lab",
    "LabError",
    "LinkStats",
    "Mask",
    "Port",
    "Unsupported",
    "Uplink",
    "Where",
]
