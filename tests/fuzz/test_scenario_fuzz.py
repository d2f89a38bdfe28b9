"""Fuzzing the scenario loader: any input is a valid scenario or a ScenarioError at file:line.

Scenario files are written by hand and reviewed by people, so a bad one must never produce a
Python traceback (KeyError, RecursionError, OverflowError...) in place of the line to fix. Inputs
come from three directions: random documents built from the format's own vocabulary (so the search
reaches the deep validators, not just "unknown key"), the real scenario library mutated at the tree
level (wrong types, unknown keys, huge numbers, bad MACs, unicode, deep nesting), and the same files
mutated as text (broken indentation, truncation, stray bytes). Loaded scenarios must also write
back out (``dump_scenario`` re-loads its own output), and the ones that load are played on real
labs, which must close without leaving a namespace behind.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from fuzzkit import budget, net_fds
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from vlab import Lab, LabError
from vlab.endpoints import Endpoint
from vlab.scenario import Scenario, ScenarioError, dump_scenario, loads_scenario, run_scenario
from vlab.scenario.spec import Wait

NAME = "fuzz.yaml"
ERROR_RE = re.compile(r"^fuzz\.yaml:(\d+):(\d+): \S.*; \S", re.S)
LIBRARY = sorted((Path(__file__).resolve().parents[2] / "scenarios").rglob("*.yaml"))
TEXTS = {p.name: p.read_text() for p in LIBRARY}
TREES = {name: yaml.safe_load(text) for name, text in TEXTS.items()}

KEYS = [
    # top level, topology, endpoints, frames, steps: the words the loader dispatches on
    *("name", "description", "references", "xfail", "skip", "requires", "topology", "frames"),
    *("steps", "kernel", "reason", "options", "vms", "hosts", "uplink", "fdb", "mac", "port"),
    *("at", "sticky", "static", "src", "dst", "ethertype", "payload", "text", "hex", "size"),
    *("vlan", "id", "prio", "raw", "arp", "op", "sender_ip", "target_ip", "sender_mac"),
    *("target_mac", "ipv4", "ttl", "udp", "sport", "dport", "igmp", "report", "leave", "query"),
    *("version", "records", "type", "group", "sources", "source_ip", "lldp", "chassis"),
    *("eapol", "stp", "root_priority", "root_mac", "cost", "port_id", "ipv6_ns", "target"),
    *("length", "data", "send", "from", "frame", "expect", "only", "ignore", "expect_none"),
    *("contains", "lacks", "kind", "fdb_add", "fdb_del", "fdb_flush", "bridge", "set"),
    *("rejected", "carrier", "up", "wait", "neigh", "ip", "note", "ageing_time", "state"),
    *("group_fwd_mask", "multicast_snooping", "learning", "locked", "br0", "vm1", "vm2", "h1"),
]
WORDS = [*KEYS, "vm1.mac", "vm2.port_mac", "br0.mac", "request", "is_in", "forwarding"]


def macs() -> st.SearchStrategy[str]:
    """MAC-shaped strings, most of them subtly wrong."""
    octet = st.text("0123456789abcdefABCDEFgG:-", min_size=0, max_size=3)
    return st.one_of(
        st.lists(octet, min_size=0, max_size=8).map(":".join),
        st.sampled_from(["52:54:00:00:00:01", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00"]),
        st.sampled_from(["52-54-00-00-00-01", "5254.0000.0001", "52:54:00:00:00", "::::::"]),
    )


def scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**40), max_value=10**40),
        st.integers(min_value=-2, max_value=70000),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=30),
        st.text(st.characters(codec="utf-8"), max_size=10),
        st.sampled_from(WORDS),
        macs(),
    )


def values(max_leaves: int = 30) -> st.SearchStrategy[Any]:
    keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=12), st.integers(-5, 5))
    return st.recursive(
        scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=5), st.dictionaries(keys, inner, max_size=5)
        ),
        max_leaves=max_leaves,
    )


def nested(depth: int, leaf: Any) -> Any:
    for i in range(depth):
        leaf = [leaf] if i % 2 else {"steps": leaf}
    return leaf


def render(doc: Any, flow: bool | None) -> str:
    """YAML text for ``doc``; PyYAML itself may refuse some values (NaN keys...)."""
    try:
        return yaml.safe_dump(doc, default_flow_style=flow, allow_unicode=True, sort_keys=False)
    except (yaml.YAMLError, ValueError, RecursionError):
        assume(False)
        raise AssertionError("unreachable") from None


def check(data: str | bytes) -> Scenario | None:
    """The property itself: a Scenario that survives a round trip, or a located ScenarioError."""
    before = net_fds()
    try:
        scenario = loads_scenario(data, NAME)
    except ScenarioError as exc:
        text = str(exc)
        found = ERROR_RE.match(text)
        assert found, f"error without file:line:col and a fix: {text!r}"
        lines = (data.decode("utf-8", "replace") if isinstance(data, bytes) else data).count("\n")
        assert 1 <= int(found.group(1)) <= lines + 2, text
        assert exc.where.file == NAME
        return None
    finally:
        assert net_fds() == before, "loading a scenario must not build anything"
    assert isinstance(scenario, Scenario)
    dumped = dump_scenario(scenario)  # raises if what it writes would not load back equal
    assert loads_scenario(dumped, NAME) == scenario
    return scenario


@budget(150)
@given(doc=values(), flow=st.sampled_from([None, True, False]))
def test_random_documents(doc: Any, flow: bool | None) -> None:
    check(render(doc, flow))


@budget(150)
@given(
    name=scalars(),
    topology=values(20),
    frames=values(10) | st.just(None),
    steps=values(20),
    flow=st.sampled_from([None, True, False]),
)
def test_random_documents_with_the_required_keys(
    name: Any, topology: Any, frames: Any, steps: Any, flow: bool | None
) -> None:
    doc: dict[str, Any] = {"name": name, "topology": topology, "steps": steps}
    if frames is not None:
        doc["frames"] = frames
    check(render(doc, flow))


@budget(100)
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_arbitrary_bytes(data: bytes) -> None:
    check(data)


def _slots(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) in a parsed tree: the places a mutation can strike."""
    out: list[tuple[Any, Any]] = []
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, child in list(items):
        out.append((node, key))
        if isinstance(child, dict | list) and child:
            out.extend(_slots(child))
    return out


