"""Agent nodes in flow files: loading, byte-stable saving, validation, rails on tools, ``check``."""

from __future__ import annotations

import textwrap

import pytest

from workbench.errors import FlowSyntaxError, RailError
from workbench.examples import flow_path
from workbench.flow import AgentTool, dumps, load, loads, problems, save
from workbench.flow.model import PortRef
from workbench.flow.port_rails import flow_rails, scope_at
from workbench.flow.verify import check_report
from workbench.types import Float, Int, Record, Str

BASE = """
flow: f
version: 1
inputs: {cash: float}
outputs: {out: str}
nodes:
  a:
    kind: agent
    model: default
    prompt: "Cash: {{ cash }}"
    max_steps: 3
    tools:
      buy: BUY
    inputs: {cash: float}
    outputs: {out: str}
wires:
  - cash -> a.cash
  - a.out -> out
rails:
  cap: {on: a.buy, check: "buy.qty * buy.price <= cash"}
"""


BUY = (
    '{tool: "pkg.mod:buy", description: "Buy", inputs: {qty: {int: {ge: 1}}, price: float}, '
    "outputs: {filled: int}, approve: true, timeout: 2.5}"
)


def flow_text(**replace: str) -> str:
    text = textwrap.dedent(BASE).lstrip("\n").replace("buy: BUY", f"buy: {BUY}")
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def test_an_agent_node_loads_with_typed_tools():
    flow = loads(flow_text())
    assert problems(flow) == []
    node = flow.nodes["a"]
    assert node.config["max_steps"] == 3
    (buy,) = node.config["tools"].values()
    assert buy == AgentTool(
        "pkg.mod:buy", "Buy", {"qty": Int(ge=1), "price": Float()}, {"filled": Int()}, True, 2.5
    )


def test_agent_flows_save_byte_stable():
    for text in (flow_text(), flow_path("desk").read_text()):
        flow = loads(text)
        saved = dumps(flow)
        assert loads(saved) == flow
        assert dumps(loads(saved)) == saved
        assert loads(dumps(flow, "json")) == flow


def test_the_desk_example_is_saved_as_written(tmp_path):
    text = flow_path("desk").read_text()
    path = save(load(flow_path("desk")), tmp_path / "desk.flow.yaml")
    assert path.read_text() == text


def test_tool_types_may_name_the_flows_types():
    text = flow_text(
        **{"inputs: {cash: float}\noutputs": "types:\n  Qty: {int: {ge: 1}}\ninputs: {cash: float}\noutputs"}
    )
    flow = loads(text.replace("inputs: {qty: {int: {ge: 1}}", "inputs: {qty: Qty"))
    qty = flow.nodes["a"].config["tools"]["buy"].inputs["qty"]
    assert qty.name == "Qty" and qty.to_json_schema() == {"type": "integer", "minimum": 1}
    assert "inputs: {qty: Qty, price: float}" in dumps(flow)


@pytest.mark.parametrize(
    ("old", "new", "message", "line"),
    [
        (
            'buy: {tool: "pkg.mod:buy", ',
            "buy: {",
            "node 'a' tool 'buy' must be a mapping with 'tool: module:function'",
            12,
        ),
        ("approve: true,", "approve: true, retry: 1,", "node 'a' tool 'buy': unknown key 'retry'", 12),
        (
            "inputs: {qty: {int: {ge: 1}}",
            "inputs: {qty: {int: {gee: 1}}",
            "node 'a' tool 'buy' input 'qty'",
            12,
        ),
        ("buy: {tool", "buy: 3\n      sell: {tool", "node 'a' tool 'buy' must be a mapping", 12),
    ],
)
def test_malformed_tool_entries_are_syntax_errors_pointing_into_the_file(old, new, message, line):
    with pytest.raises(FlowSyntaxError) as info:
        loads(flow_text(**{old: new}), source="f.flow.yaml")
    assert message in str(info.value)
    assert info.value.line == line  # the tools: entry's line


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (
            '"pkg.mod:buy"',
            '"pkg.mod.buy"',
            "node 'a': tool 'buy': tool must be 'module:function', got 'pkg.mod.buy'",
        ),
        ("approve: true", "approve: yes", "node 'a': tool 'buy': approve must be true or false"),
        ("timeout: 2.5", "timeout: -1", "node 'a': tool 'buy': timeout must be a positive number of seconds"),
        ('description: "Buy"', "description: 3", "node 'a': tool 'buy': description must be a string"),
        ("outputs: {filled: int}", "outputs: {}", "node 'a': tool 'buy' needs at least one output port"),
        (
            "    tools:\n      buy",
            "    tools:\n      cash",
            "node 'a': tool 'cash' has the name of one of the node's ports",
        ),
        ("max_steps: 3", "max_steps: 0", "node 'a': max_steps must be a positive integer"),
        ('prompt: "Cash: {{ cash }}"', "system: hi", "node 'a': an agent needs 'prompt'"),
        ("max_steps: 3", "max_steps: 3\n    retries: 2", "node 'a': an agent cannot have retries"),
        ("check: ", "enforce: repair, check: ", "enforce repair needs an llm node's output port"),
        ("on: a.buy", "on: a.sell", "rail 'cap': on 'a.sell': node 'a' has no port or tool 'sell'"),
    ],
)
def test_bad_agent_nodes_fail_validation_with_a_clear_message(old, new, problem):
    found = problems(loads(flow_text(**{old: new})))
    assert any(problem in p for p in found), found


