"""``vlab doctor`` says what the kernel really does, checked against independent probes.

The independent probe is iproute2 itself inside ``unshare -n``: if ``ip link add`` of a kind
fails there, the doctor must not claim it, and the other way round.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from cli_helpers import Runner

pytestmark = pytest.mark.vlab

# doctor row -> shell commands that succeed exactly when the feature works
VETH = "ip link add name va type veth peer name vb"  # names spelt out: `b` would abbreviate
PROBES = {
    "bridge": "ip link add name br type bridge",
    "veth": "ip link add name va type veth peer name vb",
    "dummy": "ip link add name du type dummy",
    "vxlan": "ip link add name vx type vxlan id 42 dstport 4789",
    "ifb": "ip link add name if type ifb",
    "vlan (802.1Q)": f"{VETH} && ip link add link vb name vl type vlan id 10",
    "macvlan": f"{VETH} && ip link add link vb name mv type macvlan",
    "macvtap": f"{VETH} && ip link add link vb name mt type macvtap mode bridge",
    "bond": "ip link add name bo type bond",
    "vlan filtering": "ip link add name br type bridge vlan_filtering 1",
    "802.1ad bridge": "ip link add name br type bridge vlan_filtering 1 vlan_protocol 802.1ad",
    "per-VLAN options": f"{VETH} && ip link add name br type bridge vlan_filtering 1"
    " mcast_vlan_snooping 1 && ip link set vb master br && bridge vlan add dev vb vid 10"
    " && bridge vlan set dev vb vid 10 state blocking"
    " && bridge vlan global set dev br vid 10 mcast_snooping 0",
    "stp": "ip link add name br type bridge stp_state 1 && ip -d link | grep -q 'stp_state 1'",
    "netem": f"{VETH} && tc qdisc add dev va root netem delay 1ms",
    "tbf": f"{VETH} && tc qdisc add dev va root tbf rate 1mbit burst 32kbit latency 50ms",
}


def independent(command: str) -> bool:
    done = subprocess.run(["unshare", "-n", "sh", "-c", command], capture_output=True)
    return done.returncode == 0


def rows(stdout: str) -> dict[str, str]:
    """``{check name: status}`` parsed from the table as a user reads it (columns by header)."""
    lines = stdout.splitlines()
    header = next(line for line in lines if line.startswith("AREA"))
    check_at, status_at, detail_at = (header.index(h) for h in ("CHECK", "STATUS", "DETAIL"))
    table = lines[lines.index(header) + 1 :]
    out = {}
    for line in table:
        if not line.strip():
            break
        out[line[check_at:status_at].strip()] = line[status_at:detail_at].strip()
    return out


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")
def test_doctor_table_matches_the_kernel(vlab: Runner) -> None:
    done = vlab("doctor")
    assert done.returncode == 0, done.stderr
    table = rows(done.stdout)
    for name, command in PROBES.items():
        assert name in table, f"doctor has no row {name!r}"
        works = independent(command)
        assert (table[name] == "ok") == works, (
            f"doctor says {name} is {table[name]!r}, but `{command}` "
            f"{'works' if works else 'fails'} in a scratch namespace"
        )
    assert table["network namespaces"] == "ok"
    assert done.stdout.rstrip().splitlines()[-1].startswith("labs can run here")


def test_doctor_on_this_kernel(vlab: Runner) -> None:
    """The facts measured on the development kernel (6.18): no dummy, veth and taps work."""
    table = rows(vlab("doctor").stdout)
    if not independent(PROBES["dummy"]):
        assert table["dummy"] == "missing"
    assert table["veth"] == "ok"
    assert table["tap"] == "ok"


def test_doctor_json_agrees_with_table(vlab: Runner) -> None:
    data = json.loads(vlab("doctor", "--json").stdout)
    assert data["labs_can_run"] is True
    table = rows(vlab("doctor").stdout)
    assert {c["name"]: c["status"] for c in data["checks"]} == table
    assert {c["name"] for c in data["checks"] if c["fatal"]} == {
        "privileges",
        "network namespaces",
        "bridge",
        "veth",
    }
