"""``vlab where MAC`` and ``vlab show --host``: the article's question asked of a real host.

Both only read (netlink dumps, /proc) the namespace given by ``--netns`` (default: this one).
``where`` prints one line and exits 1 when nobody has the MAC; ``--json`` prints a document
described by vlab/hostview/schema.json (see docs/host-inspection.md).
"""

from __future__ import annotations

import argparse
import json
import sys

from vlab.hostview import inspect_host, jsonout, render
from vlab.hostview import where as locate_mac
from vlab.options import normalize_mac

NOT_FOUND = 1
NETNS_HELP = "the namespace to inspect: a PID, /proc/PID/ns/net, /proc/PID/fd/N or /run/netns/NAME"


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("where", help="which VM NIC, tap and bridge a MAC is behind (real hosts)")
    p.add_argument("mac", help="the MAC to look for, e.g. 52:54:00:12:34:56")
    p.add_argument("--netns", metavar="PATH|PID", help=NETNS_HELP + " (default: this one)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--explain", action="store_true", help="explain the tap MAC vs the guest MAC")


def add_show_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", action="store_true", help="inspect a real host's bridges and taps")
    p.add_argument("--netns", metavar="PATH|PID", help=NETNS_HELP + " (implies --host)")
    p.add_argument("--json", action="store_true", help="machine-readable output (with --host)")


def where(mac: str, netns: str | None, as_json: bool = False, explain: bool = False) -> int:
    wanted = normalize_mac(mac)
    view, answer = locate_mac(wanted, netns)
    line = render.where_line(answer) if answer.found else render.not_found(view, wanted)
    if as_json:
        print(json.dumps(jsonout.where_doc(view, answer, line), indent=2))
    elif answer.found:
        print(line)
        if explain:
            print(render.explain(answer))
        for note in view.notes:
            print(f"note: {note}")
    else:
        print(f"vlab: where: {line}", file=sys.stderr)
        for note in view.notes:
            print(f"note: {note}", file=sys.stderr)
    return 0 if answer.found else NOT_FOUND


def show_host(netns: str | None, as_json: bool = False) -> int:
    view = inspect_host(netns)
    if as_json:
        print(json.dumps(jsonout.show_doc(view), indent=2))
    else:
        print(render.show(view))
    return 0
