"""The option names a scenario may use and the kind of value each takes.

Names are the public API's friendly names (``lab.bridge(**options)``, ``port.set(**options)``), so
a scenario reads like the Python test it replaces. Ranges here only stop absurd input at load time
(a typo'd ``ageing_time: 3000000000``); the kernel stays the judge of what it accepts, and a
scenario can assert a rejection with ``rejected: true``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vlab.scenario.features import SYMBOLS

U32 = 2**32 - 1


@dataclass(frozen=True)
class Kind:
    """The shape of an option's value."""

    type: Literal["bool", "seconds", "int", "mac", "choice"]
    lo: float = 0
    hi: float = 0
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        """What a user may write, for error messages."""
        if self.type == "bool":
            return "true or false"
        if self.type == "seconds":
            return f"seconds from {self.lo:g} to {self.hi:.0f}"
        if self.type == "int":
            return f"an integer from {int(self.lo)} to {int(self.hi)}"
        if self.type == "mac":
            return "a MAC address such as 01:80:c2:00:00:00"
        return "one of " + ", ".join(self.choices)


BOOL = Kind("bool")


def seconds(hi: float) -> Kind:
    """Seconds as in the public API (the kernel's centiseconds are the core's business)."""
    return Kind("seconds", 0, hi)


def integer(lo: int, hi: int) -> Kind:
    """An integer in [lo, hi]."""
    return Kind("int", lo, hi)


BRIDGE_OPTIONS: dict[str, Kind] = {
    "ageing_time": seconds(1_000_000),
    "stp": BOOL,
    "forward_delay": seconds(1000),
    "hello_time": seconds(1000),
    "max_age": seconds(1000),
    "priority": integer(0, 65535),
    "group_fwd_mask": integer(0, 0xFFFF),
    "group_address": Kind("mac"),
    "multicast_snooping": BOOL,
    "multicast_querier": BOOL,
    "multicast_router": integer(0, 2),
    "multicast_query_interval": seconds(86400),
    "multicast_query_response_interval": seconds(86400),
    "multicast_last_member_interval": seconds(86400),
    "multicast_membership_interval": seconds(86400),
    "multicast_last_member_count": integer(0, U32),
    "multicast_igmp_version": integer(2, 3),
    "multicast_mld_version": integer(1, 2),
    "vlan_filtering": BOOL,
    "fdb_max_learned": integer(0, U32),
    "no_linklocal_learn": BOOL,
    "mac": Kind("mac"),
    "mtu": integer(68, 65535),
}

PORT_STATES = ("disabled", "listening", "learning", "forwarding", "blocking")

PORT_OPTIONS: dict[str, Kind] = {
    "learning": BOOL,
    "flood": BOOL,
    "mcast_flood": BOOL,
    "bcast_flood": BOOL,
    "isolated": BOOL,
    "hairpin": BOOL,
    "locked": BOOL,
    "mab": BOOL,
    "group_fwd_mask": integer(0, 0xFFFF),
    "neigh_suppress": BOOL,
    "proxy_arp": BOOL,
    "state": Kind("choice", choices=PORT_STATES),
    "priority": integer(0, 63),
    "cost": integer(1, 65535),
    "multicast_router": integer(0, 3),
    "mcast_to_unicast": BOOL,
    "fast_leave": BOOL,
}

FEATURES = tuple(SYMBOLS)
"""Kernel features a scenario may declare under ``requires``; absent ones make it a skip."""
