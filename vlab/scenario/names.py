"""Resolving the names a scenario refers to: endpoints, bridges, named frames and MAC references.

References are checked while loading so that a typo (``vm3.mac``, ``at: upl``) is reported with
its line before any kernel object exists, with the closest known name as the suggested fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from yaml.nodes import Node

from vlab.scenario import fields

MAC_ATTRIBUTES = ("mac", "port_mac")


@dataclass
class Names:
    """The names declared by the topology and ``frames:`` section of one scenario."""

    bridges: list[str] = field(default_factory=list)
    endpoints: list[str] = field(default_factory=list)
    frames: list[str] = field(default_factory=list)
    cables: list[str] = field(default_factory=list)

    def endpoint_or_cable(self, node: Node, what: str) -> str:
        """An endpoint or a cable (``carrier`` unplugs either)."""
        value = fields.text(node, what)
        if value not in self.endpoints and value not in self.cables:
            fields.fail(
                node,
                f"{what} '{value}' is neither an endpoint nor a cable",
                self._hint(value, self.endpoints + self.cables),
            )
        return value

    def endpoint(self, node: Node, what: str) -> str:
        """An endpoint name that exists in the topology."""
        value = fields.text(node, what)
        if value not in self.endpoints:
            fields.fail(
                node, f"{what} '{value}' is not an endpoint", self._hint(value, self.endpoints)
            )
        return value

    def endpoint_list(self, node: Node, what: str) -> tuple[str, ...]:
        """One endpoint name or a list of them, each checked."""
        result: list[str] = []
        for item, _ in fields.names(node, what):
            value = self.endpoint(item, what)
            if value in result:
                fields.fail(item, f"{what} lists '{value}' twice", "name each endpoint once")
            result.append(value)
        return tuple(result)

    def bridge(self, node: Node, what: str) -> str:
        """A bridge name that exists in the topology."""
        value = fields.text(node, what)
        if value not in self.bridges:
            fields.fail(node, f"{what} '{value}' is not a bridge", self._hint(value, self.bridges))
        return value

    def only_bridge(self, node: Node, what: str) -> str:
        """The single bridge, for steps that may omit ``bridge:`` when there is only one."""
        if len(self.bridges) != 1:
            fields.fail(
                node,
                f"{what} does not say which bridge",
                "add 'bridge: <name>' (there are several)",
            )
        return self.bridges[0]

    def port_owner(self, node: Node, what: str) -> str:
        """An endpoint name or a bridge name (the bridge stands for its own local entries)."""
        value = fields.text(node, what)
        if value not in self.endpoints and value not in self.bridges and value not in self.cables:
            fields.fail(
                node,
                f"{what} '{value}' is neither an endpoint, a bridge nor a cable",
                self._hint(value, self.endpoints + self.bridges + self.cables),
            )
        return value

    def mac(self, node: Node, what: str) -> str:
        """A literal MAC, or ``<endpoint>.mac`` / ``<endpoint>.port_mac`` / ``<bridge>.mac``."""
        value = fields.text(node, what)
        if "." not in value:
            return fields.mac(node, what)
        owner, _, attribute = value.partition(".")
        if owner in self.bridges:
            if attribute != "mac":
                fields.fail(node, f"{what} '{value}' is not known", f"write {owner}.mac")
            return value
        if owner not in self.endpoints:
            fields.fail(
                node,
                f"{what} '{value}' refers to unknown '{owner}'",
                self._hint(owner, self.endpoints + self.bridges),
            )
        if attribute not in MAC_ATTRIBUTES:
            fields.fail(
                node,
                f"{what} '{value}' has no attribute '{attribute}'",
                f"write {owner}.mac (its own MAC) or {owner}.port_mac (its bridge port's MAC)",
            )
        return value

    def frame(self, node: Node, what: str) -> str:
        """The name of a frame declared under ``frames:``."""
        value = fields.text(node, what)
        if value not in self.frames:
            fields.fail(
                node,
                f"{what} '{value}' is not a declared frame",
                "declare it under 'frames:' or write the frame inline as a mapping"
                + (f"; {self._hint(value, self.frames)}" if self.frames else ""),
            )
        return value

    @staticmethod
    def _hint(value: str, known: list[str]) -> str:
        return fields.suggest(value, known).replace("allowed:", "known:")
