"""Validation of flows: each problem found, with its exact message (issue 2, item 5)."""

from __future__ import annotations

import pytest

from workbench.errors import FlowError, FlowSyntaxError, FlowValidationError
from workbench.examples import flow_path
from workbench.flow import Flow, KindSpec, Node, Wire, load, loads, problems, register_kind, validate
from workbench.flow.graph import analyse
from workbench.flow.kinds import KINDS
from workbench.types import Enum, Float, Int, List, Record, Str

KNOWN_KINDS = "agent, flow, llm, loop, router, tool, vote"
TOOL = "workbench.examples.support:redact"


def tool(name: str, inputs=None, outputs=None, **extra) -> Node:
    return Node.tool(name, TOOL, inputs=inputs or {}, outputs=outputs or {}, **extra)


def chain(*names: str, typ=int) -> Flow:
    """x -> n1 -> n2 ... -> y, each node with input 'i' and output 'o'."""
    flow = Flow("chain", inputs={"x": typ}, outputs={"y": typ})
    prev = "x"
    for name in names:
        flow.add(tool(name, {"i": typ}, {"o": typ}))
        flow.connect(prev, f"{name}.i")
        prev = f"{name}.o"
    return flow.connect(prev, "y")


def test_examples_are_valid():
    for name in ("trader", "triage"):
        flow = load(flow_path(name))
        assert problems(flow) == []
        assert validate(flow) is flow


def test_validate_raises_all_problems_prefixed_with_the_flow():
    flow = chain("a")
    flow.nodes["a"].kind = "nope"
    flow.connect("a.o", "y")
    with pytest.raises(FlowValidationError) as info:
        validate(flow)
    assert info.value.errors == [f"flow 'chain': {p}" for p in problems(flow)]
    assert len(info.value.errors) >= 2
    assert str(info.value) == f"{len(info.value.errors)} problems: " + "; ".join(info.value.errors)
    assert info.value.exit_code == 2 and isinstance(info.value, FlowError)


def test_one_problem_is_the_whole_message():
    flow = chain("a")
    flow.outputs["z"] = Int()
    with pytest.raises(FlowValidationError) as info:
        validate(flow)
    assert str(info.value) == "flow 'chain': flow output 'z' is not connected"


# -- kinds -------------------------------------------------------------------------------------------


def test_unknown_node_kind():
    flow = chain("a")
    flow.nodes["a"].kind = "magic"
    assert problems(flow) == [f"node 'a': unknown node kind 'magic' (known kinds: {KNOWN_KINDS})"]


def test_unknown_node_kind_from_a_file():
    flow = loads("flow: f\nnodes:\n  n: {kind: lmm}\n")
    assert problems(flow) == [f"node 'n': unknown node kind 'lmm' (known kinds: {KNOWN_KINDS})"]


def test_registering_a_kind_makes_it_known():
    def check(node, flow):
        return [] if node.config.get("times", 1) > 0 else [f"node '{node.name}': times must be positive"]

    register_kind(KindSpec("echo_test", optional=("times",), check=check))
    try:
        flow = Flow("f").add(Node("e", "echo_test", config={"times": 0}))
        assert problems(flow) == ["node 'e': times must be positive"]
        flow.nodes["e"].config["speed"] = 1
        assert "node 'e': unknown key 'speed' for kind echo_test (allowed: times)" in problems(flow)
    finally:
        del KINDS["echo_test"]


