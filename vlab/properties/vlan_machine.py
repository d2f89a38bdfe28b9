"""The forwarding machine for VLAN-aware bridges: a real ``vlan_filtering=1`` bridge against
:class:`~vlab.reference.vlan.VlanBridgeModel`, frame by frame and *byte* by byte.

A VLAN-aware bridge rewrites frames (it adds and removes tags), so this machine compares more
than the VLAN-unaware one: every endpoint must receive exactly the bytes the model says, tag and
all, and nothing else. Each example starts from drawn VLAN memberships
(:func:`vlab.vlan_strategies.vlan_memberships`), then sends tagged, priority-tagged and untagged
frames (:func:`vlab.vlan_strategies.vlan_frames`) and reconfigures membership, PVIDs, per-VLAN STP
states and the fdb in between; the fdb, keyed by (MAC, VLAN), is compared after every change.

Kernels without bridge VLAN filtering raise :class:`~vlab.errors.Unsupported` when the lab is
built (a skip); run it under ``--vlab-kernel``. Customise with a subclass::

    class Wrong(VlanForwardingMachine):
        model_class = MyWrongModel
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from vlab.endpoints import Endpoint
from vlab.errors import LabError
from vlab.frames import summary
from vlab.lab import Lab
from vlab.reference.vlan import VlanBridgeModel
from vlab.vlan_strategies import VLAN_POOL, vlan_frames, vlan_memberships

BRIDGE_MAC = "02:00:00:00:0b:01"
NAMES = ("vm1", "vm2", "vm3", "uplink")
MACS = {name: f"52:54:00:00:0b:{i:02x}" for i, name in enumerate(NAMES, 1)}
STATES = ("forwarding", "learning", "blocking")


class _LiveVlanLab:
    """One lab for the whole run, reset between examples (a rebuild costs more than a reset)."""

    def __init__(self) -> None:
        self.lab = Lab(name="vlan-machine")
        try:
            self.br = self.lab.bridge("br0", vlan_filtering=True, mac=BRIDGE_MAC)
            self.endpoints: dict[str, Endpoint] = {}
            for name in NAMES:
                if name == "uplink":
                    self.endpoints[name] = self.lab.uplink(self.br, mac=MACS[name], name=name)
                else:
                    self.endpoints[name] = self.lab.vm(name, bridge=self.br, mac=MACS[name])
            self.lab.ready()
        except BaseException:
            self.lab.close()
            raise
        self.port_of = {ep.port: name for name, ep in self.endpoints.items()}
        self.port_macs = {n: self.br.port(ep).mac for n, ep in self.endpoints.items()}

    def reset(self) -> None:
        """Every port back to VLAN 1 only (PVID, untagged, forwarding), an empty fdb."""
        for ep in self.endpoints.values():
            port = self.br.port(ep)
            extra = [v for v in port.vlans() if v != 1]
            if extra:
                port.vlan_del(extra)
            port.vlan_add(1, pvid=True, untagged=True)
            port.vlan_set(1, state="forwarding")
        self.br.fdb_flush()
        for entry in self.br.fdb_entries():
            if not entry.local:
                self.br.fdb_del(entry.mac, entry.port, vlan=entry.vlan)
        self.lab.settle()
        for ep in self.endpoints.values():
            ep.clear()

    def fdb(self) -> dict[tuple[str, int], str]:
        """``{(mac, vid): endpoint}`` of the kernel's non-local entries."""
        return {
            (e.mac, e.vlan or 0): self.port_of[e.port]
            for e in self.br.fdb_entries()
            if not e.local and e.port in self.port_of
        }


