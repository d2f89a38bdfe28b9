"""Reading ``cables:``: links between bridges of the topology, and the loops they may not make.

    cables:
      trunk: {between: [br0, br1]}
      backup: {between: [br1, br0], cost: 200}     # port options apply to both ends

A cable that closes a loop among bridges that do not all run STP is refused at its line, as
``lab.cable`` would refuse it (a loop without STP is a broadcast storm).
"""

from __future__ import annotations

from functools import partial

from yaml.nodes import Node

from vlab.scenario import fields, problems
from vlab.scenario.names import Names
from vlab.scenario.read_topology import options
from vlab.scenario.source import where
from vlab.scenario.spec import BridgeSpec, CableSpec
from vlab.scenario.vocabulary import PORT_OPTIONS, check_port

MAX_CABLES = 16


def cables(node: Node, names: Names, bridges: tuple[BridgeSpec, ...]) -> tuple[CableSpec, ...]:
    """Every cable in file order; declares the cable names in ``names``."""
    pairs = fields.mapping(node, "cables").value
    if len(pairs) > MAX_CABLES:
        fields.fail(node, f"there are {len(pairs)} cables", f"at most {MAX_CABLES} are allowed")
    stp = {b.name: bool(dict(b.options).get("stp", False)) for b in bridges}
    out: list[CableSpec] = []
    for key, value in pairs:
        name = fields.name(key, "cable name")
        if name in names.bridges or name in names.endpoints or name in names.cables:
            fields.fail(key, f"name '{name}' is used twice", "give every cable its own name")
        names.cables.append(name)
        found = fields.keys(
            value, f"cable '{name}'", ("between", *PORT_OPTIONS), required=("between",)
        )
        ends = fields.sequence(found["between"], "between")
        if len(ends) != 2:
            fields.fail(found["between"], "between names two bridges", "write between: [br0, br1]")
        a, b = (names.bridge(end, "between") for end in ends)
        if a == b:
            fields.fail(found["between"], f"cable {name} joins {a} to itself", "name two bridges")
        loop = _path(out, a, b)
        if loop is not None:
            loop.append(a)
            off = [n for n in dict.fromkeys(loop) if not stp.get(n)]
            if off:
                fields.fail(
                    key,
                    f"cable {name} makes a loop {' - '.join(loop)} with STP off on "
                    f"{', '.join(off)}: a broadcast storm",
                    "give every bridge of the loop `options: {stp: true}` and add a "
                    "`converge:` step before sending, or leave this cable out",
                )
        read = partial(options, value, "port option", PORT_OPTIONS, ("between",), check_port)
        port = problems.attempt(read, ())
        out.append(CableSpec(name, (a, b), port, where(key)))
    return tuple(out)


def _path(cables: list[CableSpec], a: str, b: str) -> list[str] | None:
    """Bridges on a path from ``a`` to ``b`` over ``cables`` (both included), None if none."""
    came = {a: a}
    todo = [a]
    while todo:
        here = todo.pop(0)
        for cable in cables:
            x, y = cable.between
            other = y if x == here else x if y == here else None
            if other is not None and other not in came:
                came[other] = here
                todo.append(other)
    if b not in came:
        return None
    path = [b]
    while path[-1] != a:
        path.append(came[path[-1]])
    return path[::-1]