def test_unknown_config_key_and_missing_required_key():
    flow = Flow("f").add(Node("t", "tool", config={"tol": "a:b"}))
    assert problems(flow) == [
        "node 't': unknown key 'tol' for kind tool (allowed: tool, blocking, inline)",
        "node 't': kind tool needs 'tool'",
    ]
    flow = Flow("f").add(Node("v", "vote", {"a": int, "b": int}, {"o": int}, config={"x": 1}))
    assert problems(flow)[0] == (
        "node 'v': unknown key 'x' for kind vote (allowed: rule, quorum, tie, no_winner)"
    )
    flow = Flow("f").add(Node("s", "flow", config={"x": 1}))
    assert problems(flow)[:2] == [
        "node 's': unknown key 'x' for kind flow (allowed: flow)",
        "node 's': kind flow needs 'flow'",
    ]


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("nocolon", "node 't': tool must be 'module:function', got 'nocolon'"),
        ("a:b:c", "node 't': tool must be 'module:function', got 'a:b:c'"),
        (":f", "node 't': tool must be 'module:function', got ':f'"),
        ("m:", "node 't': tool must be 'module:function', got 'm:'"),
        (3, "node 't': tool must be 'module:function', got 3"),
    ],
)
def test_tool_refs(ref, message):
    flow = Flow("f").add(Node("t", "tool", config={"tool": ref}))
    assert problems(flow) == [message]


def test_tool_blocking_flag():
    flow = Flow("f").add(Node("t", "tool", config={"tool": "a:b", "blocking": "yes"}))
    assert problems(flow) == ["node 't': blocking must be true or false"]
    flow.nodes["t"].config["blocking"] = True
    assert problems(flow) == []


def test_timeouts_retries_and_guarantees():
    flow = Flow("f").add(tool("t", timeout=0, retries=-1, guarantees=["", 3]))
    assert problems(flow) == [
        "node 't': timeout must be a positive number of seconds",
        "node 't': retries must be a non-negative integer",
        "node 't': guarantees must be rail expressions (strings)",
        "node 't': guarantees must be rail expressions (strings)",
    ]
    flow.nodes["t"].timeout, flow.nodes["t"].retries, flow.nodes["t"].guarantees = 0.5, True, []
    assert problems(flow) == ["node 't': retries must be a non-negative integer"]


def llm_flow(**config) -> Flow:
    node = Node.llm("ask", "Q: {{ q }}", inputs={"q": str}, outputs={"a": str})
    node.config.update(config)
    return (
        Flow("f", inputs={"q": str}, outputs={"a": str}).add(node).connect("q", "ask.q").connect("ask.a", "a")
    )


def test_llm_checks():
    assert problems(llm_flow()) == []
    assert problems(llm_flow(prompt=None)) == [
        "node 'ask': an llm node needs 'prompt', a string (a Jinja2 template)"
    ]
    assert problems(llm_flow(temperature=-1)) == ["node 'ask': temperature must be a number >= 0"]
    assert problems(llm_flow(temperature=True)) == ["node 'ask': temperature must be a number >= 0"]
    assert problems(llm_flow(max_tokens=0)) == ["node 'ask': max_tokens must be a positive integer"]
    assert problems(llm_flow(max_tokens=2.5)) == ["node 'ask': max_tokens must be a positive integer"]
    flow = Flow("f").add(Node("ask", "llm", config={"prompt": "hi"}))
    assert problems(flow) == ["node 'ask': an llm node needs at least one output port"]


def router_flow(routes, default=None, outputs=None, inputs=None) -> Flow:
    inputs = inputs if inputs is not None else {"v": int}
    outputs = outputs if outputs is not None else {"big": int, "small": int}
    config = {"routes": routes} if default is None else {"routes": routes, "default": default}
    node = Node("route", "router", inputs, outputs, config=config)
    flow = Flow("f", inputs={"v": int}, outputs={k: t for k, t in outputs.items()}).add(node)
    for port in inputs:
        flow.connect("v", f"route.{port}")
    for port in outputs:
        flow.connect(f"route.{port}", port)
    return flow