class VlanForwardingMachine(RuleBasedStateMachine):
    """Frames through a VLAN-aware bridge against :attr:`model_class`, byte for byte."""

    model_class: ClassVar[type[VlanBridgeModel]] = VlanBridgeModel
    _live: ClassVar[_LiveVlanLab | None] = None

    def __init__(self) -> None:
        super().__init__()
        live = VlanForwardingMachine._live
        if live is None:
            live = VlanForwardingMachine._live = _LiveVlanLab()
        live.reset()
        self.live = live
        self.model = self.model_class(BRIDGE_MAC, live.port_macs)
        self.log: list[str] = []

    @classmethod
    def close_lab(cls) -> None:
        """Close the shared lab (the end of a test run)."""
        live, VlanForwardingMachine._live = VlanForwardingMachine._live, None
        if live is not None:
            live.lab.close()

    # --- steps ---------------------------------------------------------------------------

    @initialize(config=vlan_memberships(NAMES))
    def configure(self, config: dict[str, dict[int, tuple[bool, bool]]]) -> None:
        """Drawn starting memberships: each port's VLANs, PVID and untagged set."""
        for name, vlans in config.items():
            for vid, (pvid, untagged) in sorted(vlans.items()):
                self._both(name, "vlan_add", vid, pvid=pvid, untagged=untagged)
            if 1 not in vlans:
                self._both(name, "vlan_del", 1)

    @rule(sender=st.sampled_from(NAMES), draw=vlan_frames())
    def send(self, sender: str, draw: dict[str, Any]) -> None:
        """A frame in at ``sender``: each endpoint gets exactly the model's bytes."""
        data = self._frame(sender, draw)
        expected = self.model.deliver_frames(sender, data)
        self.log.append(f"send from {sender}: {data.hex()}")
        self.live.endpoints[sender].send(data)
        self.live.lab.settle()
        wrong = []
        for name, ep in self.live.endpoints.items():
            got = Counter(d for _ts, d in ep.pending)
            ep.pending.clear()
            want = Counter([expected[name]] if name in expected else [])
            if got != want:
                shown = ", ".join(summary(d) for d in got) or "nothing"
                wish = summary(expected[name]) if name in expected else "nothing"
                wrong.append(f"{name}: got {shown}; the model expects {wish}")
        if wrong:
            self._fail(f"{sender} sent {summary(data)}:\n  " + "\n  ".join(wrong))

    @rule(
        at=st.sampled_from(NAMES),
        vid=st.sampled_from(VLAN_POOL),
        pvid=st.booleans(),
        untagged=st.booleans(),
    )
    def vlan_add(self, at: str, vid: int, pvid: bool, untagged: bool) -> None:
        """Join a VLAN (or re-flag one), maybe as the PVID."""
        self._both(at, "vlan_add", vid, pvid=pvid, untagged=untagged)

    @rule(at=st.sampled_from(NAMES), vid=st.sampled_from(VLAN_POOL))
    def vlan_del(self, at: str, vid: int) -> None:
        """Leave a VLAN (refused by both when not a member)."""
        self._both(at, "vlan_del", vid)

    @rule(at=st.sampled_from(NAMES), vid=st.sampled_from(VLAN_POOL), state=st.sampled_from(STATES))
    def vlan_state(self, at: str, vid: int, state: str) -> None:
        """A per-VLAN STP state on one port."""
        if self.model.vlan_state(at, vid) is None:
            return
        self._both(at, "vlan_set", vid, state=state)

    @precondition(lambda self: bool(self.model.vlan_entries()))
    @rule()
    def flush(self) -> None:
        """Forget dynamic entries of every VLAN."""
        self.log.append("fdb_flush")
        self.model.fdb_flush()
        self.live.br.fdb_flush()

    @invariant()
    def fdb_agrees(self) -> None:
        """The fdb, keyed by (MAC, VLAN), is the model's."""
        model = {key: e.port for key, e in self.model.vlan_entries().items()}
        kernel = self.live.fdb()
        if model != kernel:
            diff = sorted(
                f"{mac} vlan {vid}: model {model.get((mac, vid))}, kernel {kernel.get((mac, vid))}"
                for mac, vid in model.keys() ^ kernel.keys()
                | {k for k in model.keys() & kernel.keys() if model[k] != kernel[k]}
            )
            self._fail("fdb differs: " + "; ".join(diff))

    # --- helpers -------------------------------------------------------------------------

    def _frame(self, sender: str, draw: dict[str, Any]) -> bytes:
        refs = {**{f"{n}.mac": m for n, m in MACS.items()}, "br0.mac": BRIDGE_MAC}
        refs.update({f"{n}.port_mac": m for n, m in self.live.port_macs.items()})
        src = refs.get(draw["src"], draw["src"]) if draw["src"] != "self" else MACS[sender]
        dst = refs.get(draw["dst"], draw["dst"])
        head = bytes.fromhex(dst.replace(":", "") + src.replace(":", ""))
        tag = b""
        if draw["tag"] is not None:
            tpid, tci = draw["tag"]
            tag = tpid.to_bytes(2, "big") + tci.to_bytes(2, "big")
        etype: int = draw["type"]
        payload: bytes = draw["payload"]
        return head + tag + etype.to_bytes(2, "big") + payload

    def _both(self, at: str, method: str, vid: int, **kw: Any) -> None:
        """Apply a membership change to model and kernel: both accept it or both refuse it."""
        self.log.append(f"{method} {at} {vid} {kw}")
        try:
            getattr(self.model, method)(at, vid, **kw)
            model_ok = True
        except LabError:
            model_ok = False
        port = self.live.br.port(self.live.endpoints[at])
        try:
            getattr(port, method)(vid, **kw)
            kernel_ok = True
        except LabError as exc:
            kernel_ok = False
            refusal = str(exc)
        if model_ok != kernel_ok:
            side = "kernel" if model_ok else "model"
            why = f" ({refusal})" if not kernel_ok else ""
            self._fail(f"{method} {at} {vid} {kw}: the {side} refused it{why}")

    def _fail(self, message: str) -> None:
        steps = "\n    ".join(self.log[-30:])
        raise AssertionError(f"{message}\n  steps so far:\n    {steps}")
