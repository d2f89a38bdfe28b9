"""Loading a scenario file into a :class:`Scenario`, validating everything before any lab exists.

Sections are read in dependency order (topology, then frames, then steps) whatever order the file
writes them in, so every reference can be checked against declared names.
"""

from __future__ import annotations

import re
from pathlib import Path

from yaml.nodes import Node, SequenceNode

from vlab.paths import RefusedFile
from vlab.scenario import fields, read_frames, read_steps, read_topology
from vlab.scenario.errors import ScenarioError, Where
from vlab.scenario.kernel import check_range
from vlab.scenario.model import FrameSpec, KernelRange, Scenario
from vlab.scenario.names import Names
from vlab.scenario.source import compose, decode, read_source, where
from vlab.scenario.vocabulary import FEATURES

TOP_KEYS = (
    "name",
    "description",
    "references",
    "xfail",
    "skip",
    "requires",
    "topology",
    "frames",
    "steps",
)
FRAME_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,39}$")


def _kernel_ranges(node: Node, what: str) -> tuple[KernelRange, ...]:
    """One ``{kernel, reason}`` mapping or a list of them."""
    nodes = node.value if isinstance(node, SequenceNode) else [node]
    result = []
    for item in nodes:
        found = fields.keys(item, what, ("kernel", "reason"), required=("kernel", "reason"))
        spec = fields.text(found["kernel"], f"{what} kernel", 200)
        bad = check_range(spec)
        if bad is not None:
            fields.fail(
                found["kernel"],
                f"kernel range clause '{bad}' is not understood",
                'write comparisons joined by commas, e.g. ">=5.18,<6.20"',
            )
        result.append(KernelRange(spec, fields.text(found["reason"], f"{what} reason")))
    return tuple(result)


def _strings(node: Node, what: str) -> tuple[str, ...]:
    return tuple(fields.text(item, what, 1000) for item in fields.sequence(node, what))


def _frames(node: Node, names: Names) -> tuple[tuple[str, FrameSpec], ...]:
    pairs = fields.mapping(node, "frames").value
    for key, _ in pairs:
        if not FRAME_NAME_RE.match(key.value):
            fields.fail(
                key,
                f"frame name '{key.value}' is not valid",
                "use a letter then letters, digits, '_' or '-'",
            )
        names.frames.append(key.value)
    return tuple(
        (key.value, read_frames.frame(value, f"frame '{key.value}'", names)) for key, value in pairs
    )


def loads_scenario(data: bytes | str, name: str = "<scenario>") -> Scenario:
    """Parse and validate scenario text; ``name`` is the file name used in error messages."""
    text = decode(data, name) if isinstance(data, bytes) else data
    root = compose(text, name)
    found = fields.keys(root, "a scenario", TOP_KEYS, required=("name", "topology", "steps"))
    names = Names()
    bridges = read_topology.topology(found["topology"], names)
    frames = _frames(found["frames"], names) if "frames" in found else ()
    requires = found.get("requires")
    return Scenario(
        name=fields.text(found["name"], "name", 200),
        description=fields.text(found["description"], "description")
        if "description" in found
        else "",
        references=_strings(found["references"], "references") if "references" in found else (),
        xfail=_kernel_ranges(found["xfail"], "xfail") if "xfail" in found else (),
        skip=_kernel_ranges(found["skip"], "skip") if "skip" in found else (),
        requires=tuple(
            fields.choice(item, "requires", FEATURES)
            for item in fields.sequence(requires, "requires")
        )
        if requires is not None
        else (),
        bridges=bridges,
        frames=frames,
        steps=read_steps.steps(found["steps"], names),
        where=where(root),
    )


def load_scenario(path: str | Path) -> Scenario:
    """Load the scenario file at ``path``; nothing is built, so a bad file costs nothing.

    Only a regular file is read, and only up to the size limit: a FIFO, a device or a symlink to
    /dev/zero is a :class:`ScenarioError` at once, not a hang or a gigabyte in memory.
    """
    path = Path(path)
    try:
        data = read_source(path)
    except RefusedFile as exc:
        raise ScenarioError(Where(str(path), 1, 1), exc.problem, exc.fix) from None
    return loads_scenario(data, str(path))