def test_router_checks():
    assert problems(router_flow({"big": "v > 10"}, default="small")) == []
    assert problems(router_flow({})) == ["node 'route': routes must map output ports to conditions"]
    assert problems(router_flow(["big"])) == ["node 'route': routes must map output ports to conditions"]
    assert problems(router_flow({"huge": "v > 10", "big": 3})) == [
        "node 'route': route 'huge' is not an output port",
        "node 'route': the condition of route 'big' must be a string",
    ]
    assert problems(router_flow({"big": "v > 1"}, default="other")) == [
        "node 'route': default route 'other' is not an output port"
    ]
    assert problems(router_flow({"big": "v > 1"}, default=["big"])) == [
        "node 'route': default route '['big']' is not an output port"
    ]
    assert problems(router_flow({"big": "v > 1"}, inputs={"v": int, "w": int})) == [
        "node 'route': a router takes exactly one input port, has 2"
    ]
    assert problems(router_flow({"big": "v > 1"}, outputs={"big": int, "small": str})) == [
        "node 'route': output 'small' (str) cannot carry the input (int): int is not str"
    ]


def vote_flow(n=3, out=str, **config) -> Flow:
    inputs = {f"v{i}": str for i in range(n)}
    flow = Flow("f", inputs={"s": str}, outputs={"w": out})
    flow.add(Node("vote", "vote", inputs, {"winner": out}, config=config))
    for port in inputs:
        flow.connect("s", f"vote.{port}")
    return flow.connect("vote.winner", "w")


def test_vote_checks():
    assert problems(vote_flow()) == []
    assert problems(vote_flow(rule="quorum", quorum=2, tie="first", no_winner="skip")) == []
    assert problems(vote_flow(n=1)) == ["node 'vote': a vote needs at least two input ports"]
    assert problems(vote_flow(rule="unanimous")) == [
        "node 'vote': rule must be one of majority, plurality, quorum, got 'unanimous'"
    ]
    for quorum in (None, 0, 4, True, 1.5):
        assert problems(vote_flow(rule="quorum", quorum=quorum)) == [
            "node 'vote': quorum must be an integer between 1 and 3"
        ]
    assert problems(vote_flow(tie="random")) == ["node 'vote': tie must be 'fail' or 'first'"]
    assert problems(vote_flow(no_winner="guess")) == ["node 'vote': no_winner must be 'fail' or 'skip'"]
    flow = vote_flow(out=int)
    assert "node 'vote': input 'v0' cannot be the output: str is not int" in problems(flow)
    flow = Flow("f").add(Node("vote", "vote", {"a": int, "b": int}, {"x": int, "y": int}))
    assert problems(flow)[0] == "node 'vote': a vote has exactly one output port, has 2"


def loop_flow(body: int = 1, **config) -> Flow:
    """A counter loop: init -> L; L.item -> body nodes -> L.next; L.result -> out."""
    config = {"max_iterations": 5, **config}
    flow = Flow("f", inputs={"start": int}, outputs={"out": int})
    flow.add(Node("L", "loop", {"init": int, "next": int}, {"item": int, "result": int}, config=config))
    flow.connect("start", "L.init")
    prev = "L.item"
    for i in range(body):
        flow.add(tool(f"b{i}", {"i": int}, {"o": int}))
        flow.connect(prev, f"b{i}.i")
        prev = f"b{i}.o"
    return flow.connect(prev, "L.next").connect("L.result", "out")


def test_loop_checks():
    assert problems(loop_flow()) == []
    assert problems(loop_flow(until="item > 3")) == []
    for bad in (0, None, 2.0, True):
        assert problems(loop_flow(max_iterations=bad)) == [
            "node 'L': max_iterations must be a positive integer"
        ]
    assert problems(loop_flow(until=3)) == ["node 'L': until must be a condition string"]
    flow = loop_flow()
    flow.nodes["L"].outputs["item"] = Str()
    assert "node 'L': 'init' cannot flow to 'item': int is not str" in problems(flow)
    flow = Flow("f").add(Node("L", "loop", {"start": int}, {"item": int}, config={"max_iterations": 1}))
    assert problems(flow)[0] == (
        "node 'L': a loop has inputs 'init' and 'next' and outputs 'item' and 'result'"
    )


