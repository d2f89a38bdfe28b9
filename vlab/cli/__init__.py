"""The ``vlab`` command: reproduce a bridge problem by hand before writing the test for it.

    vlab demo                 build a lab and show frames going VM -> tap -> bridge -> uplink
    vlab doctor               what this machine can do (probed for real)
    vlab up FILE              build a scenario file's topology and keep it until Ctrl-C
    vlab exec NODE -- CMD...  run a command inside a node of the running lab
    vlab show                 VMs, taps, ports and where the bridge learnt each MAC
    vlab run PATH...          run scenario files (and lab tests) with progress and a summary

Commands that build labs enter a user namespace first when not run as root; that has to happen
before any thread exists, so it is the first thing :func:`main` does for them. ``exec`` and
``show`` instead join the user namespace of the ``vlab up`` process that owns the lab.
Every failure is one line on stderr and a non-zero exit code; no tracebacks for user mistakes.
Ctrl-C at any moment, even while the lab core is still being imported (it is imported lazily,
inside :func:`main`; this module imports only the standard library before that), ends the
command with ``vlab: interrupted`` and exit code 130.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

EXIT_ERROR = 1
EXIT_USAGE = 2
BUILDS_LABS = {"demo", "doctor", "up", "run"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vlab",
        description="Throwaway network labs: VM -> tap -> Linux bridge -> uplink.",
        epilog="examples:\n" + "\n".join((__doc__ or "").splitlines()[2:8]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser("demo", help="build a lab and drive frames through it")
    demo.add_argument("--verbose", "-v", action="store_true", help="print every frame received")

    doctor = sub.add_parser("doctor", help="what this machine can do, probed for real")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.add_argument("--kernel", metavar="PATH", help="probe this bzImage in a QEMU guest")

    up = sub.add_parser("up", help="build a scenario file's topology; Ctrl-C tears it down")
    up.add_argument("file", help="a scenario file (YAML, see vlab/scenario/FORMAT.md)")
    up.add_argument("--name", help="the lab's name (default: the file's stem)")

    for name, text in (
        ("exec", "run a command inside a node of a running lab"),
        ("show", "ports, MACs and learnt fdb entries of a running lab"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--pid", type=int, help="the `vlab up` process, when several labs run")
        p.add_argument("--lab", help="the lab's name, when several labs run")
        if name == "exec":
            p.add_argument("node", help="a bridge, host or uplink name, or switch/upstream")
            p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD...")
        else:
            from vlab.cli.show import add_host_options

            add_host_options(p)

    run = sub.add_parser("run", help="run scenario files / lab tests with progress and a summary")
    run.add_argument("paths", nargs="+", metavar="PATH")
    run.add_argument("-x", "--exitfirst", action="store_true", help="stop at the first failure")
    run.add_argument("-k", metavar="EXPR", help="only tests matching EXPR (as pytest -k)")
    run.add_argument("-n", metavar="WORKERS", help="parallel workers (pytest-xdist)")
    run.add_argument(
        "--kernel",
        action="append",
        metavar="PATH",
        help="run on this kernel ('host' or a bzImage, in a QEMU guest); repeat for a "
        "test x kernel table, differences first",
    )
    run.add_argument("--markdown", metavar="FILE", help="with --kernel: the table as markdown")
    run.add_argument("--json", metavar="FILE", help="with --kernel: the table as JSON (- stdout)")

    from vlab.cli.where import add_parser as add_where

    add_where(sub)
    return parser


def _error(message: str, code: int = EXIT_ERROR) -> int:
    print(f"vlab: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # before or after the commands' own handling, e.g. in imports
        return _error("interrupted", 130)


def _main(argv: Sequence[str] | None) -> int:
    # imported here, not at the top: until main() runs, a Ctrl-C could only be a traceback
    from vlab import rootless
    from vlab.errors import LabError

    args = _parser().parse_args(argv)
    try:
        if args.command in BUILDS_LABS - {"doctor"}:  # doctor reports a failure as a row
            rootless.ensure()
        return _dispatch(args)
    except LabError as exc:
        return _error(str(exc))
    except KeyboardInterrupt:
        return _error("interrupted", 130)
    except BrokenPipeError:  # `vlab show | head`
        return 0
    except OSError as exc:  # the kernel refused something vlab did not expect to be refused
        if os.environ.get("VLAB_DEBUG"):
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        return _error(f"{exc.strerror or exc}{where}; VLAB_DEBUG=1 shows the traceback")


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from vlab.demo import main as demo

        return demo(verbose=args.verbose)
    if args.command == "doctor":
        from vlab.doctor import main as doctor

        return doctor(as_json=args.json, kernel=args.kernel)
    if args.command == "up":
        from vlab.cli.up import up

        return up(args.file, args.name)
    if args.command == "exec":
        argv = list(args.argv)
        if argv[:1] == ["--"]:
            argv = argv[1:]
        if not argv:
            return _error(
                "exec: give a command after the node, e.g. vlab exec br0 -- bridge fdb", 2
            )
        from vlab.cli.enter import exec_in

        return exec_in(args.node, argv, args.pid, args.lab)
    if args.command == "show":
        from vlab.cli.show import show

        return show(args.pid, args.lab, args.host, args.netns, args.json)
    if args.command == "where":
        from vlab.cli.where import where

        return where(args.mac, args.netns, as_json=args.json, explain=args.explain)
    from vlab.cli.run import run

    return run(
        args.paths,
        exitfirst=args.exitfirst,
        keyword=args.k,
        workers=args.n,
        kernels=args.kernel,
        markdown=args.markdown,
        json_path=args.json,
    )
