"""``vlab demo``: the seed's picture, VM -> tap -> bridge -> uplink, made to run in one command.

It builds a bridge with two VMs (tap ports), a host (veth) and an uplink (the pNIC), then sends
the four frames that show what a learning bridge does: an unknown unicast is flooded, the bridge
learns the sender, the reply from the uplink goes to that VM only, and a broadcast reaches every
port but its ingress. It prints what arrived where next to what should have, then the fdb and
``lab.where``; the exit code is 0 only when every frame went exactly where the bridge should put
it, so the demo doubles as a smoke test of a machine.
"""

from __future__ import annotations

from dataclasses import dataclass

from scapy.layers.l2 import Ether

from vlab.cli.table import table
from vlab.endpoints import Endpoint
from vlab.frames import Mask, summary
from vlab.lab import Lab

GATEWAY = "02:00:00:00:00:fe"  # a router beyond the uplink, unknown to the bridge at first
PAYLOAD = b"vlab demo frame, padded to the Ethernet minimum ...."


@dataclass
class Step:
    title: str
    sender: Endpoint
    frame: Ether
    expected: set[str]  # names of the endpoints that must receive it


@dataclass
class Outcome:
    step: Step
    arrived: set[str]

    @property
    def ok(self) -> bool:
        return self.arrived == self.step.expected


def _frame(src: str, dst: str, n: int) -> Ether:
    return Ether(src=src, dst=dst, type=0x88B5) / (PAYLOAD + bytes([n]))


def play(lab: Lab, step: Step) -> Outcome:
    """Send one frame and collect, from every endpoint, whether it arrived there."""
    step.sender.send(step.frame)
    lab.settle()
    mask = Mask(step.frame)
    arrived = set()
    for ep in lab.endpoints.values():
        if any(mask.matches(bytes(got)) for got in ep.frames()):
            arrived.add(ep.name)
    return Outcome(step, arrived)


def _cell(name: str, outcome: Outcome) -> str:
    if name == outcome.step.sender.name:
        return "sent" + (" ECHOED" if name in outcome.arrived else "")
    got, want = name in outcome.arrived, name in outcome.step.expected
    if got and want:
        return "got"
    if got:
        return "got UNEXPECTED"
    return "MISSING" if want else "-"


def main(verbose: bool = False) -> int:
    with Lab(name="demo") as lab:
        br = lab.bridge("br0", ageing_time=300)
        vm1 = lab.vm("vm1", bridge=br, mac="52:54:00:00:00:01")
        vm2 = lab.vm("vm2", bridge=br, mac="52:54:00:00:00:02")
        h1 = lab.host("h1", bridge=br, mac="02:00:00:00:00:11")
        up = lab.uplink(br)
        print(lab.describe())
        print()
        names = list(lab.endpoints)
        steps = [
            Step(
                "1 unknown unicast: vm1 -> gateway, flooded",
                vm1,
                _frame(vm1.mac, GATEWAY, 1),
                {"vm2", "h1", up.name},
            ),
            Step(
                "2 reply from the uplink: gateway -> vm1, learnt",
                up,
                _frame(GATEWAY, vm1.mac, 2),
                {"vm1"},
            ),
            Step(
                "3 known unicast: vm1 -> gateway, uplink only",
                vm1,
                _frame(vm1.mac, GATEWAY, 3),
                {up.name},
            ),
            Step(
                "4 broadcast from vm2: everyone but vm2",
                vm2,
                _frame(vm2.mac, "ff:ff:ff:ff:ff:ff", 4),
                {"vm1", "h1", up.name},
            ),
        ]
        outcomes = [play(lab, step) for step in steps]
        rows = [
            (o.step.title, *(_cell(n, o) for n in names), "ok" if o.ok else "WRONG")
            for o in outcomes
        ]
        print(table(("STEP", *names, "RESULT"), rows))
        if verbose:
            print()
            for o in outcomes:
                print(f"{o.step.title}: {summary(bytes(o.step.frame))}")
        print()
        print(f"fdb of {br.name} (learnt from the frames above):")
        owner = {ep.port: ep.name for ep in lab.endpoints.values()}
        fdb_rows = [(mac, port, owner.get(port, "-")) for mac, port in sorted(br.fdb().items())]
        print(table(("MAC", "PORT", "BEHIND"), fdb_rows, indent="  "))
        print()
        print("lab.where(mac):")
        for mac in (vm1.mac, vm2.mac, h1.mac, GATEWAY):
            print(f"  {lab.where(mac) or f'{mac} is not in any fdb'}")
        fdb_ok = br.fdb().get(vm1.mac) == vm1.port and br.fdb().get(GATEWAY) == up.port
        good = all(o.ok for o in outcomes) and fdb_ok
    print()
    if good:
        print("every frame arrived where the bridge should put it")
        return 0
    print("vlab demo: some frames did not go where a learning bridge puts them (see WRONG above)")
    return 1
