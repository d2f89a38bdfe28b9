"""``vlab doctor``: what this machine can do, found out by trying it in a scratch namespace.

Kernel configs, module lists and distribution defaults all lie in some direction (a config
option that is ``m`` with no modules installed, a sysctl that AppArmor overrides, a device node
whose mode differs between distributions), so every answer here comes from doing the real thing:
creating each link type, setting each bridge and port option and reading it back, adding each
qdisc, inside a throwaway network namespace that disappears with the probe. Only a few answers
are fatal (no namespaces, no bridge, no veth): the rest say which lab features will skip.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import platform
import socket
import stat
import struct
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from importlib import metadata

from vlab import netns, rootless, tools
from vlab import tap as taplib
from vlab.errors import LabError
from vlab.netns import NetNS
from vlab.options import (
    BRIDGE_OPTIONS,
    PORT_OPTIONS,
    encode_bridge,
    encode_port,
    pack_data,
    unpack_data,
)
from vlab.rtnl import (
    IFLA_IFNAME,
    IFLA_INFO_DATA,
    IFLA_INFO_KIND,
    IFLA_LINKINFO,
    IFLA_MASTER,
    NLA_F_NESTED,
    RTM_NEWLINK,
    VETH_INFO_PEER,
    Rtnl,
    nla,
)

OK, MISSING, WARN, FAIL, UNKNOWN = "ok", "missing", "warn", "FAIL", "?"
EOPNOTSUPP = 95
IFLA_LINK = 5
IFLA_BR_VLAN_FILTERING = 7
_IFINFO = struct.Struct("=BxHiII")
_CREATE = 0x1 | 0x4 | 0x400 | 0x200  # REQUEST | ACK | CREATE | EXCL


@dataclass
class Check:
    """One row of the doctor's table."""

    area: str
    name: str
    status: str
    detail: str
    fatal: bool = False  # labs cannot run at all unless this is ok


def _new_link(rtnl: Rtnl, name: str, kind: str, data: bytes = b"", extra: bytes = b"") -> int:
    """Create a link with one RTM_NEWLINK; return its ifindex (OSError when refused)."""
    info = nla(IFLA_INFO_KIND, kind.encode() + b"\0")
    if data:
        info += nla(IFLA_INFO_DATA | NLA_F_NESTED, data)
    body = (
        _IFINFO.pack(0, 0, 0, 0, 0)
        + nla(IFLA_IFNAME, name.encode() + b"\0")
        + extra
        + nla(IFLA_LINKINFO | NLA_F_NESTED, info)
    )
    rtnl.seq += 1
    head = struct.pack("=IHHII", 16 + len(body), RTM_NEWLINK, _CREATE, rtnl.seq, 0)
    rtnl.sock.send(head + body)
    while True:
        reply = rtnl.sock.recv(65536)
        _len, msg_type, _flags, seq, _pid = struct.unpack_from("=IHHII", reply)
        if seq == rtnl.seq and msg_type == 2:  # NLMSG_ERROR (0 = ack)
            (err,) = struct.unpack_from("=i", reply, 16)
            if err:
                raise OSError(-err, os.strerror(-err))
            return socket.if_nametoindex(name)


def _refusal(exc: OSError) -> tuple[str, str]:
    if exc.errno == EOPNOTSUPP:
        return MISSING, "not supported by this kernel (EOPNOTSUPP)"
    return WARN, f"refused: {exc.strerror}"