def test_flow_node_ports_must_be_the_sub_flows():
    inner = chain("a")
    outer = Flow("outer", inputs={"x": int}, outputs={"y": int})
    outer.add(Node("sub", "flow", {"p": int}, {"y": int}, config={"flow": inner}))
    outer.connect("x", "sub.p").connect("sub.y", "y")
    assert problems(outer) == ["node 'sub': input ports ['p'] are not the sub-flow's ['x']"]
    outer.nodes["sub"] = Node("sub", "flow", {"p": int}, {"y": int}, config={"flow": "inner.flow.yaml"})
    assert problems(outer) == ["node 'sub': flow must be a flow (a file path or an inline mapping)"]
    outer = Flow("outer", inputs={"x": int}, outputs={"y": int}).add(inner.as_node("sub"))
    outer.connect("x", "sub.x").connect("sub.y", "y")
    assert problems(outer) == []


# -- wires -------------------------------------------------------------------------------------------


def test_wire_from_a_missing_port():
    flow = chain("a")
    flow.wires[0] = Wire.parse("nope -> a.i")
    assert problems(flow) == ["wire 'nope -> a.i': the flow has no input 'nope' (inputs: x)"]
    flow = chain("a").connect("a.out", "a.i")
    assert problems(flow)[0] == "wire 'a.out -> a.i': node 'a' has no output port 'out' (outputs: o)"
    flow = chain("a").connect("b.o", "y")
    assert problems(flow)[0] == "wire 'b.o -> y': there is no node 'b'"
    flow = Flow("f", inputs={}, outputs={}).connect("x", "y")
    assert problems(flow) == [
        "wire 'x -> y': the flow has no input 'x' (inputs: none)",
        "wire 'x -> y': the flow has no output 'y' (outputs: none)",
    ]


def test_wire_from_the_wrong_side_of_a_port():
    flow = chain("a", "b")
    flow.wires[1] = Wire.parse("a.i -> b.i")
    assert problems(flow)[0] == "wire 'a.i -> b.i': 'a.i' is an input port, not a source"
    flow = chain("a")
    flow.wires[0] = Wire.parse("y -> a.i")
    assert problems(flow)[0] == "wire 'y -> a.i': 'y' is a flow output, not a source"


def test_wire_to_a_missing_port():
    flow = chain("a").connect("x", "a.input")
    assert problems(flow) == ["wire 'x -> a.input': node 'a' has no input port 'input' (inputs: i)"]
    flow = chain("a").connect("a.o", "z")
    assert problems(flow) == ["wire 'a.o -> z': the flow has no output 'z' (outputs: y)"]
    flow = chain("a").connect("x", "ghost.i")
    assert problems(flow) == ["wire 'x -> ghost.i': there is no node 'ghost'"]
    flow = chain("a").connect("x", "a.o")
    assert problems(flow) == ["wire 'x -> a.o': 'a.o' is an output port, not a target"]
    flow = chain("a").connect("a.o", "x")
    assert problems(flow) == ["wire 'a.o -> x': 'x' is a flow input, not a target"]


def test_wire_to_a_node_with_no_inputs_lists_none():
    flow = Flow("f", inputs={"x": int}).add(tool("t")).connect("x", "t.i")
    assert problems(flow) == ["wire 'x -> t.i': node 't' has no input port 'i' (inputs: none)"]


def test_type_mismatch_names_both_ports_and_both_types():
    flow = Flow("f", inputs={"x": int}, outputs={"y": str})
    flow.add(tool("a", {"i": int}, {"o": Float(ge=0)}), tool("b", {"i": Str(max_len=3)}, {"o": str}))
    flow.connect("x", "a.i").connect("a.o", "b.i").connect("b.o", "y")
    assert problems(flow) == [
        "wire 'a.o -> b.i': type mismatch: a.o is {float: {ge: 0}} but b.i is {str: {max_len: 3}} "
        "(float is not str)"
    ]


