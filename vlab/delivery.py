"""Exact delivery: ``lab.expect(frame, at=[vm2, up])`` — these endpoints, and no others.

A forwarding verdict is about a *set* of ports: flooding that reaches one port too many is as
wrong as one too few. Checking each port with ``expect`` and every other one with
``expect_none`` says the same thing in many calls and is easy to get subtly wrong (forgetting a
port, or checking the others before the lab is quiet). PTF's ``verify_packets`` does it in one;
this is that, with vlab's quiescence instead of a sleep: wait for the frame at every listed
endpoint (one deadline for all), then settle the lab, then look for copies anywhere else.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from scapy.layers.l2 import Ether

from vlab import quiesce, report, validate
from vlab.endpoints import Endpoint, resolve_mask
from vlab.errors import LabError
from vlab.frames import FrameLike, Mask

if TYPE_CHECKING:
    from vlab.lab import Lab


def _targets(lab: Lab, at: object) -> list[Endpoint]:
    if isinstance(at, str | bytes | Endpoint) or not isinstance(at, list | tuple | set):
        raise LabError(
            f"lab.expect(at={at!r}): give a list of endpoints (or their names), e.g. "
            "at=[vm2, up]; at=[] means no endpoint receives the frame"
        )
    out: list[Endpoint] = []
    for item in at:
        ep = lab.endpoints.get(item) if isinstance(item, str) else item
        if not isinstance(ep, Endpoint) or lab.endpoints.get(ep.name) is not ep:
            known = ", ".join(lab.endpoints) or "none"
            raise LabError(f"lab.expect(at=...): {item!r} is not an endpoint of this lab ({known})")
        if ep in out:
            raise LabError(f"lab.expect(at=...): {ep.name} is listed twice")
        out.append(ep)
    return out


def expect_at(
    lab: Lab,
    frame: FrameLike | Mask,
    at: Sequence[Endpoint | str],
    timeout: float = 1.0,
    mask: Mask | Sequence[str] | None = None,
) -> list[Ether]:
    """Pass only when every endpoint of ``at`` received ``frame`` and no other endpoint did.

    The matched copies are consumed and returned in the order of ``at``. A second copy at a
    listed endpoint counts as unexpected too (a bridge that duplicates is broken).
    """
    timeout = validate.timeout(timeout, "lab.expect")
    targets = _targets(lab, at)
    for ep in targets:
        ep.check_alive()
    m = resolve_mask(frame, mask)
    got: dict[str, Ether] = {}
    waiting = list(targets)
    deadline = time.monotonic() + timeout
    while True:
        for ep in list(waiting):
            ep.pull()
            pkt = ep.take(m)
            if pkt is not None:
                got[ep.name] = pkt
                waiting.remove(ep)
        remaining = deadline - time.monotonic()
        if not waiting or remaining <= 0:
            break
        quiesce.wait_readable([ep.io.fileno() for ep in waiting], remaining)  # fds > 1023 too
    lab.switch.settle("lab.expect()")  # everything in flight lands (or the losses are reported)
    for ep in list(waiting):
        pkt = ep.take(m)
        if pkt is not None:
            got[ep.name] = pkt
            waiting.remove(ep)
    extra = {}
    for ep in lab.endpoints.values():
        copies = [r for r in ep.pending if m.matches(r[1])]
        if copies:
            extra[ep.name] = copies
    if waiting or extra:
        wanted, missed = [ep.name for ep in targets], [ep.name for ep in waiting]
        text = report.wrong_delivery(lab.snapshot(), m, wanted, missed, extra, timeout)
        raise AssertionError(text)
    return [got[ep.name] for ep in targets]