class Prober:
    """Probes that share one scratch namespace (and its bridge) for the doctor's run."""

    def __init__(self, ns: NetNS) -> None:
        self.ns = ns
        with ns.entered():
            self.rtnl = Rtnl()
        self.bridge = 0
        self.port = 0
        self.peer = 0  # the veth end that is not a bridge port: lower device of stacked links
        self.n = 0

    def close(self) -> None:
        self.rtnl.close()

    def name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def link(self, kind: str, data: bytes = b"", extra: bytes = b"") -> tuple[str, str]:
        with self.ns.entered():
            try:
                _new_link(self.rtnl, self.name("p"), kind, data, extra)
            except OSError as exc:
                return _refusal(exc)
        return OK, "created in a scratch namespace"

    def add_bridge(self) -> tuple[str, str]:
        with self.ns.entered():
            try:
                self.bridge = _new_link(self.rtnl, "vlbr", "bridge")
            except OSError as exc:
                return _refusal(exc)
        return OK, "created in a scratch namespace"

    def add_veth(self) -> tuple[str, str]:
        peer = _IFINFO.pack(0, 0, 0, 0, 0) + nla(IFLA_IFNAME, b"vlpeer\0")
        master = nla(IFLA_MASTER, struct.pack("=I", self.bridge)) if self.bridge else b""
        with self.ns.entered():
            try:
                self.port = _new_link(
                    self.rtnl, "vlveth", "veth", nla(VETH_INFO_PEER, peer), master
                )
                self.peer = socket.if_nametoindex("vlpeer")
            except OSError as exc:
                return _refusal(exc)
        return OK, "pair created" + (", one end enslaved to a bridge" if master else "")

    def tap(self) -> tuple[str, str]:
        with self.ns.entered():
            try:
                fd = taplib.open_tap(self.name("vltap"))
            except LabError as exc:
                return MISSING, str(exc)
        taplib.release_tap(fd)
        return OK, "tap created through /dev/net/tun"

    def child_link(self, kind: str, data: bytes) -> tuple[str, str]:
        if not self.peer:
            return UNKNOWN, "needs a veth to stack on"
        return self.link(kind, data, nla(IFLA_LINK, struct.pack("=I", self.peer)))

    def bridge_option(self, **options: object) -> tuple[str, str]:
        """Set bridge options as labs do, and read them back: silently ignored ones count as no."""
        if not self.bridge:
            return UNKNOWN, "needs a bridge"
        encoded = encode_bridge(options)
        try:
            self.rtnl.set_bridge_data(self.bridge, pack_data(BRIDGE_OPTIONS, encoded))
            back = unpack_data(BRIDGE_OPTIONS, self.rtnl.bridge_data(self.bridge))
        except OSError as exc:
            return _refusal(exc)
        return _compare(options, back)

    def port_option(self, **options: object) -> tuple[str, str]:
        if not self.port:
            return UNKNOWN, "needs a bridge port"
        encoded = encode_port(options)
        try:
            self.rtnl.set_port_data(self.port, pack_data(PORT_OPTIONS, encoded))
            back = unpack_data(PORT_OPTIONS, self.rtnl.port_data(self.port))
        except OSError as exc:
            return _refusal(exc)
        return _compare(options, back)

    def vlan_filtering(self) -> tuple[str, str]:
        if not self.bridge:
            return UNKNOWN, "needs a bridge"
        try:
            self.rtnl.set_bridge_data(self.bridge, nla(IFLA_BR_VLAN_FILTERING, b"\x01"))
            back = self.rtnl.bridge_data(self.bridge).get(IFLA_BR_VLAN_FILTERING, b"\0")
        except OSError as exc:
            return _refusal(exc)
        if back[:1] != b"\x01":
            return MISSING, "accepted but not reported back: not compiled in"
        self.rtnl.set_bridge_data(self.bridge, nla(IFLA_BR_VLAN_FILTERING, b"\x00"))
        return OK, "enabled and read back"

    def vlan_options(self) -> tuple[str, str]:
        """Per-VLAN STP state on a port and a per-VLAN multicast option, set and read back."""
        from vlab import vlan as vlanlib

        if not (self.bridge and self.port):
            return UNKNOWN, "needs a bridge and a veth"
        on, off = nla(IFLA_BR_VLAN_FILTERING, b"\x01"), nla(IFLA_BR_VLAN_FILTERING, b"\x00")
        try:
            # kernel STP (left on by the stp probe) owns the states: EBUSY
            self.rtnl.set_bridge_data(self.bridge, nla(5, struct.pack("=I", 0)))
            self.rtnl.set_bridge_data(self.bridge, on)
            if self.rtnl.bridge_data(self.bridge).get(IFLA_BR_VLAN_FILTERING, b"\0")[:1] != b"\1":
                return MISSING, "no VLAN filtering"
            try:
                ranges = [(10, 10)]
                vlanlib.add(self.rtnl, self.port, ranges, False, False, False, "probe")
                vlanlib.set_state(self.rtnl, self.port, ranges, 4, "probe")  # blocking
                state = vlanlib.dump(self.rtnl, self.port).get(self.port, {}).get(10)
                if state is None or state.state != "blocking":
                    return MISSING, "per-VLAN STP state not reported back"
                snooping = pack_data(BRIDGE_OPTIONS, {"multicast_vlan_snooping": 1})
                self.rtnl.set_bridge_data(self.bridge, snooping)
                opts = vlanlib.encode_global({"multicast_snooping": False}, "probe")
                vlanlib.set_global(self.rtnl, self.bridge, ranges, opts, "probe")
                back = vlanlib.global_dump(self.rtnl, self.bridge).get(10, {})
            except LabError as exc:
                return MISSING, str(exc)
            if back.get("multicast_snooping") is not False:
                return MISSING, "per-VLAN STP state works; per-VLAN multicast options do not"
            return OK, "per-VLAN STP state and multicast snooping set and read back"
        except OSError as exc:
            return _refusal(exc)
        finally:
            with contextlib.suppress(OSError):
                self.rtnl.set_bridge_data(self.bridge, off)

    def tc(self, *qdisc: str, parent: str = "root") -> tuple[str, str]:
        """Add a qdisc with the ``tc`` program, as a lab test would."""
        tc = tools.which("tc")
        if tc is None:
            return UNKNOWN, "tc is not installed (iproute2)"
        if not self.port:
            return UNKNOWN, "needs a veth"
        return _run_in(self.ns, [tc, "qdisc", "replace", "dev", "vlveth", parent, *qdisc])

    def nft_bridge(self) -> tuple[str, str]:
        nft = tools.which("nft")
        if nft is None:
            return UNKNOWN, "nft is not installed (nftables)"
        return _run_in(self.ns, [nft, "add", "table", "bridge", "vlabprobe"])


