"""The forwarding machine across bridges: frames through 2-3 real bridges joined by cables,
checked against :class:`vlab.reference.network.NetworkModel` after every step.

Each example draws a loop-free network (:func:`vlab.network_strategies.network_topologies`),
builds it as a lab, and then sends frames (broadcast, unknown and known unicast, sources that
move between bridges) and unplugs and plugs cables. After each send every endpoint's copies are
counted and compared with the model's, and every bridge's fdb with the model's. A wrong model is
a subclass set as ``model_class``::

    class Machine(NetworkMachine):
        model_class = ForgetsLearningAcrossCables
"""

from __future__ import annotations

import collections
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule
from scapy.layers.l2 import Ether

from vlab.bridge import Bridge
from vlab.cable import Cable
from vlab.endpoints import Endpoint
from vlab.lab import Lab
from vlab.network_strategies import NetworkTopology, network_topologies
from vlab.reference.bridge import BROADCAST, BridgeModel
from vlab.reference.network import CableModel, NetworkModel

UNKNOWN = "02:00:00:00:00:99"


def bridge_mac(index: int) -> str:
    """The pinned MAC of bridge ``index``."""
    return f"02:00:00:00:fe:{index:02x}"


MODELLED_FLAGS = ("learning", "flood", "mcast_flood", "bcast_flood", "isolated", "hairpin")
"""Port options a model is given from the kernel by :func:`model_of_lab`."""


def model_of_lab(lab: Lab, model_class: type[NetworkModel] = NetworkModel) -> NetworkModel:
    """A model of ``lab`` as it is now: one BridgeModel per bridge (its MAC, its ports' MACs,
    the port flags the kernel reports), its cables, and as ``blocked`` every port of an STP
    bridge that the kernel has blocking. Endpoints are named as in the lab; cable ends by their
    port names. The model's fdbs start empty (build it before the frames it should predict)."""
    models = {}
    blocked = set()
    for name, br in lab.bridges.items():
        ports = {}
        for port in br.ports.values():
            key = port.endpoint.name if port.endpoint is not None else port.name
            ports[key] = port.mac
        model = BridgeModel(br.mac, ports)
        for port in br.ports.values():
            key = port.endpoint.name if port.endpoint is not None else port.name
            options = port.options()
            flags = {k: options[k] for k in MODELLED_FLAGS if k in options}
            model.set_port(key, **flags)
            if br.stp and options.get("state") == "blocking":
                blocked.add((name, key))
        models[name] = model
    cables = [
        CableModel(c.name, *((p.bridge.name, p.name) for p in c.ports)) for c in lab.cables.values()
    ]
    return model_class(models, cables, blocked)


class NetworkMachine(RuleBasedStateMachine):
    """A drawn network of real bridges against :attr:`model_class`, checked after every step."""

    model_class: ClassVar[type[NetworkModel]] = NetworkModel

    def __init__(self) -> None:
        super().__init__()
        self.lab: Lab | None = None
        self.sends = 0

    @initialize(topology=network_topologies())
    def build(self, topology: NetworkTopology) -> None:
        """The drawn network as a lab, and the model of the same network."""
        self.topology = topology
        self.lab = lab = Lab(name="network-machine")
        self.bridges: dict[str, Bridge] = {}
        self.endpoints: dict[str, Endpoint] = {}
        for i, name in enumerate(topology.bridges):
            self.bridges[name] = lab.bridge(name, mac=bridge_mac(i))
            for vm in topology.vm_names(i):
                self.endpoints[vm] = lab.vm(vm, bridge=name, mac=topology.mac(vm))
        self.cables: dict[str, Cable] = {}
        for a, b, options in topology.cables:
            port_options: dict[str, Any] = dict(options)
            cable = lab.cable(f"br{a}", f"br{b}", **port_options)
            self.cables[cable.name] = cable
        lab.ready()
        self.model = model_of_lab(lab, self.model_class)

    def teardown(self) -> None:
        """Close the example's lab."""
        if self.lab is not None:
            self.lab.close()

    @rule(data=st.data())
    def send(self, data: st.DataObject) -> None:
        """A frame from a drawn VM, from its own MAC or another's, to a drawn destination."""
        names = list(self.topology.endpoints())
        sender = data.draw(st.sampled_from(names), label="sender")
        src = data.draw(st.sampled_from([sender, *names]), label="source of")
        dst = data.draw(
            st.sampled_from([BROADCAST, UNKNOWN, *(self.topology.mac(n) for n in names)]),
            label="dst",
        )
        self.sends += 1
        frame = bytes(
            Ether(src=self.topology.mac(src), dst=dst, type=0x88B5) / f"n{self.sends}".encode()
        )
        expected = self.model.deliveries(sender, frame)
        self.endpoints[sender].send(frame)
        assert self.lab is not None
        self.lab.settle()
        got: collections.Counter[str] = collections.Counter()
        for name, ep in self.endpoints.items():
            for p in ep.frames():
                if bytes(p) == frame:
                    got[name] += 1
        assert got == expected, (
            f"frame {Ether(frame).summary()} from {sender}: the lab delivered "
            f"{dict(got)}, the model {dict(expected)}"
        )
        self._check_fdb()

    @precondition(lambda self: bool(getattr(self, "cables", None)))
    @rule(data=st.data())
    def carrier(self, data: st.DataObject) -> None:
        """Unplug or plug a drawn cable, in the lab and the model."""
        name = data.draw(st.sampled_from(sorted(self.cables)), label="cable")
        up = data.draw(st.booleans(), label="up")
        self.cables[name].set_carrier(up)
        self.model.set_carrier(name, up)
        self._check_fdb()

    def _check_fdb(self) -> None:
        for name, br in self.bridges.items():
            by_port = {
                p.name: (p.endpoint.name if p.endpoint else p.name) for p in br.ports.values()
            }
            real = {mac: by_port.get(port, port) for mac, port in br.fdb().items()}
            modelled = self.model.fdb(name)
            assert real == modelled, f"fdb of {name}: the lab has {real}, the model {modelled}"
