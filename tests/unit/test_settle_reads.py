"""The reads every settle round makes, taken apart: a statistics dump decoded straight from the
receive buffer must say what the generic attribute decoder says, and softnet_stat must still
be read when the fd kept for it was closed behind vlab's back."""

from __future__ import annotations

import os
import struct

import pytest

from vlab import quiesce, rtnl

SEQ = 7


def _message(msg_type: int, body: bytes, seq: int = SEQ) -> bytes:
    head = struct.pack("=IHHII", 16 + len(body), msg_type, 2, seq, 0)
    return head + body + b"\0" * (-len(body) % 4)


def _stats(ifindex: int, fill: int, extra: bytes = b"") -> bytes:
    stats = bytes([fill]) * 200
    first = rtnl.nla(rtnl.IFLA_STATS_LINK_64, stats)
    return _message(92, struct.pack("=BxHiI", 0, 0, ifindex, 1) + extra + first)


def test_a_dump_buffer_decodes_as_the_generic_decoder_does() -> None:
    other_first = rtnl.nla(9, b"\1\2\3\4")  # an attribute before the stats: the long way
    data = (
        _stats(1, 1)
        + _message(92, b"x" * 4, seq=SEQ + 1)  # a late reply to another request: skipped
        + _stats(2, 2, other_first)
        + _message(rtnl.NLMSG_DONE, b"\0" * 4)
    )
    out: list[tuple[int, bytes]] = []
    assert rtnl._stats_rows(data, SEQ, out)
    assert out == [(1, b"\1" * 64), (2, b"\2" * 64)]


def test_a_dump_split_over_buffers_ends_only_at_done() -> None:
    out: list[tuple[int, bytes]] = []
    assert not rtnl._stats_rows(_stats(1, 1), SEQ, out)
    assert rtnl._stats_rows(_message(rtnl.NLMSG_DONE, b"\0" * 4), SEQ, out)
    assert out == [(1, b"\1" * 64)]


def test_a_refused_dump_raises() -> None:
    with pytest.raises(OSError, match="Operation not permitted"):
        rtnl._stats_rows(_message(rtnl.NLMSG_ERROR, struct.pack("=i", -1)), SEQ, [])


@pytest.mark.skipif(not os.path.exists(quiesce.SOFTNET), reason="no /proc/net/softnet_stat")
def test_softnet_survives_its_fd_being_closed() -> None:
    before = quiesce.softnet()
    fd = quiesce._softnet_fd
    assert fd is not None
    os.close(fd)
    processed, backlog = quiesce.softnet()
    assert processed >= before[0] and backlog >= 0
    assert quiesce._softnet_fd is not None


def test_a_malformed_reply_is_refused_not_cut_short() -> None:
    broken = _stats(1, 1) + struct.pack("=IHHII", 8, 92, 2, SEQ, 0)  # length below a header
    with pytest.raises(OSError, match="malformed"):
        rtnl._stats_rows(broken, SEQ, [])