def _compare(wanted: dict[str, object], back: dict[str, object]) -> tuple[str, str]:
    for key, value in wanted.items():
        if key not in back:
            return MISSING, f"{key} is not reported back: not compiled in"
        if back[key] != value:
            return WARN, f"{key}={value!r} read back as {back[key]!r}"
    shown = ", ".join(f"{k}={v!r}" for k, v in wanted.items())
    return OK, f"{shown} set and read back"


def _run_in(ns: NetNS, argv: list[str]) -> tuple[str, str]:
    fd = ns.fd
    proc = subprocess.run(
        argv,
        preexec_fn=lambda: netns.setns(fd, rootless.CLONE_NEWNET),
        pass_fds=(fd,),
        capture_output=True,
        text=True,
        timeout=10,
    )
    if proc.returncode == 0:
        return OK, " ".join([os.path.basename(argv[0]), *argv[1:]]) + " worked"
    error = (proc.stderr.strip().splitlines() or ["failed"])[0]
    if "unknown" in error.lower() or "not supported" in error.lower():
        return MISSING, error
    return WARN, error


def _privileges(entered: bool, problem: str | None) -> Check:
    if problem:
        return Check("access", "privileges", FAIL, problem, fatal=True)
    if entered or rootless.in_user_namespace():
        uid = rootless.host_uid()
        detail = f"rootless: uid {uid} is root of a user namespace"
        return Check("access", "privileges", OK, detail, fatal=True)
    return Check("access", "privileges", OK, "root", fatal=True)


def _userns_for_others(problem: str | None = None) -> Check:
    """Whether a non-root user could run labs rootless: tried in a child that drops to nobody.

    ``problem`` is why this process itself could not enter one, when it tried and failed.
    """
    name = "user namespaces"
    if problem is not None:
        blocked = rootless.userns_blocked()
        return Check(
            "access",
            name,
            MISSING,
            f"no user namespace can be made here{f' ({blocked})' if blocked else ''}: "
            "non-root users cannot run labs",
        )
    if os.geteuid() == 0 and not rootless.in_user_namespace():
        pid = os.fork()
        if pid == 0:  # child: become nobody, then try what a rootless vlab does
            code = 1
            with contextlib.suppress(BaseException):
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                netns.unshare(rootless.CLONE_NEWUSER | rootless.CLONE_NEWNET)
                code = 0
            os._exit(code)
        _pid, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) == 0:
            return Check("access", name, OK, "unprivileged users can run labs rootless")
        blocked = rootless.userns_blocked()
        return Check(
            "access",
            name,
            MISSING,
            f"unprivileged user namespaces are disabled{f' ({blocked})' if blocked else ''}: "
            "non-root users cannot run labs",
        )
    if rootless.in_user_namespace():
        return Check("access", name, OK, "in use: this process runs in a user namespace")
    blocked = rootless.userns_blocked()
    return Check(
        "access", name, MISSING, f"cannot be created here{f' ({blocked})' if blocked else ''}"
    )


