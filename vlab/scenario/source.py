"""Turn scenario bytes into a YAML node tree, refusing anything a plain data file does not need.

Only the composer stage of PyYAML runs: nodes keep their line and column, and no constructor ever
sees the document, so tags like ``!!python/object`` cannot execute anything. Aliases, explicit tags,
duplicate keys and runaway nesting are rejected here so later stages only meet plain data.
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from vlab.paths import RefusedFile, read_regular
from vlab.scenario.errors import Position, ScenarioError

MAX_BYTES = 1 << 20
"""Scenarios are hand-written; a megabyte is far beyond any real one and bounds parse time."""

MAX_DEPTH = 16
"""The deepest legitimate path (steps/step/send/frame/igmp/records/record/sources) is about 9."""

HELP = "see vlab/scenario/FORMAT.md"


def where(node: Node) -> Position:
    """The 1-based position of ``node`` in its file."""
    mark = node.start_mark
    return Position(mark.name, mark.line + 1, mark.column + 1)


def _mark_where(mark: yaml.Mark | None, name: str) -> Position:
    if mark is None:
        return Position(name, 1, 1)
    return Position(name, mark.line + 1, mark.column + 1)


class _Loader(yaml.SafeLoader):
    """A SafeLoader whose composer enforces the restrictions of the scenario format."""

    def __init__(self, text: str, name: str) -> None:
        super().__init__(text)
        self.name = name
        self._depth = 0

    def _fail(self, mark: yaml.Mark, problem: str, fix: str) -> NoReturn:
        raise ScenarioError(_mark_where(mark, self.name), problem, fix)

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            self._fail(
                event.start_mark,  # type: ignore[arg-type]
                f"alias '*{event.anchor}' is not supported",
                "define a shared frame once under 'frames:' and refer to it by name",
            )
        tag = getattr(event, "tag", None)
        if tag not in (None, "!"):
            written = str(tag).replace("tag:yaml.org,2002:", "!!")
            self._fail(
                event.start_mark,
                f"explicit YAML tag '{written}' is not allowed",
                "write plain values (strings, numbers, true/false, lists, mappings)",
            )
        self._depth += 1
        if self._depth > MAX_DEPTH:
            self._fail(
                event.start_mark,
                f"nesting is deeper than {MAX_DEPTH} levels",
                f"scenarios are shallow documents; {HELP}",
            )
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        return node

    def compose_mapping_node(self, anchor: str | None) -> MappingNode:  # type: ignore[override]
        node: MappingNode = super().compose_mapping_node(anchor)  # type: ignore[arg-type]
        seen: dict[str, Node] = {}
        for key, _value in node.value:
            if not isinstance(key, ScalarNode):
                self._fail(
                    key.start_mark, "a mapping key must be a plain name", "write `name: value`"
                )
            first = seen.get(key.value)
            if first is not None:
                self._fail(
                    key.start_mark,
                    f"duplicate key '{key.value}' (first at line {first.start_mark.line + 1})",
                    "each key may appear once in a mapping; merge the two entries",
                )
            seen[key.value] = key
        return node


def read_source(path: Path) -> bytes:
    """The bytes of a scenario file: a regular file, read up to one byte past :data:`MAX_BYTES`.

    Raises :class:`~vlab.paths.RefusedFile` (FIFO, device, directory, too large) or OSError.
    """
    try:
        return read_regular(path, MAX_BYTES, what="scenario")
    except RefusedFile as exc:
        if "bytes" in exc.problem:  # the same advice as for text handed to loads_scenario
            raise RefusedFile(path, exc.problem, _TOO_LARGE_FIX) from None
        raise


_TOO_LARGE_FIX = f"a scenario may be at most {MAX_BYTES} bytes; split it into several files"


def decode(data: bytes, name: str) -> str:
    """UTF-8 text of ``data``, or an error pointing at the first byte that is not UTF-8."""
    if len(data) > MAX_BYTES:
        raise ScenarioError(
            Position(name, 1, 1),
            f"the file is {len(data)} bytes",
            _TOO_LARGE_FIX,
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ScenarioError(
            Position(name, line, col),
            f"byte 0x{data[exc.start]:02x} is not valid UTF-8",
            "save the file as UTF-8",
        ) from None
    return text.removeprefix("\ufeff")


def _syntax_error(exc: yaml.MarkedYAMLError, name: str) -> ScenarioError:
    mark = exc.problem_mark or exc.context_mark
    problem = (exc.problem or exc.context or "invalid YAML").strip()
    return ScenarioError(_mark_where(mark, name), f"invalid YAML: {problem}", "fix the YAML syntax")


def compose(text: str, name: str) -> MappingNode:
    """The document's top-level mapping node, with every node's position recorded."""
    loader: _Loader | None = None
    try:
        loader = _Loader(text, name)
        node = loader.get_single_node()
    except yaml.composer.ComposerError as exc:
        if exc.context != "expected a single document in the stream":
            raise _syntax_error(exc, name) from None
        raise ScenarioError(
            _mark_where(exc.problem_mark, name),
            "the file holds a second YAML document",
            "a scenario file is one document; remove the '---' line or split the file",
        ) from None
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, name) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise ScenarioError(
            Position(name, line, col),
            f"character U+{exc.character:04X} is not allowed in YAML",
            "remove control characters from the file",
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    if node is None:
        raise ScenarioError(
            Position(name, 1, 1),
            "the file is empty",
            f"a scenario needs at least 'name', 'topology' and 'steps'; {HELP}",
        )
    if not isinstance(node, MappingNode):
        raise ScenarioError(
            where(node),
            "the document is not a mapping",
            f"a scenario is a mapping with keys such as 'name', 'topology' and 'steps'; {HELP}",
        )
    return node