def test_an_agent_needs_tools():
    text = flow_text()
    text = text[: text.index("    tools:")] + text[text.index("    inputs: {cash") :]
    assert "node 'a': an agent needs 'tools'" in " ".join(problems(loads(text)))


def test_a_rail_on_a_tool_without_arguments_is_refused():
    text = flow_text(**{"inputs: {qty: {int: {ge: 1}}, price: float}, ": ""}).replace(
        "buy.qty * buy.price", "cash > 0"
    )
    assert "tool 'buy' takes no arguments to check" in " ".join(problems(loads(text)))


def test_a_tool_rail_sees_the_arguments_the_nodes_inputs_and_the_flows_inputs():
    flow = loads(flow_text())
    scope = scope_at(flow, PortRef("a", "buy"))
    assert scope == {"cash": Float(), "buy": Record(None, {"qty": Int(ge=1), "price": Float()})}
    (rail,) = flow_rails(flow)
    assert rail.names == {"buy", "cash"}
    assert rail.rail.holds({"cash": 100.0, "buy": {"qty": 2, "price": 50.0}})
    assert not rail.rail.holds({"cash": 100.0, "buy": {"qty": 3, "price": 50.0}})


def test_a_tool_rail_cannot_read_the_nodes_outputs():
    flow = loads(flow_text(**{"buy.qty * buy.price <= cash": "len(out) < 3"}))
    with pytest.raises(RailError, match="out"):
        flow_rails(flow)


def test_check_verifies_tool_rails_against_the_tools_bounds_and_the_rails_upstream():
    text = flow_text()
    text += '  budget: {on: cash, check: "cash <= 1000"}\n'
    text += '  floor: {on: a.cash, check: "cash >= 10"}\n'
    text += '  min_qty: {on: a.buy, check: "buy.qty >= 1"}\n'
    text += '  small: {on: a.buy, check: "cash <= 1000 and cash >= 10"}\n'
    report = check_report(loads(text))
    assert report["errors"] == []
    statuses = {r["name"]: r for r in report["rails"]}
    assert statuses["min_qty"]["status"] == "vacuous"  # the tool's input type says qty >= 1
    assert statuses["small"]["status"] == "proved"  # by the flow input's and the node input's rails
    assert statuses["cap"]["status"] == "enforced"  # the model picks qty and price
    example = statuses["cap"]["counterexample"]
    assert example["a.buy"]["qty"] * example["a.buy"]["price"] > example["a.cash"]
    assert statuses["cap"]["port"] == "a.buy"


def test_tool_rails_are_no_hypotheses_of_rails_downstream():
    # A rail on a tool holds for the calls the model made: if it made none, nothing was checked.
    flow = loads(flow_text(**{"buy.qty * buy.price <= cash": "cash >= 100"}))
    flow.add_rail("rich", "out", "cash >= 100")
    statuses = {r["name"]: r["status"] for r in check_report(flow)["rails"]}
    assert statuses == {"cap": "enforced", "rich": "enforced"}


def test_the_desk_example_checks():
    statuses = {r["name"]: r["status"] for r in check_report(load(flow_path("desk")))["rails"]}
    assert statuses == {"cap": "enforced"}


def test_agent_tool_of_a_callable_keeps_the_function_but_saves_its_name():
    tool = AgentTool.of(Str.validate, inputs={"x": str}, outputs={"y": str})
    assert tool.fn is Str.validate and tool.tool == "workbench.types:Str.validate"
