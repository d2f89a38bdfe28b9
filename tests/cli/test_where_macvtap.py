"""``vlab where`` on a macvtap (libvirt's "direct" attachment): the VM's NIC is a ``/dev/tapN``
fd, N being the macvtap's ifindex, and the macvtap sits on a NIC rather than on a bridge."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import ROOT, vlab_argv

from vlab import Lab
from vlab.hostview import inspect_host, schema

pytestmark = pytest.mark.vlab
GUEST = "52:54:00:18:07:01"
INDEX = 3907  # an unusual ifindex: /dev/tapN lives in the host's /dev, shared by namespaces


@pytest.fixture
def macvtap_fd(lab: Lab) -> Iterator[tuple[Lab, str, int]]:
    """A macvtap in host h1 on its eth0, with this process holding its /dev/tapN as QEMU does."""
    lab.host("h1", bridge=lab.bridge("br0"))
    lab.run(
        "h1", "ip", "link", "add", "link", "eth0", "name", "mvt0", "index", str(INDEX),
        "address", GUEST, "type", "macvtap", "mode", "bridge",
    )  # fmt: skip
    node = f"/dev/tap{INDEX}"
    deadline = time.monotonic() + 5
    while not os.path.exists(node):  # devtmpfs creates the node asynchronously
        assert time.monotonic() < deadline, f"{node} never appeared"
        time.sleep(0.01)
    fd = os.open(node, os.O_RDWR | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        yield lab, f"/proc/{os.getpid()}/fd/{lab.namespaces()['h1'].fd}", fd
    finally:
        os.close(fd)


def test_macvtap_holder_is_found(macvtap_fd: tuple[Lab, str, int]) -> None:
    _lab, path, fd = macvtap_fd
    comm = Path("/proc/self/comm").read_text().strip()
    done = subprocess.run(
        [*vlab_argv(), "where", GUEST, "--netns", path],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        f"{GUEST} is the MAC of macvtap mvt0 (mode bridge, MAC {GUEST}; held by pid "
        f"{os.getpid()} ({comm}, fd {fd})) on eth0"
    ), done.stdout
    view = inspect_host(path)
    (tap,) = view.taps.values()
    assert tap.link.kind == "macvtap" and tap.link.index == INDEX
    assert [(h.pid, h.fd, h.verified) for h in tap.holders] == [(os.getpid(), fd, True)]
    shown = subprocess.run(
        [*vlab_argv(), "show", "--host", "--json", "--netns", path],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    doc = json.loads(shown.stdout)
    assert schema.validate(doc) == []
    assert [(t["name"], t["kind"], t["bridge"]) for t in doc["taps"]] == [("mvt0", "macvtap", None)]