def test_type_mismatch_with_named_records_and_enums():
    flow = load(flow_path("trader"))
    flow.nodes["risk"].inputs["proposed"] = Record("Proposal", side=Enum("buy", "sell"), qty=Int())
    message = problems(flow)[0]
    assert message == (
        "wire 'analyst.order -> risk.proposed': type mismatch: analyst.order is Order but risk.proposed "
        "is Proposal (fields ['side', 'ticker', 'qty', 'price'] are not ['side', 'qty'])"
    )
    flow = load(flow_path("trader"))
    flow.nodes["risk"].inputs["proposed"] = Record(
        "Narrow", side=Enum("buy", "sell"), ticker=Str(), qty=Int(), price=Float()
    )
    assert problems(flow) == [
        "wire 'analyst.order -> risk.proposed': type mismatch: analyst.order is Order but risk.proposed "
        "is Narrow (field side: values ['hold'] are not in ['buy', 'sell'])"
    ]


def test_int_into_float_and_refinements_are_not_mismatches():
    flow = Flow("f", inputs={"x": Int(ge=0)}, outputs={"y": Float(gt=0)}).connect("x", "y")
    assert problems(flow) == []
    flow = Flow("f", inputs={"x": Float()}, outputs={"y": Int()}).connect("x", "y")
    assert problems(flow) == ["wire 'x -> y': type mismatch: x is float but y is int (float is not int)"]
    flow = Flow("f", inputs={"x": List(Int())}, outputs={"y": List(Float())}).connect("x", "y")
    assert problems(flow) == []


def test_target_wired_twice():
    flow = chain("a").connect("x", "a.i")
    assert problems(flow) == ["'a.i' is wired twice (from x and x)"]
    flow = Flow("f", inputs={"x": int, "z": int}, outputs={"y": int}).connect("x", "y").connect("z", "y")
    assert problems(flow) == ["'y' is wired twice (from x and z)"]


def test_unconnected_required_input_and_flow_output():
    flow = chain("a", "b")
    flow.nodes["b"].inputs["extra"] = Int()
    flow.outputs["z"] = Str()
    assert problems(flow) == [
        "node 'b': input 'extra' is not connected",
        "flow output 'z' is not connected",
    ]
    # an unused flow input or node output is fine
    flow = chain("a")
    flow.inputs["unused"] = Int()
    flow.nodes["a"].outputs["spare"] = Int()
    assert problems(flow) == []


# -- names -------------------------------------------------------------------------------------------


def test_duplicate_names():
    flow = Flow("f", inputs={"x": int, "y": int}, outputs={"x": int, "y": int})
    flow.connect("x", "x").connect("y", "y")
    assert problems(flow) == [
        "duplicate name 'x': it is both a flow input and a flow output",
        "duplicate name 'y': it is both a flow input and a flow output",
    ]
    flow = chain("a")
    flow.nodes["a"].outputs["i"] = Int()
    assert problems(flow) == ["node 'a': duplicate port name 'i' (both an input and an output)"]


def test_duplicate_node_names():
    flow = chain("a")
    with pytest.raises(FlowError) as info:
        flow.add(tool("a"))
    assert str(info.value) == "flow 'chain': duplicate node name 'a'"
    with pytest.raises(FlowError) as info:
        flow.add_rail("r", "a.o", "o > 0").add_rail("r", "a.o", "o < 9")
    assert str(info.value) == "flow 'chain': duplicate rail name 'r'"
    with pytest.raises(FlowSyntaxError) as info:
        loads(
            "flow: f\nnodes:\n  a: {kind: tool, tool: 'a:b'}\n  a: {kind: tool, tool: 'a:b'}\n", "d.flow.yaml"
        )
    assert str(info.value) == "d.flow.yaml:4:3: duplicate key 'a'"


def test_duplicate_port_names_in_a_file():
    text = "flow: f\nnodes:\n  a: {kind: tool, tool: 'a:b', inputs: {v: int}, outputs: {v: int}}\n"
    assert problems(loads(text)) == [
        "node 'a': duplicate port name 'v' (both an input and an output)",
        "node 'a': input 'v' is not connected",
    ]


