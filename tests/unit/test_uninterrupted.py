"""Ctrl-C waits for the end of a block that must not be cut short, other threads or not."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from vlab.uninterrupted import sigint_deferred


@pytest.fixture
def other_thread() -> Iterator[None]:
    """A thread that does not block SIGINT: where the kernel delivers it when the main thread
    blocks it (vlab's reaper and pool threads are such threads)."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("needs the main thread, where Python handles signals")
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join()


def _interrupted_work(steps: list[str]) -> None:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.02)  # bytecodes and a sleep: where the handler would raise
    steps.append("finished")


def test_a_sigint_in_the_block_is_raised_after_it(other_thread: None) -> None:
    steps: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        with sigint_deferred():
            _interrupted_work(steps)
        steps.append("after the block")  # never: raised as the block ends
    assert steps == ["finished"]


def test_without_it_the_sigint_cuts_the_work_short(other_thread: None) -> None:
    steps: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        _interrupted_work(steps)
    assert steps == []  # the case the block is for


def test_a_block_without_sigint_changes_nothing(other_thread: None) -> None:
    before = signal.getsignal(signal.SIGINT)
    with sigint_deferred():
        pass
    assert signal.getsignal(signal.SIGINT) is before
