"""The JSON Schema of host inspection output, and a validator for the part of JSON Schema it uses.

Shipped in the package so a consumer can check a document against the exact version that wrote
it. The validator knows the keywords ``schema.json`` uses (type, properties, required,
additionalProperties, items, enum, const, pattern, minLength, minimum, maximum, oneOf, $ref);
it is what the test suite validates with, and it refuses a schema keyword it does not know so a
new keyword cannot be silently ignored.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

__all__ = ["load", "validate"]

_KNOWN = {
    "$schema", "$id", "$defs", "title", "description", "type", "properties", "required",
    "additionalProperties", "items", "enum", "const", "pattern", "minLength", "minimum",
    "maximum", "oneOf", "$ref",
}  # fmt: skip
_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def load() -> dict[str, Any]:
    text = resources.files("vlab.hostview").joinpath("schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def _is(value: object, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def validate(doc: object, schema: dict[str, Any] | None = None) -> list[str]:
    """Every violation as ``path: what is wrong``; an empty list means the document is valid."""
    root = schema if schema is not None else load()
    errors: list[str] = []
    _check(doc, root, root, "$", errors)
    return errors


def _check(
    value: object, s: dict[str, Any], root: dict[str, Any], path: str, out: list[str]
) -> None:
    unknown = set(s) - _KNOWN
    if unknown:
        raise ValueError(f"schema keyword(s) {sorted(unknown)} at {path} are not supported")
    if "$ref" in s:
        ref = s["$ref"]
        if not ref.startswith("#/$defs/"):
            raise ValueError(f"only local $refs are supported, not {ref}")
        _check(value, root["$defs"][ref[len("#/$defs/") :]], root, path, out)
    if "oneOf" in s:
        results: list[list[str]] = []
        for option in s["oneOf"]:
            sub: list[str] = []
            _check(value, option, root, path, sub)
            results.append(sub)
        passing = sum(not sub for sub in results)
        if passing != 1:
            out.append(f"{path}: matches {passing} of the {len(s['oneOf'])} oneOf alternatives")
        if passing == 0:  # the closest alternative's reasons are the useful ones
            closest: list[str] = min(results, key=len)
            out.extend(closest)
    if "type" in s:
        names = s["type"] if isinstance(s["type"], list) else [s["type"]]
        if not any(_is(value, n) for n in names):
            out.append(f"{path}: {type(value).__name__} {value!r:.60} is not {' or '.join(names)}")
            return
    if "const" in s and value != s["const"]:
        out.append(f"{path}: {value!r} is not {s['const']!r}")
    if "enum" in s and value not in s["enum"]:
        out.append(f"{path}: {value!r} is not one of {s['enum']}")
    if isinstance(value, str):
        if "pattern" in s and not re.search(s["pattern"], value):
            out.append(f"{path}: {value!r} does not match {s['pattern']}")
        if len(value) < s.get("minLength", 0):
            out.append(f"{path}: {value!r} is shorter than {s['minLength']}")
    if _is(value, "number"):
        assert isinstance(value, int | float)
        if "minimum" in s and value < s["minimum"]:
            out.append(f"{path}: {value} is below {s['minimum']}")
        if "maximum" in s and value > s["maximum"]:
            out.append(f"{path}: {value} is above {s['maximum']}")
    if isinstance(value, dict):
        for key in s.get("required", []):
            if key not in value:
                out.append(f"{path}: missing {key!r}")
        props = s.get("properties", {})
        for key, item in value.items():
            if key in props:
                _check(item, props[key], root, f"{path}.{key}", out)
            elif s.get("additionalProperties") is False:
                out.append(f"{path}: unexpected property {key!r}")
    if isinstance(value, list) and "items" in s:
        for i, item in enumerate(value):
            _check(item, s["items"], root, f"{path}[{i}]", out)
