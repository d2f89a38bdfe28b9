"""Hypothesis strategies for VLAN-aware bridges: memberships and tagged frames.

Like :mod:`vlab.strategies`, every value drawn is one the kernel accepts and
:class:`~vlab.reference.vlan.VlanBridgeModel` predicts: payloads the bridge never parses (no IP,
ARP or STP), tagged frames of at least 20 bytes (shorter ones are dropped before the bridge).
Shrinking goes towards untagged frames from the sender's own MAC and VLAN 1 memberships.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from vlab.strategies import ethertypes

VLAN_POOL = (1, 10, 20, 30)
"""The VLANs memberships are drawn from: few, so that frames meet members often."""

TAGGED_VIDS = (*VLAN_POOL, 0, 40)
"""VIDs of drawn tags: the pool, 0 (priority tag: the PVID's) and 40 (a VLAN no port is in)."""

DESTINATIONS = (
    "unknown",
    "ff:ff:ff:ff:ff:ff",
    "01:00:5e:00:00:fb",  # a multicast group the bridge has no mdb entry for
    "01:80:c2:00:00:0e",  # LLDP: kept, learns in its VLAN
    "01:80:c2:00:00:00",  # forwarded with STP off
    "01:80:c2:00:00:0d",  # forwarded by an 802.1ad bridge only
    "br0.mac",
)
UNKNOWN = "02:00:00:00:0b:99"


def vlan_memberships(
    names: tuple[str, ...], pool: tuple[int, ...] = VLAN_POOL
) -> st.SearchStrategy[dict[str, dict[int, tuple[bool, bool]]]]:
    """``{port: {vid: (pvid, untagged)}}``: each port in 0-3 VLANs of ``pool``, at most one of
    them its PVID (or none). Shrinks towards VLAN 1 alone, PVID and untagged (the default)."""

    @st.composite
    def one(draw: st.DrawFn) -> dict[int, tuple[bool, bool]]:
        vids = draw(st.lists(st.sampled_from(pool), max_size=3, unique=True))
        if not vids:
            return {1: (True, True)}
        pvid = draw(st.sampled_from([*vids, None]))
        return {vid: (vid == pvid, draw(st.booleans())) for vid in vids}

    return st.fixed_dictionaries({name: one() for name in names})


@st.composite
def vlan_frames(draw: st.DrawFn, tpids: tuple[int, ...] = (0x8100, 0x88A8)) -> dict[str, Any]:
    """A frame description: ``src`` ("self", another endpoint's ``NAME.mac``, a port MAC or a
    stranger), ``dst`` (an endpoint, unknown, broadcast, multicast, link-local, the bridge),
    ``tag`` (None or ``(tpid, tci)`` with a VID of :data:`TAGGED_VIDS` and any PCP/DEI),
    ``type`` and ``payload``. Endpoint names are those of
    :mod:`vlab.properties.vlan_machine`; it resolves the references."""
    names = ("vm1", "vm2", "vm3", "uplink")
    src = draw(
        st.sampled_from(["self", *(f"{n}.mac" for n in names), "vm1.port_mac", "02:00:00:00:0b:aa"])
    )
    dst = draw(st.sampled_from([*(f"{n}.mac" for n in names), *DESTINATIONS]))
    tagged = draw(st.booleans())
    tag = None
    if tagged:
        tci = (draw(st.integers(0, 7)) << 13) | (draw(st.integers(0, 1)) << 12)
        tag = (draw(st.sampled_from(tpids)), tci | draw(st.sampled_from(TAGGED_VIDS)))
    return {
        "src": src,
        "dst": UNKNOWN if dst == "unknown" else dst,
        "tag": tag,
        "type": draw(ethertypes()),
        "payload": draw(st.binary(min_size=2, max_size=24)),
    }
