"""``vlab up FILE``: build a scenario's topology and keep it alive until Ctrl-C.

The lab lives exactly as long as this process: its namespaces are fds held here, so whatever
ends the process (Ctrl-C, SIGTERM, a closed terminal, even SIGKILL) takes the lab with it.
While it runs, a state file tells ``vlab exec`` and ``vlab show`` which fd is which namespace.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import FrameType
from typing import Any

from vlab import rootless, tools
from vlab.cli import state
from vlab.cli.table import table
from vlab.errors import LabError
from vlab.lab import Lab

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stop(Exception):
    """A signal asked the lab to come down."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    for sig in STOP_SIGNALS:  # a second Ctrl-C must not interrupt the teardown
        signal.signal(sig, signal.SIG_IGN)
    raise Stop(signum)


def lab_namespaces(lab: Lab) -> dict[str, int]:
    """``{namespace name: fd}`` of every namespace the lab holds (switch, upstream, hosts)."""
    return {name: ns.fd for name, ns in lab.namespaces().items()}


def nodes_of(lab: Lab) -> list[state.Node]:
    """What a user can name in this lab, with where each thing lives."""
    nodes = [state.Node(br.name, "bridge", br.switch.name, br.mac) for br in lab.bridges.values()]
    for ep in lab.endpoints.values():
        ns = getattr(ep, "ns", None)
        nodes.append(
            state.Node(
                name=ep.name,
                kind=getattr(ep, "show_kind", ep.kind),  # e.g. "vm/macvtap bridge"
                ns=ns.name if ns is not None else "switch",
                mac=ep.mac,
                bridge=ep.bridge.name if ep.bridge is not None else None,
                port=ep.port,
                port_mac=getattr(ep, "tap_mac", None),
                ifname=getattr(ep, "ifname", None),
            )
        )
    for cable in lab.cables.values():
        a, b = cable.ports
        nodes.append(
            state.Node(
                name=cable.name,
                kind="cable",
                ns="switch",
                mac=a.mac,
                bridge=a.bridge.name,
                port=a.name,
                port_mac=a.mac,
                peer_bridge=b.bridge.name,
                peer_port=b.name,
            )
        )
    return nodes


def reach(node: state.Node) -> str:
    """How a user gets at a node from another shell."""
    if node.kind.startswith("vm/macvtap"):
        return f"its macvtap: vlab exec {node.ns} -- {tools.tcpdump_hint(node.port)}"
    if node.kind == "vm":
        return f"its tap: vlab exec {node.bridge} -- {tools.tcpdump_hint(node.port)}"
    if node.kind == "bridge":
        return f"vlab exec {node.name} -- bridge fdb show br {node.name}"
    if node.kind == "cable":
        return f"vlab exec {node.bridge} -- bridge link show dev {node.port}"
    return f"vlab exec {node.name} -- ip -br link"


def describe(running: state.RunningLab) -> str:
    rows = []
    for n in running.nodes:
        own = f"{n.ifname} in {n.ns}" if n.ifname else ("-" if n.kind == "bridge" else "tap fd")
        rows.append((n.name, n.kind, n.mac, own, n.port or "-", n.bridge or "-", reach(n)))
    return table(("NODE", "KIND", "MAC", "NIC", "PORT", "BRIDGE", "REACH WITH"), rows)


def up(file: str, name: str | None = None) -> int:
    from vlab.scenario import ScenarioError, load_scenario
    from vlab.scenario.features import missing
    from vlab.scenario.runner import build_topology

    try:
        scenario = load_scenario(file)
    except ScenarioError as exc:
        raise LabError(str(exc).splitlines()[0]) from None
    except OSError as exc:
        raise LabError(f"cannot read {file}: {exc.strerror}") from None
    lacking = missing(scenario.requires)
    if lacking:
        raise LabError(f"{file}: {lacking}")
    for sig in STOP_SIGNALS:
        signal.signal(sig, _on_signal)
    running: state.RunningLab | None = None
    lab: Lab | None = None
    try:
        lab = Lab(name=name or Path(file).stem)
        # the scenario's LabLike protocol types uplink's arguments differently from Lab's
        any_lab: Any = lab
        build_topology(scenario, any_lab)
        running = state.RunningLab(
            pid=os.getpid(),
            start=state.start_time(os.getpid()) or 0,
            name=lab.name,
            source=str(Path(file).resolve()),
            rootless=rootless.in_user_namespace(),
            namespaces=lab_namespaces(lab),
            nodes=nodes_of(lab),
        )
        path = state.publish(running)
        print(f"lab {lab.name} is up: {scenario.name}")
        print()
        print(describe(running))
        print()
        print(f"pid {running.pid}, state in {path}")
        print("look inside: vlab show    run a command: vlab exec NODE -- CMD...")
        print("Ctrl-C tears the lab down", flush=True)
        while True:
            signal.pause()
    except Stop as stop:
        reason = str(stop)
    finally:
        if running is not None:
            state.unpublish(running)
        if lab is not None:
            lab.close()
    print(f"{reason}: lab {name or Path(file).stem} torn down", flush=True)
    return 0