MUTATIONS = (
    "replace",
    "delete",
    "unknown_key",
    "rename_key",
    "bad_mac",
    "huge",
    "wrap",
    "deep",
    "unicode",
    "negate",
)


def mutate(draw: st.DrawFn, tree: Any) -> Any:
    slots = _slots(tree)
    if not slots:
        return draw(values())
    container, key = draw(st.sampled_from(slots))
    what = draw(st.sampled_from(MUTATIONS))
    value = container[key]
    if what == "replace":
        container[key] = draw(values(10))
    elif what == "delete":
        del container[key]
    elif what == "unknown_key" and isinstance(container, dict):
        container[draw(st.text(min_size=1, max_size=10))] = draw(scalars())
    elif what == "rename_key" and isinstance(container, dict):
        container[draw(st.sampled_from(KEYS))] = container.pop(key)
    elif what == "bad_mac":
        container[key] = draw(macs())
    elif what == "huge":
        container[key] = draw(st.sampled_from([10**30, -(10**30), 2**64, 2**31, 1e308, math.inf]))
    elif what == "wrap":
        container[key] = draw(st.sampled_from([[value], {"x": value}, {str(key): value}]))
    elif what == "deep":
        container[key] = nested(draw(st.integers(10, 60)), value)
    elif what == "unicode":
        container[key] = draw(st.text(st.characters(codec="utf-8"), min_size=1, max_size=20))
    elif what == "negate" and isinstance(value, int | float) and not isinstance(value, bool):
        container[key] = -value - 1
    return tree


@st.composite
def mutated_library(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(sorted(TREES)))
    tree = yaml.safe_load(TEXTS[name])  # a fresh copy each time
    for _ in range(draw(st.integers(1, 3))):
        tree = mutate(draw, tree)
    return render(tree, draw(st.sampled_from([None, True, False])))


@budget(250)
@given(text=mutated_library())
def test_mutated_library_scenarios(text: str) -> None:
    check(text)


