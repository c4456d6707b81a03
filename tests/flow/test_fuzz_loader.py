"""Fuzzing the flow loader: whatever the text, only the project's own errors come out.

Random mappings (shaped like flows, with plausible keys and values) and random or mangled
YAML text go through ``workbench.flow.loads``; what loads then goes through ``problems``,
``validate`` and a save/load round trip. Any exception that is not a ``WorkbenchError`` is a
bug (issue 2, "Bad input").
"""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from workbench.errors import FlowError, WorkbenchError
from workbench.examples import flow_path
from workbench.flow import dumps, load, loads, problems, validate
from workbench.flow.io import NODE_COMMON, RAIL_KEYS, TOP_KEYS
from workbench.flow.kinds import KINDS

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))

# Plausible keys: every key the flow format knows (from the loader itself, so the fuzz follows
# the format) plus type-expression keys and typical port names.
KEYS = [
    *dict.fromkeys([*TOP_KEYS, *NODE_COMMON, *(k for spec in KINDS.values() for k in spec.keys), *RAIL_KEYS]),
    "str",
    "int",
    "float",
    "bool",
    "enum",
    "list",
    "max_items",
    "ge",
    "gt",
    "le",
    "lt",
    "max_len",
    "pattern",
    "init",
    "next",
    "item",
    "result",
    "x",
    "y",
    "a",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "int",
            "str",
            "float",
            "bool",
            "tool",
            "llm",
            "loop",
            "vote",
            "router",
            "flow",
            "a.b",
            "x",
            "a -> b.c",
            "x -> y",
            "m:f",
            "workbench.examples.support:redact",
            "quorum",
            "decode",
            "repair",
            "pii.no_email",
            "",
            " ",
        ]
    ),
    st.text(max_size=6),
)


def _mappings(children: st.SearchStrategy) -> st.SearchStrategy:
    keys = st.sampled_from(KEYS) | st.text(max_size=4) | st.integers(-2, 2)
    return st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5)


anything = st.recursive(SCALARS, _mappings, max_leaves=25)


def mostly(good: st.SearchStrategy) -> st.SearchStrategy:
    """``good`` nine times in ten, anything at all otherwise."""
    return st.integers(0, 9).flatmap(lambda i: anything if i == 0 else good)


names = st.sampled_from(["a", "b", "x", "y", "n", "L", "1x", "null"])
port_types = st.sampled_from(["int", "str", "float", "T", "nope", {"list": "int"}, {"int": {"ge": 0}}])
port_maps = st.dictionaries(names, mostly(port_types), max_size=3)

node_specs = st.fixed_dictionaries(
    {"kind": mostly(st.sampled_from(["tool", "llm", "router", "vote", "loop", "flow", "code"]))},
    optional={
        "inputs": mostly(port_maps),
        "outputs": mostly(port_maps),
        "tool": mostly(st.sampled_from(["m:f", "workbench.examples.support:redact", "x"])),
        "prompt": mostly(st.text(max_size=10)),
        "routes": mostly(st.dictionaries(names, st.sampled_from(["x > 0", "true", ""]), max_size=2)),
        "default": mostly(names),
        "rule": mostly(st.sampled_from(["majority", "quorum", "plurality"])),
        "quorum": mostly(st.integers(0, 3)),
        "max_iterations": mostly(st.integers(0, 3)),
        "until": anything,
        "temperature": anything,
        "max_tokens": anything,
        "guarantees": mostly(st.lists(st.sampled_from(["x > 0", ""]), max_size=2)),
        "timeout": anything,
        "retries": anything,
        "flow": anything,
    },
)
wire_texts = st.builds(
    lambda a, b: f"{a} -> {b}",
    st.sampled_from(["x", "a.o", "n.o", "L.item", "b.y"]),
    st.sampled_from(["y", "n.i", "a.x", "L.next"]),
)
rail_specs = st.fixed_dictionaries(
    {"on": mostly(st.sampled_from(["x", "y", "n.o", "a.b.c"]))},
    optional={
        "check": mostly(st.sampled_from(["x > 0", "len(y) < 3"])),
        "use": anything,
        "with": anything,
        "enforce": mostly(st.sampled_from(["block", "repair", "decode", "observe"])),
        "max_attempts": anything,
    },
)
flow_like = st.fixed_dictionaries(
    {"flow": mostly(st.just("f"))},
    optional={
        "version": mostly(st.just(1)),
        "types": mostly(
            st.dictionaries(st.sampled_from(["T", "U", "int", "1"]), mostly(port_types), max_size=3)
        ),
        "constants": anything,
        "inputs": mostly(port_maps),
        "outputs": mostly(port_maps),
        "nodes": mostly(st.dictionaries(names, mostly(node_specs), max_size=4)),
        "wires": mostly(st.lists(mostly(wire_texts), max_size=5)),
        "rails": mostly(st.dictionaries(names, mostly(rail_specs), max_size=3)),
        "use": anything,
        "description": mostly(st.text(max_size=5)),
    },
)


