"""Hypothesis strategies for bridge labs: addresses, frames, bridge and port configurations.

Every strategy here draws only values the kernel accepts and the reference model
(:class:`vlab.reference.BridgeModel`) predicts, so a failing property means the bridge and the model
disagree, never that the test asked for something impossible. Each docstring states what is
guaranteed; the shrinking direction is towards the simplest case (unicast, untagged, empty
payload, default options). "fact N" refers to the project's docs/bridge-facts.md.
"""

from __future__ import annotations

from typing import Literal, TypeAlias, TypedDict

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

from vlab import options as table
from vlab.reference.bridge import BROADCAST, LINK_LOCAL, PARSED_ETHERTYPES

MacKind: TypeAlias = Literal["unicast", "multicast", "broadcast", "link_local", "any"]

TAG_ETHERTYPES = frozenset({0x8100, 0x88A8, 0x9100})
"""802.1Q, 802.1ad and the old QinQ TPID: these mark a tag, never a payload type."""

GROUP_ADDRESSES = tuple(a for a in LINK_LOCAL if table.group_address_rule(a) is None)
"""What the kernel accepts as the bridge's group_address (fact 9), from the option table."""

ENDPOINT_STATES = tuple(table.PORT_STATES)


def _option(kind: str, name: str) -> table.Option:
    """An option of the lab's table (:mod:`vlab.options`): a strategy for an option the table
    no longer has fails at import, not in a property test's first example."""
    return (table.BRIDGE_OPTIONS if kind == "bridge" else table.PORT_OPTIONS)[name]


def _flag(kind: str, name: str) -> st.SearchStrategy[object]:
    option = _option(kind, name)
    if option.kind != "bool":
        raise TypeError(f"{kind} option {name} is {option.kind}, not a flag")
    return st.booleans()


def _number(kind: str, name: str, lo: int, hi: int) -> st.SearchStrategy[int]:
    """Integers in ``lo..hi``, which must lie in the table's range; values the table's kernel
    rule refuses are made acceptable by clearing the refused bits (the mask rules)."""
    option = _option(kind, name)
    if not option.lo <= lo <= hi <= option.hi:
        raise ValueError(f"{kind} option {name}: {lo}..{hi} is outside {option.lo}..{option.hi}")
    check = option.check
    if check is None:
        return st.integers(lo, hi)
    refused = 0
    for bit in range(16):
        if check(1 << bit) is not None:
            refused |= 1 << bit
    return st.integers(lo, hi).map(lambda value: value & ~refused)


def _mac(octets: bytes | list[int]) -> str:
    return ":".join(f"{b:02x}" for b in octets)


def macs(kind: MacKind = "unicast", local_only: bool = True) -> st.SearchStrategy[str]:
    """MAC addresses, lower-case with colons, of one kind.

    - ``unicast``: group bit clear, never all-zero; with ``local_only`` (the default) also the
      locally administered bit set, so no real vendor's address is ever generated.
    - ``multicast``: group bit set, but neither broadcast nor 01:80:c2:00:00:0X (link-local has
      rules of its own); includes 01:00:5e/33:33 and 01:80:c2:00:00:1X lookalikes.
    - ``broadcast``: ff:ff:ff:ff:ff:ff.
    - ``link_local``: 01:80:c2:00:00:00..0f.
    - ``any``: any of the above, each kind equally likely.

    ``local_only`` applies to unicast addresses only.
    """
    if kind == "unicast":
        first = st.integers(0, 255).map(lambda b: (b & 0xFC) | (0x02 if local_only else 0))
        octets = st.tuples(first, st.binary(min_size=5, max_size=5))
        addresses = octets.map(lambda t: _mac([t[0], *t[1]]))
        return addresses.filter(lambda m: m != "00:00:00:00:00:00")
    if kind == "multicast":
        first = st.integers(0, 255).map(lambda b: b | 0x01)
        lookalikes = st.sampled_from(["01:00:5e", "33:33", "01:80:c2:00:00"])
        random = st.tuples(first, st.binary(min_size=5, max_size=5)).map(
            lambda t: _mac([t[0], *t[1]])
        )
        known = st.tuples(lookalikes, st.binary(min_size=6, max_size=6)).map(
            lambda t: (t[0] + ":" + _mac(t[1]))[:17]
        )
        return st.one_of(random, known).filter(lambda m: m != BROADCAST and m not in LINK_LOCAL)
    if kind == "broadcast":
        return st.just(BROADCAST)
    if kind == "link_local":
        return st.sampled_from(LINK_LOCAL)
    if kind == "any":
        return st.one_of(
            macs("unicast", local_only), macs("multicast"), macs("broadcast"), macs("link_local")
        )
    raise InvalidArgument(f"macs(kind={kind!r}): expected unicast, multicast, broadcast, ...")