@st.composite
def mangled_text(draw: st.DrawFn) -> bytes:
    text = TEXTS[draw(st.sampled_from(sorted(TEXTS)))]
    lines = text.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, max(0, len(lines) - 1)))
        op = draw(st.sampled_from(["drop", "dup", "indent", "dedent", "insert", "truncate"]))
        if not lines:
            break
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "indent":
            lines[i] = draw(st.sampled_from([" ", "  ", "\t", "    "])) + lines[i]
        elif op == "dedent":
            lines[i] = lines[i].lstrip()
        elif op == "insert":
            at = draw(st.integers(0, len(lines[i])))
            junk = draw(st.text(max_size=4) | st.sampled_from(["&a ", "*a", "!!python/", "\0"]))
            lines[i] = lines[i][:at] + junk + lines[i][at:]
        elif op == "truncate":
            lines = lines[: i + 1]
            lines[-1] = lines[-1][: draw(st.integers(0, len(lines[-1])))]
    data = "".join(lines).encode()
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=3)) + data[at:]
    return data


@budget(250)
@given(data=mangled_text())
def test_mangled_library_text(data: bytes) -> None:
    check(data)


@st.composite
def rearranged_library(draw: st.DrawFn) -> str:
    """Library scenarios changed in ways that mostly keep them valid, so they reach a lab:
    steps dropped, repeated or swapped, flags flipped, numbers nudged, waits shortened."""
    tree = yaml.safe_load(TEXTS[draw(st.sampled_from(sorted(TEXTS)))])
    steps = tree["steps"]
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["drop", "dup", "swap", "flip", "nudge"]))
        i, j = draw(st.integers(0, len(steps) - 1)), draw(st.integers(0, len(steps) - 1))
        if op == "drop" and len(steps) > 1:
            del steps[i]
        elif op == "dup":
            steps.insert(i, steps[j])
        elif op == "swap":
            steps[i], steps[j] = steps[j], steps[i]
        else:
            slots = [
                (c, k)
                for c, k in _slots(tree)
                if isinstance(c[k], bool) == (op == "flip") and isinstance(c[k], int | float)
            ]
            if slots:
                c, k = draw(st.sampled_from(slots))
                c[k] = (not c[k]) if op == "flip" else max(0, c[k] + draw(st.integers(-2, 2)))
    for step in steps:
        if isinstance(step, dict) and "wait" in step:
            step["wait"] = 0.05
    return render(tree, None)


def test_every_library_scenario_loads_and_round_trips() -> None:
    """The seeds of the mutations are themselves valid: otherwise the fuzzer only tests errors."""
    for path in LIBRARY:
        assert check(path.read_text()) is not None, path


@pytest.mark.vlab
def test_loaded_scenarios_run_on_real_labs_and_leave_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Mutated scenarios that still load are played on a lab: outcomes are pass, AssertionError
    or LabError (a skip for a missing kernel feature), and the lab always closes completely."""
    real_expect = Endpoint.expect

    def quick_expect(self: Endpoint, frame: Any, timeout: float = 1.0, mask: Any = None) -> Any:
        # a fuzzed scenario that fails is a normal outcome: waiting 1 s each time only slows it
        return real_expect(self, frame, timeout=min(timeout, 0.05), mask=mask)

    monkeypatch.setattr(Endpoint, "expect", quick_expect)
    before = net_fds()
    outcomes: dict[str, int] = {}

    quiet = [*budget(25).suppress_health_check, HealthCheck.filter_too_much]

    @settings(budget(25), suppress_health_check=quiet)
    @given(text=rearranged_library())
    def run(text: str) -> None:
        try:
            scenario = loads_scenario(text, NAME)
        except ScenarioError:
            assume(False)
            return
        assume(sum(s.seconds for s in scenario.steps if isinstance(s, Wait)) <= 0.3)
        try:
            with Lab(name="fuzz", artifacts=tmp_path / "artifacts") as lab:  # failures' pcaps
                run_scenario(scenario, lab)
            outcome = "passed"
        except AssertionError:
            outcome = "failed"
        except LabError as exc:
            outcome = type(exc).__name__
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        assert net_fds() == before, "a lab outlived its `with` block"

    run()
    print("outcomes of mutated scenarios on labs:", outcomes)
    assert outcomes, "no mutated scenario loaded: the search never reached a lab"
