"""Mininet's side of the peer comparison, run by Debian's /usr/bin/python3 (not vlab's venv).

Mininet puts its switches and the host ends of its links in the namespace it runs in, so the
caller starts this inside a private network namespace (``unshare --net``): nothing of the host
is touched, and whatever Mininet leaves behind dies with that namespace. ``Mininet.inited`` is
set so that Mininet never runs ``fixLimits()``, which writes machine-wide sysctls.

Usage: ``mininet_driver.py labs N`` prints a JSON list of N build+destroy times in seconds of one
LinuxBridge switch (no controller) with four hosts: three "VMs" and the uplink's far end.
"""

import importlib
import json
import sys
import time

sys.path.insert(0, "/usr/lib/python3/dist-packages")  # Debian's Mininet, whatever runs this

# Imported by name: Mininet is not installed where vlab's own type checks run.
Mininet = importlib.import_module("mininet.net").Mininet
LinuxBridge = importlib.import_module("mininet.nodelib").LinuxBridge
SingleSwitchTopo = importlib.import_module("mininet.topo").SingleSwitchTopo
Mininet.inited = True  # never fixLimits(): machine-wide sysctls


def one_lab() -> None:
    net = Mininet(topo=SingleSwitchTopo(4), switch=LinuxBridge, controller=None)
    net.start()
    net.stop()


def main() -> int:
    importlib.import_module("mininet.log").setLogLevel("error")
    mode, count = sys.argv[1], int(sys.argv[2])
    if mode != "labs":
        print(f"unknown mode {mode}", file=sys.stderr)
        return 2
    one_lab()  # warm-up
    out = []
    for _ in range(count):
        start = time.perf_counter()
        one_lab()
        out.append(time.perf_counter() - start)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
