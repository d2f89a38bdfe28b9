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
    from vlab.switch import Switch


def bare_port(switch: Switch, br: Bridge, mac: str) -> Port:
    """A veth whose one end is a port of ``br`` and whose peer stays up, unused, beside it."""
    from vlab.bridge import Port

    name = switch.next_name("port")
    peer = f"{name}p"
    try:
        # both ends in the switch namespace: let the kernel pick the ifindexes, then read them
        switch.links.add_veth(name, 0, mac, br.index, peer, "fe" + mac[2:], switch.ns.fd, 0)
        switch.on_undo(lambda: switch.links.delete(switch.links.index_of(name)))
        index, peer_index = switch.links.index_of(name), switch.links.index_of(peer)
        switch.space.claim(max(index, peer_index))
        switch.links.set_link(peer_index)
    except OSError as exc:
        if exc.errno in limits.FD_ERRNOS:
            raise
        raise LabError(f"port on {br.name} with mac {mac}: {exc.strerror}") from None
    port = Port(br, name, index, None, mac)
    br.ports[name] = port
    switch.topology_changed()
    return port


def set_master(switch: Switch, port: Port, master: int) -> None:
    """``ip link set PORT master BR`` (``master=0``: nomaster), in the port's namespace."""
    switch.anew = True  # the pool seats its spares anew (see vlab.nsspares)
    try:
        switch.rtnl.request(
            nl.RTM_NEWLINK, nl.ifinfo_as_is(port.index) + nl.link_attrs(master=master)
        )
    except OSError as exc:
        raise LabError(f"port {port.name}: cannot change its bridge: {exc.strerror}") from None
