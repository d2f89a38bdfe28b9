"""Loading a scenario file into a :class:`Scenario`, validating everything before any lab exists.

Sections are read in dependency order (topology, then frames, then steps) whatever order the file
writes them in, so every reference can be checked against declared names.
"""

from __future__ import annotations

import difflib
import re
from functools import partial
from pathlib import Path

from yaml.nodes import MappingNode, Node, SequenceNode

from vlab.paths import RefusedFile
from vlab.scenario import fields, hints, read_cables, read_frames, read_steps, read_topology, rules
from vlab.scenario.errors import Position, ScenarioError
from vlab.scenario.kernel import check_range
from vlab.scenario.names import Names
from vlab.scenario.problems import attempt, collecting, fail_later
from vlab.scenario.source import compose, decode, read_source, where
from vlab.scenario.spec import FrameSpec, KernelRange, Scenario
from vlab.scenario.vocabulary import FEATURES

TOP_KEYS = (
    "name",
    "description",
    "references",
    "xfail",
    "skip",
    "requires",
    "topology",
    "cables",
    "frames",
    "steps",
)
REQUIRED = ("name", "topology", "steps")
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
        if not FRAME_NAME_RE.fullmatch(key.value):
            fields.fail(
                key,
                f"frame name '{key.value}' is not valid",
                "use a letter then letters, digits, '_' or '-'",
            )
        names.frames.append(key.value)
    read = read_frames.frame
    frames = (
        (key.value, attempt(partial(read, value, f"frame '{key.value}'", names), None))
        for key, value in pairs
    )
    return tuple((name, spec) for name, spec in frames if spec is not None)


def _top(root: MappingNode) -> dict[str, Node]:
    """The top-level sections; an unknown or missing key is recorded and the rest still read."""
    found: dict[str, Node] = {}
    meant: set[str] = set()  # what the unknown keys look like typos of
    for key, value in root.value:
        if key.value in TOP_KEYS:
            found[key.value] = value
        else:
            meant.update(difflib.get_close_matches(key.value, TOP_KEYS, n=1, cutoff=0.6))
            fail_later(
                where(key),
                f"unknown key '{key.value}' in a scenario",
                fields.suggest(key.value, TOP_KEYS),
            )
    for name in REQUIRED:
        if name not in found and name not in meant:  # a typo of it is reported already
            fail_later(
                where(root),
                f"a scenario has no '{name}'",
                f"add '{name}:'; allowed keys: {', '.join(TOP_KEYS)}",
            )
    return found


def loads_scenario(data: bytes | str, name: str = "<scenario>") -> Scenario:
    """Parse and validate scenario text; ``name`` is the file name used in error messages.

    Every mistake found is reported in one :class:`ScenarioError` (see
    :mod:`vlab.scenario.problems`), up to a limit.
    """
    text = decode(data, name) if isinstance(data, bytes) else data
    try:
        root = compose(text, name)
    except ScenarioError as exc:
        raise hints.explain(exc, text) from None
    with collecting():
        scenario = _read(root)
    return scenario


def _read(root: MappingNode) -> Scenario:
    found = _top(root)
    names = Names()
    topology = found.get("topology")
    bridges = (
        attempt(lambda: read_topology.topology(topology, names), ()) if topology is not None else ()
    )
    cabled = found.get("cables")
    cables = (
        attempt(lambda: read_cables.cables(cabled, names, bridges), ())
        if cabled is not None
        else ()
    )
    frames = attempt(lambda: _frames(found["frames"], names), ()) if "frames" in found else ()
    requires = found.get("requires")
    listed = found.get("steps")
    steps = attempt(lambda: read_steps.steps(listed, names), ()) if listed is not None else ()
    rules.check_ports(bridges, steps)
    return Scenario(
        name=attempt(lambda: fields.text(found["name"], "name", 200), "")
        if "name" in found
        else "",
        description=attempt(lambda: fields.text(found["description"], "description"), "")
        if "description" in found
        else "",
        references=attempt(lambda: _strings(found["references"], "references"), ())
        if "references" in found
        else (),
        xfail=attempt(lambda: _kernel_ranges(found["xfail"], "xfail"), ())
        if "xfail" in found
        else (),
        skip=attempt(lambda: _kernel_ranges(found["skip"], "skip"), ()) if "skip" in found else (),
        requires=attempt(
            lambda: tuple(
                fields.choice(item, "requires", FEATURES)
                for item in fields.sequence(requires, "requires")
            ),
            (),
        )
        if requires is not None
        else (),
        bridges=bridges,
        cables=cables,
        frames=frames,
        steps=steps,
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
        raise ScenarioError(Position(str(path), 1, 1), exc.problem, exc.fix) from None
    return loads_scenario(data, str(path))
