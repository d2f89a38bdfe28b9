"""The baselines vlab is measured against: the same lab built by ``ip`` commands.

This is how lab tools and shell-script testbeds build topologies: one ``ip`` process per object
(``ip netns add``, ``ip tuntap add``, ``ip link add ... type veth``), or the same commands fed
to a single ``ip -batch`` per namespace. The topology matches vlab's (a switch namespace with
the bridge, N taps and the bridge end of a veth whose far end is in an upstream namespace), and
it is torn down with ``ip netns del``. The baseline is favoured: it does not write the quiet
sysctls vlab writes, and its taps have no fd attached (so no carrier to wait for).

Namespaces are named ``vlabbench-<pid>-<n>-{sw,up}`` and are deleted whatever happens: after
every build, on an exception, and by a final sweep of this process's prefix.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count

PREFIX = f"vlabbench-{os.getpid()}-"
_serial = count()
_created: set[str] = set()


def _ip(*args: str, stdin: str | None = None) -> None:
    subprocess.run(["ip", *args], input=stdin, text=True, check=True, stdout=subprocess.DEVNULL)


def _names() -> tuple[str, str]:
    n = next(_serial)
    return f"{PREFIX}{n}-sw", f"{PREFIX}{n}-up"


def _delete(*names: str) -> None:
    for name in names:
        if name in _created:
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
            _created.discard(name)


@contextmanager
def _namespaces() -> Iterator[tuple[str, str]]:
    sw, up = _names()
    _created.update((sw, up))
    try:
        yield sw, up
    finally:
        _delete(sw, up)


def build_ip(vms: int) -> None:
    """Build and destroy the lab with one ``ip`` process per step."""
    with _namespaces() as (sw, up):
        _ip("netns", "add", sw)
        _ip("netns", "add", up)
        _ip("-n", sw, "link", "add", "br0", "type", "bridge")
        _ip("-n", sw, "link", "set", "br0", "up")
        for i in range(vms):
            _ip("-n", sw, "tuntap", "add", "dev", f"vnet{i}", "mode", "tap")
            _ip("-n", sw, "link", "set", f"vnet{i}", "master", "br0", "up")
        _ip("-n", sw, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", up)
        _ip("-n", sw, "link", "set", "eth0", "master", "br0", "up")
        _ip("-n", up, "link", "set", "eth0", "up")
        _ip("netns", "del", sw)
        _ip("netns", "del", up)
        _created.difference_update((sw, up))


def build_batch(vms: int) -> None:
    """Build and destroy the lab with one ``ip -batch`` per namespace."""
    with _namespaces() as (sw, up):
        _ip("-batch", "-", stdin=f"netns add {sw}\nnetns add {up}\n")
        lines = ["link add br0 type bridge", "link set br0 up"]
        for i in range(vms):
            lines += [f"tuntap add dev vnet{i} mode tap", f"link set vnet{i} master br0 up"]
        lines += [
            f"link add eth0 type veth peer name eth0 netns {up}",
            "link set eth0 master br0 up",
        ]
        _ip("-n", sw, "-batch", "-", stdin="\n".join(lines) + "\n")
        _ip("-n", up, "link", "set", "eth0", "up")
        _ip("-batch", "-", stdin=f"netns del {sw}\nnetns del {up}\n")
        _created.difference_update((sw, up))


def sweep() -> list[str]:
    """Delete every namespace of this process's prefix still listed; return their names."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    stale = [line.split()[0] for line in out.stdout.splitlines() if line.startswith(PREFIX)]
    for name in stale:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
    _created.clear()
    return stale
