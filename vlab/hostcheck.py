"""Proof that a test session left the host's network namespace exactly as it found it.

vlab promises never to touch the namespace it runs in: every lab lives in anonymous namespaces of
its own. Promises about the host are cheap, so CI checks this one: a snapshot of what vlab could
conceivably change there (links, addresses, routes, named namespaces, the net sysctls vlab writes
inside its labs) is taken before the suite and compared after it; any difference fails the run.

The snapshot must describe the *host* namespace even if some thread of the process were stuck in
a lab namespace (that would itself be a bug worth catching), so it is always read from a fresh
thread that first enters the reference namespace by fd and checks that it got there; ``ip`` is
forked from that thread and inherits its namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from vlab.errors import LabError
from vlab.netns import setns

_T = TypeVar("_T")

#: Net sysctls vlab writes inside its own namespaces; in the host they must never change.
SYSCTLS = (
    "net.ipv6.conf.all.disable_ipv6",
    "net.ipv6.conf.default.disable_ipv6",
    "net.ipv4.igmp_link_local_mcast_reports",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.bridge.bridge-nf-call-arptables",
)
NETNS_DIRS = ("/run/netns", "/var/run/netns")
_LINK_KEYS = ("ifindex", "link_type", "address", "mtu", "master", "operstate", "txqlen", "qdisc")
_ROUTE_KEYS = (
    "type",
    "dst",
    "gateway",
    "dev",
    "table",
    "protocol",
    "scope",
    "prefsrc",
    "metric",
    "pref",
)


@dataclass(frozen=True)
class Snapshot:
    """What vlab could change in one namespace, as sets of comparable one-line facts."""

    ns_inode: int
    facts: dict[str, frozenset[str]] = field(default_factory=dict)

    def with_fact(self, section: str, fact: str) -> Snapshot:
        """A copy with one more fact: how tests show that a difference is caught."""
        facts = dict(self.facts)
        facts[section] = facts.get(section, frozenset()) | {fact}
        return Snapshot(self.ns_inode, facts)

    def without_fact(self, section: str, fact: str) -> Snapshot:
        facts = dict(self.facts)
        facts[section] = facts.get(section, frozenset()) - {fact}
        return Snapshot(self.ns_inode, facts)


class Reference:
    """The namespace to watch, pinned by an fd so it can be re-entered from any thread."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.inode = os.fstat(fd).st_ino

    @classmethod
    def current(cls) -> Reference:
        """The calling thread's namespace; call it before any lab exists (session start)."""
        return cls(os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def snapshot(self) -> Snapshot:
        """Read the namespace from a fresh thread that has entered it."""
        return _in_namespace(self, lambda: _collect(self.inode))

    def stray_threads(self) -> list[str]:
        """Threads of this process that sit in another namespace: a leaked ``setns``."""
        stray = []
        for tid in os.listdir("/proc/self/task"):
            try:
                inode = os.stat(f"/proc/self/task/{tid}/ns/net").st_ino
                with open(f"/proc/self/task/{tid}/comm") as fh:
                    comm = fh.read().strip()
            except OSError:
                continue  # the thread ended meanwhile
            if inode != self.inode:
                stray.append(f"thread {tid} ({comm}) is in namespace net:[{inode}]")
        return stray


def _in_namespace(ref: Reference, work: Callable[[], _T]) -> _T:
    results: list[_T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            here = os.stat("/proc/thread-self/ns/net").st_ino
            if here != ref.inode:  # entering even one's own namespace needs CAP_SYS_ADMIN
                setns(ref.fd)
            if os.stat("/proc/thread-self/ns/net").st_ino != ref.inode:
                raise LabError("host check: could not enter the reference namespace")
            results.append(work())
        except BaseException as exc:
            errors.append(exc)

    # The thread ends right after: it never goes back, so nothing else can run in its namespace.
    thread = threading.Thread(target=run, name="vlab-hostcheck", daemon=True)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return results[0]


def _ip_json(*args: str) -> list[dict[str, Any]]:
    ip = shutil.which("ip")
    if ip is None:
        raise LabError(
            "host check needs the `ip` command (Debian/Ubuntu: apt-get install iproute2)"
        )
    out = subprocess.run([ip, "-j", *args], capture_output=True, text=True, check=True).stdout
    data = json.loads(out or "[]")
    return [entry for entry in data if isinstance(entry, dict)]


def _facts(entry: dict[str, Any], keys: Iterable[str]) -> str:
    return " ".join(f"{k}={entry[k]}" for k in keys if entry.get(k) not in (None, ""))


def _read_sysctl(name: str) -> str:
    try:
        with open("/proc/sys/" + name.replace(".", "/")) as fh:
            return fh.read().strip()
    except FileNotFoundError:
        return "absent"
    except OSError as exc:
        return f"unreadable ({exc.strerror})"


def _collect(ns_inode: int) -> Snapshot:
    links = set()
    names = []
    for link in _ip_json("-d", "link", "show"):
        name = str(link.get("ifname"))
        names.append(name)
        kind = (link.get("linkinfo") or {}).get("info_kind", "")
        flags = ",".join(sorted(link.get("flags", [])))
        links.add(f"{name}: {_facts(link, _LINK_KEYS)} kind={kind or '-'} flags={flags}")
    addresses = set()
    for link in _ip_json("addr", "show"):
        for addr in link.get("addr_info", []):
            if addr.get("temporary"):  # IPv6 privacy addresses rotate on their own
                continue
            addresses.add(
                f"{link.get('ifname')}: {addr.get('family')} {addr.get('local')}/"
                f"{addr.get('prefixlen')} scope {addr.get('scope')}"
            )
    routes = set()
    for family in ("-4", "-6"):
        for route in _ip_json(family, "route", "show", "table", "all"):
            routes.add(f"{family[1:]}: {_facts(route, _ROUTE_KEYS)}")
    sysctls = {f"{name}={_read_sysctl(name)}" for name in SYSCTLS}
    sysctls |= {
        f"net.ipv6.conf.{n}.disable_ipv6={_read_sysctl(f'net.ipv6.conf.{n}.disable_ipv6')}"
        for n in names
        if "." not in n and "/" not in n
    }
    netns = set()
    for directory in NETNS_DIRS:
        with contextlib.suppress(OSError):
            netns |= {f"{directory}/{entry}" for entry in os.listdir(directory)}
    return Snapshot(
        ns_inode,
        {
            "links": frozenset(links),
            "addresses": frozenset(addresses),
            "routes": frozenset(routes),
            "sysctls": frozenset(sysctls),
            "named namespaces": frozenset(netns),
        },
    )


def compare(before: Snapshot, after: Snapshot) -> list[str]:
    """Lines describing every difference, grouped by section; empty when identical."""
    lines = []
    if before.ns_inode != after.ns_inode:
        lines.append(f"namespace: net:[{before.ns_inode}] became net:[{after.ns_inode}]")
    for section in sorted(set(before.facts) | set(after.facts)):
        old = before.facts.get(section, frozenset())
        new = after.facts.get(section, frozenset())
        if old == new:
            continue
        lines.append(f"{section}:")
        lines.extend(f"  - {fact}" for fact in sorted(old - new))
        lines.extend(f"  + {fact}" for fact in sorted(new - old))
    return lines


def report(before: Snapshot, after: Snapshot, stray: list[str]) -> str | None:
    """The failure text for a session, or None when the host is as it was."""
    lines = compare(before, after) + [f"threads: {s}" for s in stray]
    if not lines:
        return None
    header = (
        f"vlab changed the host's network namespace net:[{before.ns_inode}] during this session "
        "(- before, + after):"
    )
    return "\n".join([header, *(f"  {line}" for line in lines)])
