"""Bare ports and moving ports between bridges.

A bare port is a bridge port with no endpoint behind it: a veth whose peer stays, up and
unused, in the switch namespace, so the port has carrier and its own MAC (a ``local`` fdb
entry) — what the selftests get from a spare switch port. ``detach``/``attach`` are
``ip link set PORT nomaster`` / ``master BR``, for any port of the lab.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlab import limits
from vlab import rtnl as nl
from vlab.errors import LabError

if TYPE_CHECKING:
    from vlab.bridge import Bridge, Port
    from vlab.lab import Lab


def bare_port(lab: Lab, br: Bridge, mac: str) -> Port:
    from vlab.bridge import Port

    switch = lab._switch
    name = lab._next("port")
    peer = f"{name}p"
    try:
        # both ends in the switch namespace: let the kernel pick the ifindexes, then read them
        switch.links.add_veth(name, 0, mac, br.index, peer, "fe" + mac[2:], switch.ns.fd, 0)
        lab._undo.append(lambda: switch.links.delete(switch.links.index_of(name)))
        index, peer_index = switch.links.index_of(name), switch.links.index_of(peer)
        switch.next_index = max(switch.next_index, index + 1, peer_index + 1)
        switch.links.set_link(peer_index)
    except OSError as exc:
        if exc.errno in limits.FD_ERRNOS:
            raise
        raise LabError(f"port on {br.name} with mac {mac}: {exc.strerror}") from None
    port = Port(br, name, index, None, mac)
    br.ports[name] = port
    lab._topology_changed()
    return port


def set_master(lab: Lab, port: Port, master: int) -> None:
    try:
        lab._switch_rtnl.request(
            nl.RTM_NEWLINK, nl._IFINFO.pack(0, 0, port.index, 0, 0) + nl.link_attrs(master=master)
        )
    except OSError as exc:
        raise LabError(f"port {port.name}: cannot change its bridge: {exc.strerror}") from None