def test_unknown_type_name_is_a_load_error():
    with pytest.raises(FlowSyntaxError) as info:
        loads("flow: f\ntypes: {Order: {qty: int}}\ninputs: {o: Ordr}\n", "t.flow.yaml")
    assert str(info.value) == (
        "t.flow.yaml:3:10: input 'o': unknown type name 'Ordr' (known: Order, bool, float, int, str)"
    )


# -- rails' ports ------------------------------------------------------------------------------------


def test_rail_ports():
    flow = chain("a")
    flow.add_rail("r1", "z", "z > 0").add_rail("r2", "b.o", "o > 0").add_rail("r3", "a.q", "q > 0")
    flow.add_rail("ok1", "x", "x > 0").add_rail("ok2", "y", "y > 0").add_rail("ok3", "a.i", "i > 0")
    assert problems(flow) == [
        "rail 'r1': on 'z': the flow has no input or output of that name",
        "rail 'r2': on 'b.o': there is no node 'b'",
        "rail 'r3': on 'a.q': node 'a' has no port 'q'",
    ]


def test_repair_and_decode_need_an_llm_output():
    flow = llm_flow()
    flow.add_rail("fix", "ask.a", "len(a) > 0", enforce="repair")
    flow.add_rail("mask", "ask.a", "len(a) > 0", enforce="decode")
    assert problems(flow) == []
    flow.add_rail("bad", "ask.q", "len(q) > 0", enforce="decode")
    assert problems(flow) == [
        "rail 'bad': enforce decode needs an llm node's output port, 'ask.q' is not one"
    ]
    flow = chain("a").add_rail("bad", "a.o", "o > 0", enforce="repair")
    assert problems(flow) == ["rail 'bad': enforce repair needs an llm node's output port, 'a.o' is not one"]


# -- cycles and loops ----------------------------------------------------------------------------------


def test_cycle_not_broken_by_a_loop():
    flow = Flow("f", inputs={"x": int}, outputs={"y": int})
    for name in ("a", "b", "c"):
        flow.add(tool(name, {"i": int, "j": int}, {"o": int}))
    flow.connect("x", "a.i").connect("a.o", "b.i").connect("b.o", "c.i").connect("c.o", "a.j")
    flow.connect("x", "b.j").connect("x", "c.j").connect("c.o", "y")
    assert problems(flow) == ["cycle a -> b -> c -> a is not broken by a loop node"]
    with pytest.raises(FlowValidationError) as info:
        validate(flow)
    assert str(info.value) == "flow 'f': cycle a -> b -> c -> a is not broken by a loop node"


def test_self_loop_is_a_cycle():
    flow = Flow("f", inputs={"x": int}, outputs={"y": int}).add(tool("a", {"i": int, "j": int}, {"o": int}))
    flow.connect("x", "a.i").connect("a.o", "a.j").connect("a.o", "y")
    assert problems(flow) == ["cycle a -> a is not broken by a loop node"]


def test_cycle_downstream_of_valid_nodes_is_reported_once():
    flow = chain("p")
    flow.add(tool("a", {"i": int, "j": int}, {"o": int}), tool("b", {"i": int}, {"o": int}))
    flow.connect("p.o", "a.i").connect("a.o", "b.i").connect("b.o", "a.j")
    assert problems(flow) == ["cycle a -> b -> a is not broken by a loop node"]


def test_cycle_through_a_loops_next_is_allowed():
    flow = loop_flow(body=3)
    assert problems(flow) == []
    graph = analyse(flow)
    assert graph.loop_bodies == {"L": {"b0", "b1", "b2"}}
    assert [str(w) for w in graph.back_edges] == ["b2.o -> L.next"]
    assert graph.order.index("L") < graph.order.index("b0") < graph.order.index("b2")


