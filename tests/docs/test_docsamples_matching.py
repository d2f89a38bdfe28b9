"""The sample matcher itself: it accepts real variation and catches real differences."""

from __future__ import annotations

from pathlib import Path

from docsamples import mismatch, transcript

ROOT = Path("/src/vlab")


def test_normalised_differences_are_accepted() -> None:
    doc = ["vm1  vm  52:54:00:00:00:01  vnet0", "pid 17, state in /run/vlab/17.json", "done 0.2 s"]
    real = ["vm1 vm 52:54:00:ab:cd:ef vnet0", "pid 4242, state in /tmp/x/4242.json", "done 1.75 s"]
    assert mismatch(doc, real, ROOT) is None


def test_a_changed_word_is_caught() -> None:
    assert mismatch(["vm1 vm forwarding"], ["vm1 vm blocking"], ROOT) is not None
    assert mismatch(["a", "b"], ["a"], ROOT) is not None  # a missing line
    assert mismatch(["a"], ["a", "b"], ROOT) is not None  # an extra line


def test_ellipsis_lines_and_prefixes() -> None:
    real = ["head", "x", "y", "tail: 3 features"]
    assert mismatch(["head", "...", "tail: ..."], real, ROOT) is None
    assert mismatch(["head", "...", "tail: 4..."], real, ROOT) is not None


def test_transcripts_split_commands_and_output() -> None:
    commands = transcript(10, "$ vlab show\nrow 1\n$ vlab exec h1 -- true\n")
    assert [(c.line, c.argv, c.expected) for c in commands] == [
        (10, "vlab show", ["row 1"]),
        (12, "vlab exec h1 -- true", []),
    ]
