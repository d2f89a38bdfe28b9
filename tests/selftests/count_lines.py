"""Line counts of the kernel bridge selftests against their vlab ports (docs/selftest-ports.md).

    python tests/selftests/count_lines.py LINUX/tools/testing/selftests/net/forwarding

Counted are code lines: not blank, not comments, and for Python not docstrings. A script's
functions for subtests that were not ported (VLAN-aware ones, mostly) are left out of its count,
so a partial port is compared with the part it ports; lib.sh, which both the scripts and their
ports would otherwise need, is counted for neither.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

HERE = Path(__file__).parent
UNUSED = {  # packet constants (mausezahn hex) of subtests not ported: not counted either
    "MZPKT_IS_INC2",
    "MZPKT_IS_INC3",
    "MZPKT_ALLOW2",
    "MZPKT_IS_EXC",
    "MZPKT_IS_EXC2",
    "MZPKT_TO_EXC",
}
PORTS: dict[str, tuple[str, set[str]]] = {  # script: (port, functions not ported)
    "bridge_vlan_unaware.sh": ("test_bridge_vlan_unaware.py", set()),
    "bridge_sticky_fdb.sh": ("test_bridge_sticky_fdb.py", set()),
    "bridge_port_isolation.sh": ("test_bridge_port_isolation.py", set()),
    "bridge_locked_port.sh": ("test_bridge_locked_port.py", {"locked_port_vlan"}),
    "bridge_fdb_learning_limit.sh": ("test_bridge_fdb_learning_limit.py", set()),
    "bridge_mdb_port_down.sh": ("test_bridge_mdb_port_down.py", set()),
    "no_forwarding.sh": ("test_no_forwarding.py", {"one_bridge_two_pvids"}),
    "bridge_mld.sh": (
        "test_bridge_mld.py",
        {"mldv2exclude_prepare", "mldv2exc_allow_test"}
        | {f"mldv2inc_{t}_test" for t in ("is_include", "is_exclude", "to_exclude")},
    ),
    "bridge_igmp.sh": (
        "test_bridge_igmp.py",
        {
            "v3exclude_prepare",
            *(f"v3{t}_test" for t in ("inc_is_include", "inc_is_exclude", "inc_to_exclude")),
            *(f"v3exc_{t}_test" for t in ("allow", "is_include", "is_exclude", "to_exclude")),
            "v3exc_block_test",
            "v3exc_timeout_test",
        },
    ),
    "local_termination.sh": (
        "test_local_termination.py",
        {f"h{i}_vlan_{op}" for i in (1, 2) for op in ("create", "destroy")}
        | {"vlan_aware_bridge", "test_vlan", "vlan_over_bridged_port", "vlan_over_bridge"}
        | {
            f"vlan_over_vlan_{k}_{w}"
            for k in ("unaware", "aware")
            for w in ("bridged_port", "bridge")
        },
    ),
}
VLAN_PORTS: list[tuple[str, str, set[str]]] = [  # (script, port, functions not ported)
    # ports of VLAN-aware subtests: their loops over VLAN IDs are ported and counted
    ("bridge_vlan_aware.sh", "test_bridge_vlan_aware.py", set()),
    (
        "bridge_locked_port.sh",
        "test_bridge_locked_port_vlan.py",
        {"locked_port_ipv4", "locked_port_ipv6"}
        | {f"locked_port_mab{t}" for t in ("", "_roam", "_config", "_flush", "_redirect")},
    ),
    (
        "no_forwarding.sh",
        "test_no_forwarding_vlan.py",
        {"standalone", "two_bridges", "bridge_aware_vlan_uppers"},
    ),
    (
        "local_termination.sh",
        "test_local_termination_vlan.py",
        {"standalone", "test_vlan", "vlan_unaware_bridge", "vlan_over_bridged_port"}
        | {"vlan_over_vlan_unaware_bridged_port", "vlan_over_vlan_aware_bridged_port"}
        | {"vlan_over_vlan_unaware_bridge", "send_raw", "h2_create", "h2_destroy"}
        | {"h2_vlan_create", "h2_vlan_destroy"},
    ),
]
_FUNC = re.compile(r"^(\w+)\s*\(\)\s*(\{)?\s*$")


_VLAN_LOOP = re.compile(r"^(\s*)for vid in ")


def shell_lines(text: str, skip: set[str], vlan_loops: bool = False) -> int:
    """Code lines of a shell script, without the bodies of the functions in ``skip`` and,
    unless ``vlan_loops``, without its loops over VLAN IDs (``for vid in ...; done``: the
    tagged cases, which only the ports of VLAN-aware subtests port)."""
    count, current, loop_indent, in_unused = 0, None, None, False
    for line in text.splitlines():
        if in_unused or line.split("=", 1)[0] in UNUSED:
            in_unused = line.endswith("\\")
            continue
        match = _FUNC.match(line)
        if match:
            current = match.group(1)
        loop = None if vlan_loops else _VLAN_LOOP.match(line)
        if loop_indent is None and (loop or (line.startswith("vids=(") and not vlan_loops)):
            loop_indent = loop.group(1) if loop else None
            if not loop:
                continue
        if loop_indent is not None:
            if line.strip() == "done" and line[: len(line) - len(line.lstrip())] == loop_indent:
                loop_indent = None
            continue
        if current not in skip and line.strip() and not line.lstrip().startswith("#"):
            count += 1
        if line.startswith("}"):
            current = None
    return count


def python_lines(text: str) -> int:
    """Code lines of a Python file: no blank lines, comments or docstrings."""
    docs: set[int] = set()
    for node in ast.walk(ast.parse(text)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                docs.update(range(body[0].lineno, (body[0].end_lineno or body[0].lineno) + 1))
    return sum(
        1
        for n, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#") and n not in docs
    )


def table(selftests: Path) -> str:
    rows = ["| selftest | its lines | port | port lines | ratio |", "|---|---:|---|---:|---:|"]
    total_s = total_p = 0
    for script, (port, skip) in PORTS.items():
        s = shell_lines((selftests / script).read_text(), skip)
        p = python_lines((HERE / port).read_text())
        total_s, total_p = total_s + s, total_p + p
        rows.append(f"| {script} | {s} | tests/selftests/{port} | {p} | {p / s:.2f} |")
    rows.append(f"| **total** | **{total_s}** | | **{total_p}** | **{total_p / total_s:.2f}** |")
    return "\n".join(rows)


def vlan_table(selftests: Path) -> str:
    """The same for the ports of VLAN-aware subtests (run under the guest kernel)."""
    rows = ["| selftest (VLAN part) | its lines | port | port lines | ratio |"]
    rows.append("|---|---:|---|---:|---:|")
    total_s = total_p = 0
    for script, port, skip in VLAN_PORTS:
        s = shell_lines((selftests / script).read_text(), skip, vlan_loops=True)
        p = python_lines((HERE / port).read_text())
        total_s, total_p = total_s + s, total_p + p
        rows.append(f"| {script} | {s} | tests/selftests/{port} | {p} | {p / s:.2f} |")
    rows.append(f"| **total** | **{total_s}** | | **{total_p}** | **{total_p / total_s:.2f}** |")
    return "\n".join(rows)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: count_lines.py LINUX/tools/testing/selftests/net/forwarding")
    print(table(Path(sys.argv[1])))
    print()
    print(vlan_table(Path(sys.argv[1])))