def invalid_sources() -> st.SearchStrategy[str]:
    """Source addresses the bridge drops on sight (fact 6): all-zero, broadcast, multicast."""
    return st.one_of(
        st.just("00:00:00:00:00:00"), macs("broadcast"), macs("multicast"), macs("link_local")
    )


def ethertypes(parsed: bool = False) -> st.SearchStrategy[int]:
    """Ethertypes (>= 0x0600) of untagged payloads; shrinks towards 0x0600.

    Never a tag TPID (0x8100, 0x88a8, 0x9100). Unless ``parsed``, also never IPv4, IPv6, ARP or
    RARP: the bridge and br_netfilter look into those payloads, so their fate depends on the
    bytes and on sysctls, and :class:`~vlab.reference.BridgeModel` refuses them. A few ethertypes
    with a name (LLDP, EAPOL, slow protocols, experimental) are drawn more often.
    """
    excluded = TAG_ETHERTYPES if parsed else TAG_ETHERTYPES | set(PARSED_ETHERTYPES)
    named = [0x88B5, 0x88B6, 0x88CC, 0x888E, 0x8809, 0x88F7, 0x0800, 0x86DD, 0x0806]
    return st.one_of(
        st.integers(0x0600, 0xFFFF), st.sampled_from([t for t in named if t not in excluded])
    ).filter(lambda t: t not in excluded)


def _as_strategy(
    value: str | st.SearchStrategy[str] | None, default: st.SearchStrategy[str]
) -> st.SearchStrategy[str]:
    if value is None:
        return default
    if isinstance(value, str):
        return st.just(value)
    return value


@st.composite
def frames(
    draw: st.DrawFn,
    src: str | st.SearchStrategy[str] | None = None,
    dst: str | st.SearchStrategy[str] | None = None,
    vlan: bool | None = None,
    max_size: int = 1514,
    invalid_src: bool = False,
    ethertype: int | st.SearchStrategy[int] | None = None,
) -> Ether:
    """Scapy Ether frames, optionally 802.1Q-tagged, ``len(bytes(frame)) <= max_size``.

    - ``src``/``dst``: a MAC, a strategy of MACs, or None for ``macs("unicast")`` /
      ``macs("any")``. The source is a valid unicast address unless ``invalid_src=True``, which
      draws from :func:`invalid_sources` (and cannot be combined with ``src``).
    - ``vlan``: None = tagged or not, True = always, False = never. The tag has any VID
      (0-4095), PCP and DEI; tagged frames are at least 20 bytes, since the kernel drops shorter
      ones before the bridge sees them.
    - ``ethertype``: an int or strategy; by default :func:`ethertypes`, so the model predicts
      every frame. The payload is opaque bytes, 0 up to what ``max_size`` leaves.
    - 1514 keeps frames sendable from a 1500-MTU veth (EMSGSIZE beyond, fact 21) and
      forwardable by the bridge, tag or not.
    """
    if invalid_src and src is not None:
        raise InvalidArgument("frames(): pass either src= or invalid_src=True, not both")
    tagged = draw(st.booleans()) if vlan is None else vlan
    header = 18 if tagged else 14
    if max_size < header + (2 if tagged else 0):
        raise InvalidArgument(f"frames(max_size={max_size}) leaves no room for the header")
    source = draw(invalid_sources() if invalid_src else _as_strategy(src, macs("unicast")))
    dest = draw(_as_strategy(dst, macs("any")))
    if ethertype is None:
        etype = draw(ethertypes())
    elif isinstance(ethertype, int):
        etype = ethertype
    else:
        etype = draw(ethertype)
    payload = draw(st.binary(min_size=2 if tagged else 0, max_size=max_size - header))
    if tagged:
        tag = Dot1Q(
            prio=draw(st.integers(0, 7)),
            dei=draw(st.integers(0, 1)),
            vlan=draw(st.integers(0, 4095)),
            type=etype,
        )
        frame: Ether = Ether(dst=dest, src=source, type=0x8100) / tag
    else:
        frame = Ether(dst=dest, src=source, type=etype)
    return frame / Raw(payload) if payload else frame