def check_loader(text: str | bytes) -> None:
    """Load ``text``; if it loads, validate it and save/load it. Only our errors may escape."""
    try:
        flow = loads(text, source="fuzz.flow.yaml")
    except WorkbenchError as exc:
        assert isinstance(exc, FlowError), exc
        assert str(exc).startswith("fuzz.flow.yaml"), exc
        return
    found = problems(flow)
    assert all(isinstance(p, str) and p for p in found)
    try:
        validate(flow)
    except WorkbenchError as exc:
        assert found, exc
    saved = dumps(flow)
    assert dumps(loads(saved)) == saved


def to_text(data: object, how: str) -> str:
    if how == "json":
        return json.dumps(data, default=str)
    return yaml.safe_dump(data, default_flow_style=how == "flow", allow_unicode=True, sort_keys=False)


@FUZZ
@given(flow_like, st.sampled_from(["block", "flow", "json"]))
@example({"flow": "f", "nodes": {"r": {"kind": "router", "inputs": {"a": "int", "b": "int"}}}}, "block")
@example({"flow": "f", "nodes": {"r": {"kind": "router", "routes": {"a": "x"}, "default": [1]}}}, "block")
@example({"flow": "f", "inputs": {"x": {"float": {"ge": 10**400}}}}, "json")
def test_flow_shaped_mappings(data, how):
    check_loader(to_text(data, how))


@FUZZ
@given(anything, st.sampled_from(["block", "flow", "json"]))
def test_arbitrary_mappings(data, how):
    check_loader(to_text(data, how))


YAML_ALPHABET = string.ascii_letters[:8] + string.digits[:3] + " \n\t:-{}[],'\"&*!|>#%@`?.~\\\x00é"


@FUZZ
@given(st.text(YAML_ALPHABET, max_size=80))
def test_random_yaml_text(text):
    check_loader(text)


@FUZZ
@given(st.binary(max_size=60))
def test_random_bytes(data):
    check_loader(data)


EXAMPLES = [flow_path(name).read_text(encoding="utf-8") for name in ("trader", "triage")]


@st.composite
def mangled_examples(draw: st.DrawFn) -> str:
    """An example flow file with a few characters or lines deleted, inserted or swapped."""
    text = draw(st.sampled_from(EXAMPLES))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "insert", "replace", "swap_lines", "dup_line"]))
        pos = draw(st.integers(0, max(len(text) - 1, 0)))
        if op == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 5)) :]
        elif op == "insert":
            text = text[:pos] + draw(st.text(YAML_ALPHABET, min_size=1, max_size=4)) + text[pos:]
        elif op == "replace":
            text = text[:pos] + draw(st.sampled_from(YAML_ALPHABET)) + text[pos + 1 :]
        else:
            lines = text.split("\n")
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            if op == "swap_lines":
                lines[i], lines[j] = lines[j], lines[i]
            else:
                lines.insert(i, lines[j])
            text = "\n".join(lines)
    return text


@FUZZ
@given(mangled_examples())
def test_mangled_example_files(text):
    check_loader(text)


# Paths a flow node may name: missing, special, relative, escaping, empty, with odd characters.
SUB_PATHS = [
    "sub.flow.yaml",
    "./sub.flow.yaml",
    "dir/../sub.flow.yaml",
    "missing.flow.yaml",
    "outer.flow.yaml",
    "",
    ".",
    "/",
    "/proc/self/status",
    "/dev/null",
    "dir",
    "a\u0000b",
    "line\nbreak",
]


@FUZZ
@given(flow_like, st.sampled_from(["block", "json"]), st.sampled_from(SUB_PATHS))
def test_sub_flow_files(data, how, sub_path):
    """A file naming a sub-flow file with fuzzed content: errors name the including file."""
    outer = {"flow": "outer", "nodes": {"s": {"kind": "flow", "flow": sub_path}}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "dir").mkdir()
        (root / "sub.flow.yaml").write_text(to_text(data, how), encoding="utf-8")
        (root / "outer.flow.yaml").write_text(json.dumps(outer), encoding="utf-8")
        try:
            flow = load(root / "outer.flow.yaml")
        except WorkbenchError as exc:
            assert isinstance(exc, FlowError), exc
            assert str(exc).startswith(f"{root / 'outer.flow.yaml'}:1:"), exc
            assert "\n" not in str(exc), exc
            return
    inner = flow.nodes["s"].config["flow"]
    assert inner.origin == sub_path
    assert loads(dumps(inner)) == inner