def _tun_checks() -> list[Check]:
    out = []
    try:
        st = os.stat(rootless.TUN)
        mode = stat.filemode(st.st_mode)
    except OSError:
        mode = "absent"
    problem = rootless.tun_problem()
    if problem:
        out.append(Check("access", "/dev/net/tun", MISSING, problem))
    else:
        out.append(Check("access", "/dev/net/tun", OK, f"{mode}, opened read-write"))
    if os.geteuid() == 0 and not rootless.in_user_namespace():
        if rootless.rootless_tun_ok():
            out.append(Check("access", "tun for rootless", OK, f"{mode}: non-root users get taps"))
        else:
            out.append(
                Check(
                    "access",
                    "tun for rootless",
                    WARN,
                    f"{mode}: rootless labs skip VM endpoints (chmod 0666 {rootless.TUN})",
                )
            )
    return out


def _qemu() -> Check:
    if importlib.util.find_spec("vlab.qemu") is None:
        return Check("guests", "qemu", UNKNOWN, "this vlab has no QEMU guest support (vlab.qemu)")
    try:
        from vlab import qemu

        reason: str | None = qemu.qemu_unavailable()
    except Exception as exc:  # a broken optional module must not break the doctor
        return Check("guests", "qemu", WARN, f"vlab.qemu failed: {exc}")
    if reason:
        return Check("guests", "qemu", MISSING, reason)
    return Check("guests", "qemu", OK, "QEMU guests can boot on lab taps")


def _xdist() -> Check:
    try:
        version = metadata.version("pytest-xdist")
    except metadata.PackageNotFoundError:
        return Check(
            "tools", "pytest-xdist", MISSING, "parallel runs need: pip install pytest-xdist"
        )
    return Check("tools", "pytest-xdist", OK, f"{version}: pytest --vlab -n auto")


@contextlib.contextmanager
def _scratch() -> Iterator[Prober | str]:
    try:
        ns = NetNS.create("doctor")
    except LabError as exc:
        yield str(exc)
        return
    prober = Prober(ns)
    try:
        yield prober
    finally:
        prober.close()
        ns.close()


def _kernel_checks(p: Prober) -> list[Check]:
    rows: list[tuple[str, str, Callable[[], tuple[str, str]], bool]] = [
        ("links", "bridge", p.add_bridge, True),
        ("links", "veth", p.add_veth, True),
        ("links", "tap", p.tap, False),
        ("links", "dummy", lambda: p.link("dummy"), False),
        (
            "links",
            "vlan (802.1Q)",
            lambda: p.child_link("vlan", nla(1, struct.pack("=H", 10))),
            False,
        ),
        ("links", "macvlan", lambda: p.child_link("macvlan", nla(1, struct.pack("=I", 4))), False),
        ("links", "vxlan", lambda: p.link("vxlan", nla(1, struct.pack("=I", 42))), False),
        ("links", "macvtap", lambda: p.child_link("macvtap", nla(1, struct.pack("=I", 4))), False),
        ("links", "bond", lambda: p.link("bond"), False),
        ("links", "ifb", lambda: p.link("ifb"), False),
        ("bridge", "stp", lambda: p.bridge_option(stp=True), False),
        ("bridge", "vlan filtering", p.vlan_filtering, False),
        ("bridge", "per-VLAN options", p.vlan_options, False),
        (
            "bridge",
            "802.1ad bridge",
            lambda: p.bridge_option(vlan_filtering=True, vlan_protocol="802.1ad"),
            False,
        ),
        ("bridge", "igmp snooping", lambda: p.bridge_option(multicast_snooping=True), False),
        ("bridge", "mld snooping", lambda: p.bridge_option(multicast_mld_version=2), False),
        ("bridge", "querier", lambda: p.bridge_option(multicast_querier=True), False),
        ("bridge", "fdb_max_learned", lambda: p.bridge_option(fdb_max_learned=5), False),
        ("bridge", "no_linklocal_learn", lambda: p.bridge_option(no_linklocal_learn=True), False),
        ("port", "locked / mab", lambda: p.port_option(locked=True, mab=True), False),
        ("port", "isolated", lambda: p.port_option(isolated=True), False),
        ("port", "neigh_suppress", lambda: p.port_option(neigh_suppress=True), False),
        ("port", "mcast_to_unicast", lambda: p.port_option(mcast_to_unicast=True), False),
        (
            "tc",
            "tbf",
            lambda: p.tc("tbf", "rate", "1mbit", "burst", "32kbit", "latency", "50ms"),
            False,
        ),
        ("tc", "htb", lambda: p.tc("handle", "1:", "htb"), False),
        ("tc", "netem", lambda: p.tc("netem", "delay", "1ms"), False),
        ("tc", "ingress", lambda: p.tc(parent="ingress"), False),
        ("nftables", "bridge family", p.nft_bridge, False),
    ]
    out = []
    for area, name, probe, fatal in rows:
        try:
            status, detail = probe()
        except (OSError, LabError, subprocess.SubprocessError) as exc:
            status, detail = WARN, f"probe failed: {exc}"
        out.append(Check(area, name, status, detail, fatal=fatal))
    return out


