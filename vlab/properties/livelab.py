"""The live lab, kept across examples: built once per topology and reset between examples."""

from __future__ import annotations

from vlab.bridge import Bridge
from vlab.endpoints import Endpoint
from vlab.lab import Lab
from vlab.properties.topology import (
    BRIDGE,
    BRIDGE_DEFAULTS,
    BRIDGE_MAC,
    DEFAULT_PORT,
    MachineTopology,
)
from vlab.reference.bridge import LearnedEntry


def _mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


class LiveLab:
    """A lab built once per test run and reset, not rebuilt, between examples.

    Resetting costs a few netlink requests; building costs tens of milliseconds and would
    otherwise dominate shrinking, which replays hundreds of short examples.
    """

    def __init__(self, topology: MachineTopology) -> None:
        self.topology = topology
        self.lab = Lab(name="forwarding-machine")
        try:
            self._build()
        except BaseException:
            self.lab.close()
            raise

    def _build(self) -> None:
        options = dict(self.topology.bridge)
        stp = bool(options.pop("stp", False))
        self.br: Bridge = self.lab.bridge(BRIDGE, mac=BRIDGE_MAC, **options)
        self.endpoints: dict[str, Endpoint] = {}
        for name in self.topology.names():
            mac = self.topology.mac(name)
            kind = self.topology.kind(name)
            if kind == "vm":
                ep: Endpoint = self.lab.vm(name, bridge=self.br, mac=mac)
            elif kind == "host":
                ep = self.lab.host(name, bridge=self.br, mac=mac)
            else:
                ep = self.lab.uplink(self.br, mac=mac, name=name)
            self.endpoints[name] = ep
        self.lab.ready()
        if stp:  # after every port forwards: they stay forwarding (docs/bridge-facts.md fact 10)
            self.br.set(stp=True)
        by_port = {ep.port: name for name, ep in self.endpoints.items()}
        self.port_macs = {name: self.br.port(ep).mac for name, ep in self.endpoints.items()}
        self.refs: dict[str, str] = {f"{BRIDGE}.mac": BRIDGE_MAC}
        for name, ep in self.endpoints.items():
            self.refs[f"{name}.mac"] = ep.mac
            self.refs[f"{name}.port_mac"] = self.port_macs[name]
        self._bytes = {ref: _mac_bytes(mac) for ref, mac in self.refs.items()}
        self.names_of = {mac: ref for ref, mac in self.refs.items()}
        self.local_macs = frozenset(_mac_bytes(m) for m in (BRIDGE_MAC, *self.port_macs.values()))
        self.port_of = by_port
        self.bridge_options = {
            k: dict(self.topology.bridge).get(k, v) for k, v in BRIDGE_DEFAULTS.items()
        }
        self.dirty_ports: set[str] = set()
        self.dirty_bridge = False
        self.down: set[str] = set()

    def resolve(self, ref: str) -> bytes:
        """The six bytes of a symbolic address (``vm1.mac``, ``h1.port_mac``) or a literal MAC."""
        found = self._bytes.get(ref)
        if found is None:
            found = self._bytes[ref] = _mac_bytes(ref)
        return found

    def kernel_emitted(self, data: bytes) -> bool:
        """An LLC frame from the bridge's own MACs: a BPDU the bridge sent, not test traffic.

        Generated frames always carry an ethertype (>= 0x0600), so this never hides one.
        """
        return data[12:14] < b"\x06\x00" and data[6:12] in self.local_macs

    def set_carrier(self, name: str, up: bool) -> None:
        """Change a cable; the lab returns once the bridge port has acted on it."""
        self.endpoints[name].set_carrier(up)
        if up:
            self.down.discard(name)
        else:
            self.down.add(name)

    def reset(self) -> None:
        """Back to the state every example starts from; the model is simply made anew."""
        for name in sorted(self.down):
            self.set_carrier(name, True)
        for name in sorted(self.dirty_ports):
            defaults = dict(DEFAULT_PORT)
            if not self.topology.stp:
                defaults["state"] = "forwarding"
            self.br.port(self.endpoints[name]).set(**defaults)
        self.dirty_ports.clear()
        if self.dirty_bridge:
            self.br.set(**self.bridge_options)
            self.dirty_bridge = False
        self.br.fdb_flush()
        for entry in self.br.fdb_entries():
            if not entry.local:
                self.br.fdb_del(entry.mac, entry.port)
        self.lab.settle()
        for ep in self.endpoints.values():
            ep.clear()

    def fdb(self) -> dict[str, tuple[str, str]]:
        """``{mac: (endpoint, how)}`` of the kernel's non-local entries."""
        return {
            e.mac: (self.port_of[e.port], e.how)
            for e in self.br.fdb_entries()
            if not e.local and e.port in self.port_of
        }

    def close(self) -> None:
        """Tear the lab down."""
        self.lab.close()


def _model_how(entry: LearnedEntry) -> str:
    if entry.locked:
        return "locked"
    return ("static" if entry.static else "learnt") + (", sticky" if entry.sticky else "")


# shared with the machine and the reproducer
model_how = _model_how