def bridge_options(stp: bool = True) -> st.SearchStrategy[dict[str, object]]:
    """Bridge options in the public API's names and units, each key present or not.

    Guarantees: the kernel accepts every value; ``ageing_time`` is 10..3600 s so nothing ages
    during a test by accident; ``group_fwd_mask`` never has bits 0-2; ``group_address`` is one of
    the addresses the kernel allows; ``fdb_max_learned`` is 0 (no limit) to 8; there is never a
    multicast querier (it would send queries to every port). With ``stp`` the bridge may run STP;
    such a bridge sends BPDUs from its port MACs every hello_time, and must be switched to STP
    after its ports are forwarding (fact 10) for the model's assumption to hold.
    """
    optional: dict[str, st.SearchStrategy[object]] = {
        "ageing_time": _number("bridge", "ageing_time", 10, 3600),
        "group_fwd_mask": _number("bridge", "group_fwd_mask", 0, 0xFFFF),
        "group_address": st.sampled_from(GROUP_ADDRESSES),
        "no_linklocal_learn": _flag("bridge", "no_linklocal_learn"),
        "fdb_max_learned": _number("bridge", "fdb_max_learned", 0, 8),
        "multicast_snooping": _flag("bridge", "multicast_snooping"),
    }
    if stp:
        optional["stp"] = _flag("bridge", "stp")
    return st.fixed_dictionaries({}, optional=optional)


@st.composite
def port_options(draw: st.DrawFn, state: bool = False) -> dict[str, object]:
    """Bridge-port options, each key present or not, as one message the kernel accepts.

    Draws learning, flood, mcast_flood, bcast_flood, isolated, hairpin, locked, proxy_arp and a
    ``group_fwd_mask`` without bit 1; ``mab`` only together with ``locked=True`` and learning on
    (so apply the dict in one call). With ``state``, also a manual port state (STP must be off).
    """
    flags = ("learning", "flood", "mcast_flood", "bcast_flood", "isolated", "hairpin", "locked")
    optional: dict[str, st.SearchStrategy[object]] = {name: _flag("port", name) for name in flags}
    optional["proxy_arp"] = _flag("port", "proxy_arp")
    optional["group_fwd_mask"] = _number("port", "group_fwd_mask", 0, 0xFFFF)
    if state:
        optional["state"] = st.sampled_from(ENDPOINT_STATES)
    options: dict[str, object] = draw(st.fixed_dictionaries({}, optional=optional))
    if options.get("locked") and options.get("learning", True) and draw(st.booleans()):
        options["mab"] = True
    return options


class Topology(TypedDict):
    """A lab to build: endpoint counts, the bridge's options and each endpoint's port options."""

    vms: int
    hosts: int
    uplink: bool
    endpoints: list[str]
    """Names in build order: vm1..vmN, h1..hN, then "uplink" if there is one."""
    bridge: dict[str, object]
    ports: dict[str, dict[str, object]]
    """Port options by endpoint name; every endpoint has an entry (often empty)."""


@st.composite
def topologies(draw: st.DrawFn, max_vms: int = 4, max_hosts: int = 2, stp: bool = True) -> Topology:
    """Labs of 1..``max_vms`` VMs, 0..``max_hosts`` hosts and maybe an uplink, with options.

    Bridge options come from :func:`bridge_options` and port options from :func:`port_options`
    (no manual states), so everything is accepted by the kernel and predicted by the model.
    """
    if max_vms < 1 or max_hosts < 0:
        raise InvalidArgument("topologies() needs max_vms >= 1 and max_hosts >= 0")
    vms = draw(st.integers(1, max_vms))
    hosts = draw(st.integers(0, max_hosts))
    uplink = draw(st.booleans())
    names = [f"vm{i}" for i in range(1, vms + 1)] + [f"h{i}" for i in range(1, hosts + 1)]
    if uplink:
        names.append("uplink")
    return Topology(
        vms=vms,
        hosts=hosts,
        uplink=uplink,
        endpoints=names,
        bridge=draw(bridge_options(stp=stp)),
        ports={name: draw(port_options()) for name in names},
    )
