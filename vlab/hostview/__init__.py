"""Read-only inspection of a real host's network: which VM NIC is behind which tap on which bridge.

Inside a lab, ``lab.where(mac)`` knows the answer because vlab built everything. On a real
hypervisor the answer is spread over three places nobody joins: the bridge's fdb (the guest MAC
learnt on a tap port), the tap's holder (the process with an fd on it, in /proc) and that
process's command line (QEMU's ``-netdev tap,fd=N`` and ``-device ...,netdev=,mac=``). This
package joins them:

    target       the namespace (PID, path or this one), entered by a thread for the dumps
    netlink      two dumps: links (with tun/macvtap/bridge-port info) and every fdb
    procscan     one pass over /proc for tap and macvtap fds
    tapns        which namespace the device behind a tap fd is in (names repeat)
    qemu_cmdline VM name, netdevs and NICs from a QEMU argv
    survey       the above joined into a :class:`~vlab.hostview.views.HostView`
    locate       ``where MAC`` over a view
    render       text; jsonout + schema.json: JSON and its schema

Nothing here changes what it inspects: netlink requests are dumps, /proc is only read. See
docs/host-inspection.md.
"""

from __future__ import annotations

from vlab.hostview.locate import Answer, locate
from vlab.hostview.survey import survey
from vlab.hostview.target import open_target
from vlab.hostview.views import HostView

__all__ = ["Answer", "HostView", "inspect_host", "locate", "where"]


def inspect_host(netns: str | None = None, mac: str | None = None) -> HostView:
    """Inspect a network namespace (None: the caller's; a PID; or a path to a namespace).

    ``mac`` narrows the holder lookup to the taps that MAC is on (what ``where`` needs).
    """
    target = open_target(netns)
    try:
        return survey(target, mac)
    finally:
        target.close()


def where(mac: str, netns: str | None = None) -> tuple[HostView, Answer]:
    """``vlab where``: the view (narrowed to ``mac``) and every place ``mac`` is in it."""
    view = inspect_host(netns, mac)
    return view, locate(view, mac)
