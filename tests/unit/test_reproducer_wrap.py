"""The printed reproducer keeps to the project's line length, whatever options were drawn."""

from __future__ import annotations

from vlab.properties.reproducer import LINE_LENGTH, _wrap


def test_a_long_port_set_gets_one_keyword_a_line() -> None:
    line = "    br.port(vm1).set(" + ", ".join(f"opt{i}=False" for i in range(12)) + ")"
    assert len(line) > LINE_LENGTH
    wrapped = _wrap(line)
    assert wrapped[0] == "    br.port(vm1).set("
    assert wrapped[-1] == "    )"
    assert wrapped[1:-1] == [f"        opt{i}=False," for i in range(12)]
    assert all(len(w) <= LINE_LENGTH for w in wrapped)
    compile("\n".join(w.strip() if i == 0 else w for i, w in enumerate(wrapped)), "x", "exec")


def test_a_short_line_is_left_alone() -> None:
    assert _wrap("    br.set(stp=True)") == ["    br.set(stp=True)"]