def test_loop_fed_straight_from_its_item():
    flow = Flow("f", inputs={"s": int}, outputs={"out": int})
    flow.add(
        Node(
            "L",
            "loop",
            {"init": int, "next": int},
            {"item": int, "result": int},
            config={"max_iterations": 2},
        )
    )
    flow.connect("s", "L.init").connect("L.item", "L.next").connect("L.result", "out")
    assert problems(flow) == []
    flow.wires[1] = Wire.parse("L.result -> L.next")
    assert "loop 'L': next must come from its body or its item" in problems(flow)


def test_loop_body_values_must_not_leak():
    flow = loop_flow(body=2)
    flow.outputs["peek"] = Int()
    flow.connect("b0.o", "peek")
    assert problems(flow) == [
        "loop 'L': 'b0.o -> peek' takes a value out of the loop body; use 'L.result' instead"
    ]
    flow = loop_flow(body=1)
    flow.outputs["peek"] = Int()
    flow.connect("L.item", "peek")
    assert problems(flow) == [
        "loop 'L': 'L.item -> peek' takes a value out of the loop body; use 'L.result' instead"
    ]


def test_loop_result_cannot_feed_its_own_body():
    flow = loop_flow(body=1)
    flow.nodes["b0"].inputs["r"] = Int()
    flow.connect("L.result", "b0.r")
    found = problems(flow)
    assert "loop 'L': its result cannot feed its own body ('L.result -> b0.r')" in found


def test_loop_next_from_outside_its_body():
    flow = loop_flow(body=1)
    flow.add(tool("side", {"i": int}, {"o": int}))
    flow.connect("start", "side.i")
    flow.wires = [w for w in flow.wires if str(w) != "b0.o -> L.next"]
    flow.connect("side.o", "L.next")
    flow.outputs["spare"] = Int()
    flow.connect("b0.o", "spare")
    assert "loop 'L': next is wired from 'side.o', which is not in its body" in problems(flow)


def test_nested_loops():
    flow = loop_flow(body=1)
    inner = Node(
        "M", "loop", {"init": int, "next": int}, {"item": int, "result": int}, config={"max_iterations": 3}
    )
    flow.add(inner, tool("c", {"i": int}, {"o": int}))
    # outer body: b0 -> M (inner loop over c) -> L.next
    flow.wires = [w for w in flow.wires if str(w) != "b0.o -> L.next"]
    flow.connect("b0.o", "M.init").connect("M.item", "c.i").connect("c.o", "M.next").connect(
        "M.result", "L.next"
    )
    assert problems(flow) == []
    bodies = analyse(flow).loop_bodies
    assert bodies["M"] == {"c"}
    assert bodies["L"] == {"b0", "M", "c"}


def test_graph_problems_wait_for_sound_wires():
    # a broken wire is reported; the cycle analysis would be meaningless and is skipped
    flow = chain("a").connect("ghost.o", "a.i")
    found = problems(flow)
    assert found == [
        "wire 'ghost.o -> a.i': there is no node 'ghost'",
        "'a.i' is wired twice (from x and ghost.o)",
    ]


def test_problems_inside_a_sub_flow_are_reported_by_the_parent():
    inner = chain("a")
    inner.outputs["z"] = Int()
    outer = Flow("outer", inputs={"x": int}, outputs={"y": int}).add(inner.as_node("sub"))
    outer.connect("x", "sub.x").connect("sub.y", "y")
    outer.nodes["sub"].outputs["z"] = Int()
    assert problems(outer) == ["node 'sub': sub-flow 'chain': flow output 'z' is not connected"]
    deeper = Flow("deeper", inputs={"x": int}, outputs={"y": int}).add(outer.as_node("mid"))
    deeper.connect("x", "mid.x").connect("mid.y", "y")
    assert problems(deeper) == [
        "node 'mid': sub-flow 'outer': node 'sub': sub-flow 'chain': flow output 'z' is not connected"
    ]
