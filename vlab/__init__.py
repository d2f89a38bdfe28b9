"""vlab: throwaway network labs for testing the VM -> tap -> bridge -> uplink path.

The public names are imported on first use (PEP 562), so ``import vlab`` — which pytest does for
every project that merely has vlab installed, through the plugin entry point — costs nothing:
scapy and the lab machinery load only when a lab is actually asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlab.lazy import exports

if TYPE_CHECKING:
    from vlab.bridge import Bridge, FdbEntry, Port
    from vlab.cable import Cable
    from vlab.endpoints import VM, Endpoint, Host, Uplink
    from vlab.errors import LabError, Unsupported
    from vlab.frames import Mask
    from vlab.hypervisor import Hypervisor
    from vlab.lab import Lab, Where
    from vlab.macvtap import MacvtapVM
    from vlab.nics import BondedHost
    from vlab.stats import LinkStats
    from vlab.unbridged import Interface
    from vlab.vxlan import UnderlayWatch, Vxlan

__version__: str  # the installed distribution's version, read on first use (vlab.version)

_HOMES = {
    "VM": "vlab.endpoints",
    "Bridge": "vlab.bridge",
    "Cable": "vlab.cable",
    "Endpoint": "vlab.endpoints",
    "FdbEntry": "vlab.bridge",
    "Host": "vlab.endpoints",
    "Interface": "vlab.unbridged",
    "Lab": "vlab.lab",
    "LinkStats": "vlab.stats",
    "LabError": "vlab.errors",
    "Mask": "vlab.frames",
    "Port": "vlab.bridge",
    "Unsupported": "vlab.errors",
    "Uplink": "vlab.endpoints",
    "Where": "vlab.lab",
    "MacvtapVM": "vlab.macvtap",
    "Hypervisor": "vlab.hypervisor",
    "Vxlan": "vlab.vxlan",
    "UnderlayWatch": "vlab.vxlan",
    "BondedHost": "vlab.nics",
    "__version__": "vlab.version",  # importlib.metadata is not cheap to import
}


__getattr__, __dir__ = exports("vlab", _HOMES, globals())


__all__ = [
    "VM",
    "BondedHost",
    "Bridge",
    "Cable",
    "Endpoint",
    "FdbEntry",
    "Host",
    "Hypervisor",
    "Interface",
    "Lab",
    "LabError",
    "LinkStats",
    "MacvtapVM",
    "Mask",
    "Port",
    "UnderlayWatch",
    "Unsupported",
    "Uplink",
    "Vxlan",
    "Where",
    "__version__",
]
