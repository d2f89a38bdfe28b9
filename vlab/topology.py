"""The lab as text (``lab.describe()``, ``topology.txt`` of a failure): every bridge with every
port the kernel says it has, vlab's or not, and the endpoints that are in no bridge.

vlab's own records say which endpoint is behind which port; the kernel says which ports there
are. A port added behind vlab's back (``lab.run("switch", "ip", "link", "set", "X", "master",
"br0")``) has no record, so the switch namespace's links are read to find it, with its name
and MAC, as ``bridge link`` would show it.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from vlab import rtnl as nl
from vlab.cable import drawing

if TYPE_CHECKING:
    from vlab.bridge import Bridge, Port
    from vlab.lab import Lab
    from vlab.switch import Switch


def kernel_ports(switch: Switch) -> dict[int, list[tuple[str, str, int]]]:
    """``{bridge ifindex: [(port name, port mac, port ifindex), ...]}`` of every port in the
    switch namespace, read from the kernel."""
    out: dict[int, list[tuple[str, str, int]]] = {}
    for body in switch.rtnl.dump(nl.RTM_GETLINK, nl.IFINFO.pack(0, 0, 0, 0, 0)):
        a = nl.attrs(body, nl.IFINFO.size)
        master = a.get(nl.IFLA_MASTER)
        if not master:
            continue
        name = a.get(nl.IFLA_IFNAME, b"\0").rstrip(b"\0").decode()
        mac = ":".join(f"{b:02x}" for b in a.get(nl.IFLA_ADDRESS, b""))
        index = struct.unpack_from("=i", body, 4)[0]
        out.setdefault(struct.unpack("=I", master[:4])[0], []).append((name, mac, index))
    return out


def describe(lab: Lab) -> str:
    """Bridges, their ports (vlab's and the kernel's) and what is cabled to each; endpoints in
    no bridge after them. After the lab's close only what vlab recorded is shown."""
    found: dict[Switch, dict[int, list[tuple[str, str, int]]]] = {}
    lines = [f"lab {lab.name}"]
    for br in lab.bridges.values():
        if br.switch not in found:
            found[br.switch] = {} if lab.closed else kernel_ports(br.switch)
        on = f" on hypervisor {br.switch.name}" if br.switch is not lab.switch else ""
        lines.append(f"  bridge {br.name} mac {br.mac}{on}")
        for port in br.ports.values():
            lines.append(f"    {port.name:<8} {port.describe()}")
        for name, mac, _index in found[br.switch].get(br.index, []):
            if name not in br.ports:
                lines.append(f"    {name:<8} a port vlab did not make (mac {mac})")
    cabled = {id(p.endpoint) for br in lab.bridges.values() for p in br.ports.values()}
    stacked = [e for e in lab.endpoints.values() if e.bridge is not None and id(e) not in cabled]
    if stacked:  # a macvtap VM, a bond, an underlay watch: frames enter through another port
        lines.append("  with no port of their own")
        lines.extend(f"    {ep.port:<8} {ep.describe()}" for ep in stacked)
    lone = [ep for ep in lab.endpoints.values() if ep.bridge is None]
    if lone:
        lines.append("  in no bridge")
        lines.extend(f"    {ep.port:<8} {ep.describe()}" for ep in lone)
    lines.extend(drawing(lab))
    return "\n".join(lines)


def adopt_port(br: Bridge, name: str) -> Port | None:
    """A port of ``br`` that vlab did not make (``lab.run(... "master", "br0")``), found in
    the kernel by name and recorded as a port with no endpoint; None if ``br`` has none."""
    from vlab.bridge import Port

    for found, mac, index in kernel_ports(br.switch).get(br.index, []):
        if found == name:
            port = Port(br, name, index, None, mac)
            port.foreign = True
            br.ports[name] = port
            return port
    return None
