"""Flow files (docs/architecture.md, "Flow files"): the shipped examples, load/save identity, and
every way a file can be bad."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from workbench.errors import FlowError, FlowSyntaxError
from workbench.examples import flow_path, list_flows
from workbench.flow import Flow, Node, PortRef, RailSpec, Wire, dump, dumps, flow_hash, load, loads, save
from workbench.flow.io import (
    MAX_EXPANDED_VALUES,
    MAX_FLOW_BYTES,
    MAX_SUBFLOW_DEPTH,
    UnreadableFile,
    read_limited,
)
from workbench.types import Enum, Float, Int, List, Record, Str

from ..hostile import SPECIAL_KINDS, run_limited, special_file
from .strategies import flows


def syntax_error(text: str | bytes, source: str = "f.flow.yaml") -> FlowSyntaxError:
    with pytest.raises(FlowSyntaxError) as info:
        loads(text, source=source)
    return info.value


def yaml(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# -- the shipped examples ---------------------------------------------------------------------------


def test_both_examples_are_shipped():
    assert {"trader", "triage"} <= set(list_flows())


def test_trader_loads_as_design_4_describes():
    flow = load(flow_path("trader"))
    assert flow.name == "trader" and flow.version == 1
    side = Enum("buy", "sell", "hold")
    order = Record(side=side, ticker=Str(pattern="[A-Z]{1,5}"), qty=Int(ge=0), price=Float(gt=0))
    assert flow.types == {"Side": side, "Order": order}
    assert flow.types["Order"].field_types["side"].name == "Side"
    assert flow.constants == {"RESTRICTED": ["ACME", "GLOBX"]}
    assert flow.inputs == {"news": Str(), "cash": Float(ge=0)}
    assert flow.outputs == {"approved": order} and flow.outputs["approved"].name == "Order"
    analyst, risk = flow.nodes["analyst"], flow.nodes["risk"]
    assert list(flow.nodes) == ["analyst", "risk"]
    assert analyst.kind == "llm" and analyst.config["model"] == "default"
    assert analyst.config["prompt"] == "News: {{ news }}\nCash: {{ cash }}\nPropose one order as JSON."
    assert risk.config == {"tool": "workbench.examples.trading:risk_check"}
    assert risk.guarantees == ["approved.qty <= proposed.qty", "approved.price == proposed.price"]
    assert [str(w) for w in flow.wires] == [
        "news -> analyst.news",
        "cash -> analyst.cash",
        "cash -> risk.cash",
        "analyst.order -> risk.proposed",
        "risk.approved -> approved",
    ]
    assert flow.wires[3] == Wire(PortRef("analyst", "order"), PortRef("risk", "proposed"))
    assert flow.rails["budget"] == RailSpec(
        "budget", PortRef("analyst", "order"), "order.qty * order.price <= cash", "decode"
    )
    assert flow.rails["restricted"].enforce == "block"
    assert list(flow.rails) == ["budget", "restricted", "cap"]


def test_triage_loads():
    flow = load(flow_path("triage"))
    assert list(flow.nodes) == ["redact", "classify", "prioritise", "summarise"]
    assert all(n.kind == "tool" for n in flow.nodes.values())
    assert flow.inputs["tier"] == Enum("free", "pro", "enterprise")
    assert flow.rails["no_email"].check == 'not matches(reply.summary, ".*@.*")'


@pytest.mark.parametrize("name", ["trader", "triage"])
def test_examples_round_trip_in_yaml_and_json(name, tmp_path):
    flow = load(flow_path(name))
    text = dumps(flow)
    again = loads(text)
    assert again == flow
    assert dumps(again) == text
    assert flow_hash(again) == flow_hash(flow)
    # through files, both formats
    assert load(save(flow, tmp_path / f"{name}.flow.yaml")) == flow
    json_path = save(flow, tmp_path / f"{name}.flow.json")
    assert json.loads(json_path.read_text(encoding="utf-8")) == dump(flow)
    assert load(json_path) == flow
    assert dumps(load(json_path)) == text


def test_saved_trader_text_is_canonical():
    text = dumps(load(flow_path("trader")))
    top = [line.split(":")[0] for line in text.splitlines() if line and not line.startswith(" ")]
    assert top == [
        "flow",
        "version",
        "description",
        "types",
        "constants",
        "inputs",
        "outputs",
        "nodes",
        "wires",
        "rails",
    ]
    assert "    prompt: |-\n      News: {{ news }}\n      Cash: {{ cash }}\n" in text
    assert "  budget: {on: analyst.order, check: order.qty * order.price <= cash, enforce: decode}\n" in text
    assert "  Side: {enum: [buy, sell, hold]}\n" in text
    assert "    outputs: {order: Order}\n" in text
    assert "  - analyst.order -> risk.proposed\n" in text


def test_node_keys_are_saved_in_kind_order():
    flow = Flow("f")
    node = Node.llm("ask", "hi", inputs={}, outputs={"a": str}, model="m", retries=2, timeout=1.5)
    node.config["max_tokens"] = 5
    node.config["temperature"] = 0.5
    node.config["zzz"] = 1
    node.config["aaa"] = 2
    node.guarantees = ["a != ''"]
    flow.add(node)
    assert list(dump(flow)["nodes"]["ask"]) == [
        "kind",
        "model",
        "prompt",
        "temperature",
        "max_tokens",
        "aaa",
        "zzz",
        "inputs",
        "outputs",
        "guarantees",
        "timeout",
        "retries",
    ]
    assert loads(dumps(flow)) == flow


def test_dump_leaves_out_defaults():
    flow = Flow("f").add(Node.tool("t", "a:b", inputs={}, outputs={}))
    flow.add_rail("r", "t.x", "x > 0")
    data = dump(flow)
    assert list(data) == ["flow", "version", "inputs", "outputs", "nodes", "wires", "rails"]
    assert data["nodes"]["t"] == {"kind": "tool", "tool": "a:b", "inputs": {}, "outputs": {}}
    assert data["rails"] == {"r": {"on": "t.x", "check": "x > 0"}}


# -- load -> save -> load, for any flow --------------------------------------------------------------


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flows(depth=1))
def test_random_flows_round_trip(flow):
    check_round_trip(flow)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flows(depth=2))
def test_random_flows_with_nested_sub_flows_round_trip(flow):
    check_round_trip(flow)


def check_round_trip(flow: Flow) -> None:
    text = dumps(flow)
    again = loads(text)
    assert again == flow, text
    assert dumps(again) == text
    as_json = dumps(flow, "json")
    assert json.loads(as_json) == json.loads(json.dumps(dump(flow)))
    assert loads(as_json) == flow, as_json
    assert flow_hash(loads(as_json)) == flow_hash(flow)


def test_multi_line_text_uses_block_scalars_only_where_exact():
    flow = Flow("f", description="one\ntwo\n")
    for name, prompt in {
        "a": "line one\n\nline three",
        "b": "ends with\nnewline\n",
        "c": "two trailing\n\n",
        "d": " leading space\nx",
        "e": "tab\there\nx",
        "f": "trailing space \nx",
        "g": "# not a comment\n- not a list\nkey: not a map",
    }.items():
        flow.add(Node.llm(name, prompt, inputs={}, outputs={"o": str}))
    text = dumps(flow)
    assert "description: |\n  one\n  two\n" in text
    assert "    prompt: |-\n      line one\n\n      line three\n" in text
    assert "    prompt: |\n      ends with\n      newline\n" in text
    one_line = Flow("g").add(Node.llm("h", "single line\n", inputs={}, outputs={}))
    assert '    prompt: "single line\\n"\n' in dumps(one_line)
    # where a block scalar would not give the text back, one double-quoted line does
    assert '    prompt: "two trailing\\n\\n"\n' in text
    assert '    prompt: " leading space\\nx"\n' in text
    assert '    prompt: "tab\\there\\nx"\n' in text
    assert '    prompt: "trailing space \\nx"\n' in text
    assert "    prompt: |-\n      # not a comment\n      - not a list\n      key: not a map\n" in text
    assert loads(text) == flow


def test_names_yaml_would_misread_are_quoted():
    flow = Flow("null", inputs={"on": str, "yes": int}, outputs={"true": str}, constants={"no": "off"})
    flow.add(Node.tool("null", "a:b", inputs={"y": str}, outputs={"n": str}))
    flow.add(Node.tool("false", "a:b", inputs={}, outputs={}))
    flow.connect("on", "null.y").connect("null.n", "true")
    text = dumps(flow)
    assert "  'null':\n" in text and "  'false':\n" in text
    again = loads(text)
    assert again == flow and list(again.nodes) == ["null", "false"]
    assert again.constants == {"no": "off"}


def test_a_named_type_the_flow_does_not_define_is_saved_expanded():
    order = Record("Order", qty=Int(ge=0))
    flow = Flow("f", inputs={"o": order, "l": List(order)}, outputs={})
    text = dumps(flow)
    assert "inputs: {o: {qty: {int: {ge: 0}}}, l: {list: {qty: {int: {ge: 0}}}}}" in text
    assert loads(text) == flow
    # ... and by name once the flow defines it (as the same type)
    flow.types = {"Order": order}
    assert "inputs: {o: Order, l: {list: Order}}" in dumps(flow)
    assert loads(dumps(flow)) == flow
    # a different type under that name is not confused with it
    flow.types = {"Order": Record("Order", qty=Int())}
    assert "inputs: {o: {qty: {int: {ge: 0}}}" in dumps(flow)
    assert loads(dumps(flow)) == flow


def test_sub_flow_as_a_node_saves_inline_and_round_trips():
    inner = Flow("inner", inputs={"x": int}, outputs={"y": int})
    inner.add(Node.tool("t", "workbench.examples.support:redact", inputs={"x": int}, outputs={"y": int}))
    inner.connect("x", "t.x").connect("t.y", "y")
    outer = Flow("outer", inputs={"a": int}, outputs={"b": int}).add(inner.as_node("sub"))
    outer.connect("a", "sub.x").connect("sub.y", "b")
    text = dumps(outer)
    assert "  sub:\n    kind: flow\n    flow:\n      flow: inner\n" in text
    again = loads(text)
    assert again == outer and isinstance(again.nodes["sub"].config["flow"], Flow)
    assert dumps(again) == text


def test_sub_flow_from_a_file_is_saved_back_as_its_path(tmp_path):
    (tmp_path / "parts").mkdir()
    save(load(flow_path("triage")), tmp_path / "parts" / "triage.flow.yaml")
    outer_text = yaml(
        """
        flow: outer
        inputs: {ticket: str, tier: {enum: [free, pro, enterprise]}}
        outputs: {reply: {category: {enum: [billing, bug, other]}, priority: int, summary: str}}
        nodes:
          inner:
            kind: flow
            flow: parts/triage.flow.yaml
            inputs: {ticket: str, tier: {enum: [free, pro, enterprise]}}
            outputs: {reply: {category: {enum: [billing, bug, other]}, priority: int, summary: str}}
        wires:
          - ticket -> inner.ticket
          - tier -> inner.tier
          - inner.reply -> reply
        """
    )
    path = tmp_path / "outer.flow.yaml"
    path.write_text(outer_text, encoding="utf-8")
    outer = load(path)
    inner = outer.nodes["inner"].config["flow"]
    assert inner == load(flow_path("triage")) and inner.origin == "parts/triage.flow.yaml"
    assert "    flow: parts/triage.flow.yaml\n" in dumps(outer)
    assert load(save(outer, path)) == outer
    with pytest.raises(FlowSyntaxError) as info:
        loads(outer_text.replace("parts/", "nowhere/"), source="o.flow.yaml", base_dir=tmp_path)
    assert str(info.value) == (
        "o.flow.yaml:7:5: node 'inner': the sub-flow 'nowhere/triage.flow.yaml' "
        f"({tmp_path / 'nowhere' / 'triage.flow.yaml'}) cannot be read: no such file"
    )


def test_python_built_flow_equals_its_loaded_file():
    text = yaml(
        """
        flow: greet
        version: 1
        inputs: {name: str}
        outputs: {text: {str: {max_len: 80}}}
        nodes:
          hello:
            kind: tool
            tool: workbench.examples.support:redact
            inputs: {ticket: str}
            outputs: {text: str}
        wires:
          - name -> hello.ticket
          - hello.text -> text
        rails:
          short: {on: text, check: len(text) < 80, enforce: observe}
        """
    )
    flow = Flow("greet", inputs={"name": str}, outputs={"text": Str(max_len=80)})
    flow.add(
        Node.tool("hello", "workbench.examples.support:redact", inputs={"ticket": str}, outputs={"text": str})
    )
    flow.connect("name", "hello.ticket").connect("hello.text", "text")
    flow.add_rail("short", "text", "len(text) < 80", enforce="observe")
    assert loads(text) == flow
    assert dumps(flow) == text


# -- YAML 1.2 scalars --------------------------------------------------------------------------------


def test_on_and_other_yaml_1_1_booleans_stay_strings():
    flow = loads(
        yaml(
            """
            flow: f
            constants: {A: yes, B: no, C: on, D: off, E: y, F: true, G: False, H: 2020-01-01, I: 1e3}
            rails:
              r: {on: x, check: x}
            """
        )
    )
    assert flow.rails["r"].on == PortRef(None, "x")
    assert flow.constants == {
        "A": "yes",
        "B": "no",
        "C": "on",
        "D": "off",
        "E": "y",
        "F": True,
        "G": False,
        "H": "2020-01-01",
        "I": 1000.0,
    }
    assert loads(dumps(flow)) == flow and loads(dumps(flow, "json")) == flow


def test_json_number_forms_load_as_numbers():
    text = json.dumps(
        {
            "flow": "f",
            "constants": {"a": 1e-05, "b": 1e100, "c": -2.5e-300},
            "inputs": {"x": {"float": {"gt": 1e-7}}},
        }
    )
    assert "1e-05" in text and "1e-07" in text
    flow = loads(text)
    assert flow.constants == {"a": 1e-05, "b": 1e100, "c": -2.5e-300}
    assert flow.inputs["x"] == Float(gt=1e-7)


@pytest.mark.parametrize(
    "tag", ["!!binary aGVsbG8=", "!!set {a, b}", "!!timestamp 2020-01-01", "!!omap [a: 1]", "!!pairs [a: 1]"]
)
def test_values_json_cannot_hold_are_refused(tag):
    error = syntax_error(f"flow: f\nconstants:\n  C: {tag}\n")
    assert (error.line, error.column) == (3, 6)
    assert "values cannot be saved in a flow file" in str(error)


def test_python_tags_are_refused():
    error = syntax_error("flow: f\nconstants: {C: !!python/object/apply:os.system [echo]}\n")
    assert str(error).startswith("f.flow.yaml:2:16: could not determine a constructor for the tag")


# -- syntax errors carry file:line:column ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("flow: f\nnodes:\n\tx: 1\n", (3, 1), "found character '\\t' that cannot start any token"),
        ("flow: f\ninputs: {x: int\n", (3, 1), "expected ',' or '}'"),
        ("flow: f\nwires: [a -> b.c\noutputs: {}\n", (3, 8), "expected ',' or ']'"),
        ("flow: f\nnodes:\n  n:\n    kind: tool\n   tool: x\n", (5, 4), "expected <block end>"),
        ("flow: f\ndescription: 'open\n", (3, 1), "found unexpected end of stream"),
        ("flow: f\n---\nflow: g\n", (2, 1), "expected a single document"),
        ("flow: f\nconstants: {a: *nope}\n", (2, 16), "found undefined alias 'nope'"),
        ("flow: f\n  x: 1\n", (2, 4), "mapping values are not allowed here"),
    ],
)
def test_yaml_errors_point_at_line_and_column(text, where, words):
    error = syntax_error(text)
    assert (error.line, error.column) == where
    assert str(error).startswith(f"f.flow.yaml:{where[0]}:{where[1]}: ")
    assert words in str(error)
    assert error.exit_code == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("flow: f\ninputs: {x: int}\ninputs: {y: int}\n", "f.flow.yaml:3:1: duplicate key 'inputs'"),
        (
            "flow: f\nnodes:\n  n: {kind: tool, tool: 'a:b'}\n  n: {kind: tool, tool: 'a:b'}\n",
            "f.flow.yaml:4:3: duplicate key 'n'",
        ),
        ("flow: f\ninputs: {x: int, y: str, x: str}\n", "f.flow.yaml:2:26: duplicate key 'x'"),
        ("flow: f\ntypes:\n  A: {a: int, a: int}\n", "f.flow.yaml:3:15: duplicate key 'a'"),
        ("flow: f\nrails:\n  r: {on: x, check: a, on: y}\n", "f.flow.yaml:3:24: duplicate key 'on'"),
        ("flow: f\n? [a, b]\n: 1\n", "f.flow.yaml:2:3: a mapping key must be a plain value"),
    ],
)
def test_duplicate_and_unhashable_keys_are_refused_with_position(text, message):
    assert str(syntax_error(text)) == message


ALLOWED_TOP = (
    "flow, version, description, use, types, constants, models, inputs, outputs, nodes, wires, rails"
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("flow: f\nnode: {}\n", f"2:1: unknown top-level key 'node' (allowed: {ALLOWED_TOP})"),
        ("flow: f\n3: x\n", f"2:1: unknown top-level key 3 (allowed: {ALLOWED_TOP})"),
        (
            "flow: f\nrails:\n  r: {on: x, check: 'x > 0', when: 1}\n",
            "3:30: rail 'r': unknown key 'when' (allowed: on, check, use, with, enforce, max_attempts)",
        ),
        ("version: 1\n", "1:1: 'flow:' must give the flow's name"),
        ("flow: ' '\n", "1:1: 'flow:' must give the flow's name"),
        ("flow: [a]\n", "1:1: 'flow:' must give the flow's name"),
        ("flow: f\nversion: 2\n", "2:1: unsupported flow file version 2 (this reads version 1)"),
        ("flow: f\nversion: true\n", "2:1: unsupported flow file version True (this reads version 1)"),
        ("flow: f\ndescription: [x]\n", "2:1: 'description' must be a string"),
        ("flow: f\nuse: pii\n", "2:1: 'use' must be a list of rail pack names"),
        ("flow: f\ninputs: [x]\n", "2:1: 'inputs' must be a mapping, got list"),
        ("flow: f\nnodes: 3\n", "2:1: 'nodes' must be a mapping, got int"),
        ("flow: f\ninputs: {x y: int}\n", "2:10: input name 'x y' is not an identifier"),
        (
            "flow: f\ninputs: {x: Strr}\n",
            "2:10: input 'x': unknown type name 'Strr' (known: bool, float, int, str)",
        ),
        (
            "flow: f\ntypes: {T: int}\noutputs:\n  y: {list: U}\n",
            "4:3: output 'y'.list: unknown type name 'U' (known: T, bool, float, int, str)",
        ),
        ("flow: f\ntypes:\n  A: {x: B}\n  B: {y: A}\n", "2:1: types: recursive type definition A -> B -> A"),
        ("flow: f\nwires: x -> y\n", "2:1: 'wires' must be a list of 'source -> target' strings"),
        ("flow: f\nwires: [a -> b -> c]\n", "2:1: a wire must read 'source -> target', got 'a -> b -> c'"),
        ("flow: f\nwires: ['a. -> b']\n", "2:1: port name '' is not a valid identifier"),
        ("flow: f\nwires: ['1a -> b']\n", "2:1: port name '1a' is not a valid identifier"),
        ("flow: f\nwires: [' -> b']\n", "2:1: a port reference must be 'node.port' or 'name', got ' '"),
        ("flow: f\nnodes:\n  n-1: {kind: tool}\n", "3:3: node name 'n-1' is not an identifier"),
        ("flow: f\nnodes:\n  n: tool\n", "3:3: node 'n' must be a mapping with 'kind:'"),
        (
            "flow: f\nnodes:\n  n: {tool: 'a:b'}\n",
            "3:6: node 'n' needs 'kind:' (one of agent, flow, llm, loop, router, tool, vote)",
        ),
        (
            "flow: f\nnodes:\n  n: {kind: tool, guarantees: x > 0}\n",
            "3:19: node 'n': guarantees must be a list of rail expressions",
        ),
        (
            "flow: f\nnodes:\n  n: {kind: tool, inputs: {a: nope}}\n",
            "3:28: node 'n' input 'a': unknown type name 'nope' (known: bool, float, int, str)",
        ),
        (
            "flow: f\nnodes:\n  n: {kind: flow, flow: 3}\n",
            "3:19: a flow node's 'flow' must be a file path or an inline flow mapping",
        ),
        ("flow: f\nrails:\n  1r: {on: x, check: x}\n", "3:3: rail name '1r' is not an identifier"),
        ("flow: f\nrails:\n  r: x > 0\n", "3:3: rail 'r' must be a mapping with 'on:' and 'check:'"),
        ("flow: f\nrails:\n  r: {check: x}\n", "3:6: rail 'r': 'on' must be a port reference string"),
        ("flow: f\nrails:\n  r: {on: 3, check: x}\n", "3:7: rail 'r': 'on' must be a port reference string"),
        (
            "flow: f\nrails:\n  r: {on: x}\n",
            "3:3: rail 'r' needs either 'check' (rail text) or 'use' (pack.rail)",
        ),
        (
            "flow: f\nrails:\n  r: {on: x, check: a, use: p.r}\n",
            "3:3: rail 'r' needs either 'check' (rail text) or 'use' (pack.rail)",
        ),
        ("flow: f\nrails:\n  r: {on: x, check: 3}\n", "3:14: rail 'r': 'check' must be a string"),
        (
            "flow: f\nrails:\n  r: {on: x, use: p.r, with: [1]}\n",
            "3:24: rail 'r': 'with' must map template parameters to values",
        ),
        (
            "flow: f\nrails:\n  r: {on: x, check: a, enforce: never}\n",
            "3:24: rail 'r': enforce must be one of block, repair, decode, observe",
        ),
        (
            "flow: f\nrails:\n  r: {on: x, check: a, max_attempts: 0}\n",
            "3:24: rail 'r': max_attempts must be a positive integer",
        ),
        ("flow: f\nrails:\n  r: {on: x.y.z, check: a}\n", "3:7: port name 'y.z' is not a valid identifier"),
        (
            "flow: f\nrails:\n  r: {on: x, check: ' '}\n",
            "3:14: rail 'r': check must be a non-empty rail expression",
        ),
        (
            "flow: f\nrails:\n  r: {on: x, use: nodot}\n",
            "3:14: rail 'r': use must name a pack template as 'pack.rail'",
        ),
        ("- flow: f\n", "1:1: a flow file must be a mapping with 'flow:', 'nodes:' and 'wires:'"),
        ("", "1:1: a flow file must be a mapping with 'flow:', 'nodes:' and 'wires:'"),
        ("just text", "1:1: a flow file must be a mapping with 'flow:', 'nodes:' and 'wires:'"),
    ],
)
def test_structural_errors_point_into_the_file(text, message):
    assert str(syntax_error(text)) == f"f.flow.yaml:{message}"


def test_errors_inside_an_inline_sub_flow_name_it():
    text = "flow: f\nnodes:\n  s:\n    kind: flow\n    flow: {flow: g, bogus: 1}\n"
    assert str(syntax_error(text)) == (
        f"f.flow.yaml (inline flow):5:21: unknown top-level key 'bogus' (allowed: {ALLOWED_TOP})"
    )


def test_unknown_node_keys_load_and_are_reported_by_validation():
    from workbench.flow import problems

    flow = loads("flow: f\nnodes:\n  n: {kind: tool, tool: 'a:b', colour: red}\n")
    assert flow.nodes["n"].config == {"tool": "a:b", "colour": "red"}
    allowed = "tool, blocking, inline"
    assert problems(flow) == [f"node 'n': unknown key 'colour' for kind tool (allowed: {allowed})"]


# -- bad bytes, big and deep input -------------------------------------------------------------------


def test_non_utf8_bytes():
    error = syntax_error(b"flow: f\ndescription: \xff\xfe\n")
    assert str(error) == "f.flow.yaml: the file is not UTF-8 text (byte 21)"
    assert error.line is None
    assert loads("flow: f\ndescription: é\n".encode()).description == "é"
    assert loads(b"\xef\xbb\xbfflow: f\n").name == "f"  # a UTF-8 byte order mark is fine
    assert (
        str(syntax_error("flow: f\n".encode("utf-16"))) == "f.flow.yaml: the file is not UTF-8 text (byte 0)"
    )


def test_control_characters_are_refused():
    error = syntax_error("flow: f\ndescription: a\x00b\n")
    assert "special characters are not allowed" in str(error)


def test_text_over_the_size_limit_is_refused_before_parsing():
    error = syntax_error("#" * (MAX_FLOW_BYTES + 1))
    assert str(error) == "f.flow.yaml: the file is larger than 8 MiB"


@pytest.mark.parametrize("text", ["[" * 700 + "]" * 700, "a: " + "{a: " * 700 + "1" + "}" * 700])
def test_deep_nesting_is_a_syntax_error(text):
    error = syntax_error(text)
    assert "recursion" in str(error) or "too deeply" in str(error)


def test_deep_but_reasonable_nesting_loads():
    value = "{a: " * 50 + "1" + "}" * 50
    flow = loads(f"flow: f\nconstants:\n  X: {value}\n")
    assert loads(dumps(flow)) == flow


def test_alias_bombs_are_refused():
    lines = ["flow: f", "constants:", "  A: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i, name in enumerate("bcdefg"):
        prev = "abcdefg"[i]
        lines.append(f"  {name.upper()}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    error = syntax_error("\n".join(lines) + "\n")
    assert (
        str(error)
        == f"f.flow.yaml:8:6: YAML aliases expand this value to more than {MAX_EXPANDED_VALUES:,} values"
    )


def test_small_aliases_and_merge_keys_still_work():
    text = yaml(
        """
        flow: f
        constants:
          BASE: &base {currency: EUR, limit: 10}
          DESK: {<<: *base, limit: 20}
          LIST: &l [1, 2]
          BOTH: [*l, *l]
        """
    )
    flow = loads(text)
    assert flow.constants["DESK"] == {"currency": "EUR", "limit": 20}
    assert flow.constants["BOTH"] == [[1, 2], [1, 2]]
    assert loads(dumps(flow)) == flow


def test_load_reports_missing_files_and_directories(tmp_path):
    with pytest.raises(FlowSyntaxError) as info:
        load(tmp_path / "none.flow.yaml")
    assert str(info.value) == f"{tmp_path / 'none.flow.yaml'}: no such file"
    with pytest.raises(FlowSyntaxError) as info:
        load(tmp_path)
    assert str(info.value) == f"{tmp_path}: it is a directory, not a regular file"


def test_loaded_errors_name_the_path(tmp_path):
    path = tmp_path / "bad.flow.yaml"
    path.write_text("flow: f\nnodes:\n  n: {kind: tool, inputs: {a: nope}}\n", encoding="utf-8")
    with pytest.raises(FlowError) as info:
        load(path)
    assert str(info.value).startswith(f"{path}:3:28: node 'n' input 'a': unknown type name 'nope'")


def test_a_flow_that_includes_itself_is_refused(tmp_path):
    (tmp_path / "a.flow.yaml").write_text(
        "flow: a\nnodes:\n  b: {kind: flow, flow: b.flow.yaml}\n", encoding="utf-8"
    )
    (tmp_path / "b.flow.yaml").write_text(
        "flow: b\nnodes:\n  a: {kind: flow, flow: a.flow.yaml}\n", encoding="utf-8"
    )
    with pytest.raises(FlowSyntaxError) as info:
        load(tmp_path / "a.flow.yaml")
    a, b = tmp_path / "a.flow.yaml", tmp_path / "b.flow.yaml"
    assert str(info.value) == (
        f"{b}:3:19: node 'a': the sub-flow 'a.flow.yaml' includes itself: {a} -> {b} -> {a}"
    )
    # the same file twice side by side is fine
    (tmp_path / "c.flow.yaml").write_text(
        "flow: c\nnodes:\n  x: {kind: flow, flow: d.flow.yaml}\n  y: {kind: flow, flow: d.flow.yaml}\n",
        encoding="utf-8",
    )
    (tmp_path / "d.flow.yaml").write_text("flow: d\n", encoding="utf-8")
    assert list(load(tmp_path / "c.flow.yaml").nodes) == ["x", "y"]


# -- hostile files: what a flow file names is checked before it is read ------------------------------

SUB = "flow: outer\nnodes:\n  sub: {{kind: flow, flow: '{}'}}\n"  # the sub-flow path at 3:21


@pytest.mark.parametrize("kind", SPECIAL_KINDS)
def test_a_sub_flow_that_is_no_regular_file_fails_fast(kind, tmp_path):
    """``/dev/zero`` used to be read to the end (MemoryError after ~20 s), a FIFO to block forever.

    The load runs in a child process with capped memory and a timeout, so a regression fails
    this test and nothing else.
    """
    with special_file(kind, tmp_path) as path:
        outer = tmp_path / "outer.flow.yaml"
        outer.write_text(SUB.format(path), encoding="utf-8")
        code = (
            "import json, sys, time\n"
            "from workbench.errors import FlowSyntaxError\n"
            "from workbench.flow import load\n"
            "start = time.perf_counter()\n"
            "try:\n"
            "    load(sys.argv[1])\n"
            "except FlowSyntaxError as exc:\n"
            "    print(json.dumps([str(exc), time.perf_counter() - start]))\n"
        )
        child = run_limited(code, str(outer), cwd=tmp_path)
    assert child.returncode == 0, child.stderr
    message, seconds = json.loads(child.stdout)
    assert message == (
        f"{outer}:3:21: node 'sub': the sub-flow '{path}' ({path}) cannot be read: "
        f"it is a {kind}, not a regular file"
    )
    assert seconds < 1.0


@pytest.mark.parametrize("kind", ["directory", "named pipe (FIFO)"])
def test_a_top_level_flow_that_is_no_regular_file_is_refused(kind, tmp_path):
    with special_file(kind, tmp_path) as path:
        code = "import sys\nfrom workbench.flow import load\nload(sys.argv[1])\n"
        child = run_limited(code, str(path), cwd=tmp_path)
    assert child.returncode == 1
    assert child.stderr.strip().endswith(f"FlowSyntaxError: {path}: it is a {kind}, not a regular file")


def test_a_sub_flow_just_over_the_size_limit_is_refused_naming_the_including_file(tmp_path):
    (tmp_path / "big.flow.yaml").write_bytes(b"#" * (MAX_FLOW_BYTES + 1))
    (tmp_path / "outer.flow.yaml").write_text(SUB.format("big.flow.yaml"), encoding="utf-8")
    with pytest.raises(FlowSyntaxError) as info:
        load(tmp_path / "outer.flow.yaml")
    assert str(info.value) == (
        f"{tmp_path / 'outer.flow.yaml'}:3:21: node 'sub': the sub-flow 'big.flow.yaml' "
        f"({tmp_path / 'big.flow.yaml'}) cannot be read: the file is larger than 8 MiB"
    )
    (tmp_path / "big.flow.yaml").write_bytes(b"flow: big\n" + b"#" * (MAX_FLOW_BYTES - 10))
    assert load(tmp_path / "outer.flow.yaml").nodes["sub"].config["flow"].name == "big"  # at the limit


def test_reading_stops_at_the_limit_whatever_the_file_says_its_size_is():
    # /proc files are regular files that stat as empty: only a bounded read catches them
    assert len(read_limited("/proc/self/status")) > 10
    with pytest.raises(UnreadableFile, match=r"^the file is larger than 10 bytes$"):
        read_limited("/proc/self/status", limit=10)


def test_a_sub_flow_that_does_not_parse_names_the_including_file_and_the_path_as_written(tmp_path):
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "bad.flow.yaml").write_text("flow: b\nnodes: [\n", encoding="utf-8")
    (tmp_path / "outer.flow.yaml").write_text(SUB.format("parts/bad.flow.yaml"), encoding="utf-8")
    with pytest.raises(FlowSyntaxError) as info:
        load(tmp_path / "outer.flow.yaml")
    assert str(info.value).startswith(
        f"{tmp_path / 'outer.flow.yaml'}:3:21: node 'sub': the sub-flow 'parts/bad.flow.yaml' cannot be "
        f"loaded: {tmp_path / 'parts' / 'bad.flow.yaml'}:3:1: "
    )


def write_chain(tmp_path, length: int) -> list:
    """Files f0 -> f1 -> ... -> f{length}: f0 holds sub-flows nested ``length`` deep."""
    paths = [tmp_path / f"f{i}.flow.yaml" for i in range(length + 1)]
    for i, path in enumerate(paths):
        sub = f"nodes:\n  s: {{kind: flow, flow: f{i + 1}.flow.yaml}}\n" if i < length else ""
        path.write_text(f"flow: f{i}\n{sub}", encoding="utf-8")
    return paths


def test_sub_flows_nest_at_most_the_documented_depth(tmp_path):
    assert MAX_SUBFLOW_DEPTH == 16
    paths = write_chain(tmp_path, MAX_SUBFLOW_DEPTH)
    flow, depth = load(paths[0]), 0
    while flow.nodes:
        flow, depth = flow.nodes["s"].config["flow"], depth + 1
    assert depth == MAX_SUBFLOW_DEPTH
    paths = write_chain(tmp_path, MAX_SUBFLOW_DEPTH + 1)
    with pytest.raises(FlowSyntaxError) as info:
        load(paths[0])
    chain = " -> ".join(str(p) for p in paths[:-1])
    assert str(info.value) == (
        f"{paths[-2]}:3:19: node 's': the sub-flow would nest sub-flows more than 16 deep ({chain} -> ...)"
    )


def test_inline_sub_flows_count_towards_the_depth():
    flow = loads(_nested_inline(MAX_SUBFLOW_DEPTH))
    assert flow.nodes["s"].config["flow"].nodes
    error = syntax_error(_nested_inline(MAX_SUBFLOW_DEPTH + 1))
    assert (
        "the sub-flow would nest sub-flows more than 16 deep (f.flow.yaml -> f.flow.yaml (inline flow)"
        in (str(error))
    )


def _nested_inline(depth: int) -> str:
    flow: dict = {"flow": "f"}
    for _ in range(depth):
        flow = {"flow": "f", "nodes": {"s": {"kind": "flow", "flow": flow}}}
    return json.dumps(flow)


def test_sub_flow_paths_are_relative_to_the_including_file_not_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "project" / "parts").mkdir(parents=True)
    (tmp_path / "project" / "a.flow.yaml").write_text(SUB.format("parts/b.flow.yaml"), encoding="utf-8")
    (tmp_path / "project" / "parts" / "b.flow.yaml").write_text(
        "flow: b\nnodes:\n  sub: {kind: flow, flow: c.flow.yaml}\n", encoding="utf-8"
    )
    (tmp_path / "project" / "parts" / "c.flow.yaml").write_text("flow: c\n", encoding="utf-8")
    # decoys where a working-directory resolution would look
    (tmp_path / "elsewhere" / "parts").mkdir(parents=True)
    (tmp_path / "elsewhere" / "parts" / "b.flow.yaml").write_text("flow: decoy\n", encoding="utf-8")
    (tmp_path / "elsewhere" / "c.flow.yaml").write_text("flow: decoy\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path / "elsewhere")
    for path in (tmp_path / "project" / "a.flow.yaml", Path("..") / "project" / "a.flow.yaml"):
        b = load(path).nodes["sub"].config["flow"]
        assert b.name == "b" and b.nodes["sub"].config["flow"].name == "c"
    # text without a file has no directory: a relative path is refused, not looked up in the cwd
    error = syntax_error(SUB.format("parts/b.flow.yaml"))
    assert str(error) == (
        "f.flow.yaml:3:21: node 'sub': the sub-flow 'parts/b.flow.yaml' is a relative path, and flow text "
        "loaded without a file has no directory to resolve it against (pass base_dir= to loads, or load "
        "the file with load)"
    )
    assert (
        loads(SUB.format("parts/b.flow.yaml"), base_dir=tmp_path / "project").nodes["sub"].config["flow"].name
        == "b"
    )