def diagnose() -> list[Check]:
    """Every check, in table order. Enters a user namespace first when not root."""
    try:
        entered, problem = rootless.ensure(), None
    except LabError as exc:
        entered, problem = False, str(exc)
    checks = [_privileges(entered, problem), _userns_for_others(problem), *_tun_checks()]
    with _scratch() as prober:
        if isinstance(prober, str):
            checks.append(Check("access", "network namespaces", FAIL, prober, fatal=True))
        else:
            checks.append(
                Check("access", "network namespaces", OK, "anonymous, held by fd", fatal=True)
            )
            checks.extend(_kernel_checks(prober))
    checks.append(_qemu())
    checks.append(_xdist())
    return checks


def labs_can_run(checks: list[Check]) -> bool:
    return all(c.status == OK for c in checks if c.fatal)


def summary(checks: list[Check]) -> str:
    missing = [c.name for c in checks if c.status in (MISSING, WARN)]
    if not labs_can_run(checks):
        broken = "; ".join(f"{c.name}: {c.detail}" for c in checks if c.fatal and c.status != OK)
        return f"labs cannot run here: {broken}"
    if missing:
        return (
            f"labs can run here; lab features that will skip or are limited: {', '.join(missing)}"
        )
    return "labs can run here; every probed feature works"


def header() -> str:
    try:
        version = metadata.version("vlab")
    except metadata.PackageNotFoundError:
        version = "(not installed)"
    return (
        f"vlab {version} on kernel {platform.release()}, Python {platform.python_version()}, "
        f"{platform.machine()}"
    )


def as_dicts(checks: list[Check]) -> list[dict[str, object]]:
    return [asdict(c) for c in checks]


def in_guest(kernel: str) -> tuple[list[Check], str]:
    """The checks probed inside a QEMU guest booted with ``kernel`` (``vlab doctor --kernel``)."""
    from vlab.kernel.probe import run_python

    done = run_python(kernel, ["-m", "vlab.cli", "doctor", "--json"])
    try:
        rows = json.loads(done.stdout.strip().splitlines()[-1])["checks"]
        checks = [Check(**row) for row in rows]
    except (ValueError, IndexError, KeyError, TypeError):
        raise LabError(
            f"vlab doctor in the guest on {done.release} printed no table (status "
            f"{done.status}): {done.stdout[-2000:]!r}"
        ) from None
    return checks, f"kernel {done.release} ({kernel}), probed in a QEMU guest"


def main(as_json: bool = False, kernel: str | None = None) -> int:
    """Print the table (or JSON); exit 1 only when labs cannot run here at all."""
    from vlab.cli.table import table

    where = None
    if kernel is not None and kernel != "host":
        checks, where = in_guest(kernel)
    else:
        checks = diagnose()
    if as_json:
        print(json.dumps({"labs_can_run": labs_can_run(checks), "checks": as_dicts(checks)}))
    else:
        print(header() if where is None else f"{header()}\n{where}")
        print()
        rows = [(c.area, c.name, c.status, c.detail) for c in checks]
        print(table(("AREA", "CHECK", "STATUS", "DETAIL"), rows))
        print()
        print(summary(checks))
    return 0 if labs_can_run(checks) else 1
