"""Reference models of what the kernel's bridges do, in pure Python, for property tests.

:mod:`vlab.reference.bridge` holds one VLAN-unaware learning bridge (:class:`BridgeModel`).
The models answer *which endpoints must receive this frame?* without a kernel, so that the
property machine (:mod:`vlab.properties`) can hold a real lab against them frame by frame.
"""

from __future__ import annotations

from vlab.reference.bridge import BridgeModel, LearnedEntry, NotModelled, ParsedFrame

__all__ = ["BridgeModel", "LearnedEntry", "NotModelled", "ParsedFrame"]
