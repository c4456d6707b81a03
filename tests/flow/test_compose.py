"""Composition: ``a >> b``, ``a | b``, ``identity``, sub-flows as nodes, and the category laws.

The random flows here are built from Python tool functions (affine maps on ints, tagging on
strings), so the laws are checked on what the flows compute, by running both sides.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.errors import FlowError, ValueValidationError
from workbench.flow import Flow, Node, dumps, identity, loads, parallel, problems, sequence, validate
from workbench.runtime import execute
from workbench.types import Float, Int, Str, Type

# -- tool functions ---------------------------------------------------------------------------------


def affine(a: int, b: int):
    """A tool computing a * (sum of int inputs + lengths of str inputs) + b."""

    def fn(**kw: Any) -> dict[str, Any]:
        total = sum(v if isinstance(v, int) else len(v) for v in kw.values())
        return {"out": a * total + b}

    return fn


def tagger(tag: str):
    """A tool writing its inputs, in name order, inside ``tag(...)``."""

    def fn(**kw: Any) -> dict[str, Any]:
        return {"out": f"{tag}(" + ",".join(f"{k}={kw[k]}" for k in sorted(kw)) + ")"}

    return fn


def tool_node(name: str, inputs: dict[str, Type], out: Type, label: str, fn) -> Node:
    node = Node.tool(name, fn, inputs=inputs, outputs={"out": out})
    node.config["tool"] = f"{__name__}:{label}"  # a distinct reference per function, for equality
    return node


def run_ok(flow: Flow, inputs: dict[str, Any]) -> dict[str, Any]:
    result = execute(flow, inputs)
    assert result.status == "ok", result.error
    return result.outputs


def wire_set(flow: Flow) -> set[str]:
    return {str(w) for w in flow.wires}


def canon(flow: Flow) -> tuple:
    """Everything that makes a flow, with wires as a set (their order means nothing)."""
    return (
        flow.inputs,
        flow.outputs,
        flow.nodes,
        wire_set(flow),
        flow.rails,
        flow.types,
        flow.constants,
        flow.models,
        flow.use,
    )


def assert_same_up_to_node_names(left: Flow, right: Flow) -> None:
    """Equal once ``left``'s nodes take ``right``'s names (nodes pair up in insertion order).

    Node names are internal: when the parts' names clash, composition renames them, and
    ``(a >> b) >> c`` may pick other fresh names than ``a >> (b >> c)``.
    """
    import dataclasses

    from workbench.flow import PortRef

    assert len(left.nodes) == len(right.nodes)
    names = dict(zip(left.nodes, right.nodes))
    for old, new in names.items():
        assert dataclasses.replace(left.nodes[old], name=new) == right.nodes[new]

    def ref(r: PortRef) -> str:
        return str(r if r.node is None else PortRef(names[r.node], r.port))

    assert {f"{ref(w.source)} -> {ref(w.target)}" for w in left.wires} == wire_set(right)
    assert canon(left)[:2] == canon(right)[:2] and canon(left)[4:] == canon(right)[4:]


# -- random flows between named port sets ----------------------------------------------------------

INT, STR = Int(), Str()


def ports(prefix: str, n_min: int = 1) -> st.SearchStrategy[dict[str, Type]]:
    return st.lists(st.sampled_from([INT, STR]), min_size=n_min, max_size=3).map(
        lambda ts: {f"{prefix}{i}": t for i, t in enumerate(ts)}
    )


@st.composite
def arrows(draw: st.DrawFn, inputs: dict[str, Type], outputs: dict[str, Type], name: str) -> Flow:
    """A random valid flow from ``inputs`` to ``outputs`` made of affine and tagging tools."""
    flow = Flow(name, inputs=dict(inputs), outputs=dict(outputs))
    sources: list[tuple[str, Type]] = [(p, t) for p, t in inputs.items()]
    for i in range(draw(st.integers(0, 3))):
        node = f"n{i}"
        used = draw(st.lists(st.sampled_from(sources), min_size=1, max_size=3, unique_by=lambda s: s[0]))
        out = draw(st.sampled_from([INT, STR]))
        node_inputs = {f"i{j}": t for j, (_, t) in enumerate(used)}
        if out == INT:
            a, b = draw(st.integers(-3, 3)), draw(st.integers(-5, 5))
            flow.add(tool_node(node, node_inputs, out, f"affine_{a}_{b}", affine(a, b)))
        else:
            tag = draw(st.sampled_from("fgh"))
            flow.add(tool_node(node, node_inputs, out, f"tag_{tag}", tagger(tag)))
        for j, (src, _) in enumerate(used):
            flow.connect(src, f"{node}.i{j}")
        sources.append((f"{node}.out", out))
    for port, typ in outputs.items():
        same = [s for s, t in sources if t == typ]
        if same and draw(st.booleans()):
            flow.connect(draw(st.sampled_from(same)), port)  # straight through, or from a node
            continue
        node = f"o_{port}"
        used = draw(st.lists(st.sampled_from(sources), min_size=1, max_size=2, unique_by=lambda s: s[0]))
        node_inputs = {f"i{j}": t for j, (_, t) in enumerate(used)}
        if typ == INT:
            a, b = draw(st.integers(-3, 3)), draw(st.integers(-5, 5))
            flow.add(tool_node(node, node_inputs, typ, f"affine_{a}_{b}", affine(a, b)))
        else:
            flow.add(tool_node(node, node_inputs, typ, "tag_o", tagger("o")))
        for j, (src, _) in enumerate(used):
            flow.connect(src, f"{node}.i{j}")
        flow.connect(f"{node}.out", port)
    assert problems(flow) == []
    return flow


def values(ports_: dict[str, Type]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {p: st.integers(-50, 50) if t == INT else st.text("abc", max_size=4) for p, t in ports_.items()}
    )


@st.composite
def chains(draw: st.DrawFn, length: int, prefix: str = "p", shared_names: bool = True) -> list[Flow]:
    """``length`` composable flows: level k ports are named ``{prefix}{k}_{i}``."""
    levels = [draw(ports(f"{prefix}{k}_")) for k in range(length + 1)]
    out = []
    for k in range(length):
        flow = draw(arrows(levels[k], levels[k + 1], f"{prefix}{k}"))
        if not shared_names:  # distinct node names across flows, so composites need no renaming
            flow = rename_nodes(flow, f"{prefix}{k}")
        out.append(flow)
    return out


def rename_nodes(flow: Flow, prefix: str) -> Flow:
    import dataclasses

    from workbench.flow import PortRef, Wire

    new = {n: f"{prefix}_{n}" for n in flow.nodes}

    def ref(r: PortRef) -> PortRef:
        return r if r.node is None else PortRef(new[r.node], r.port)

    flow = flow.copy()
    flow.nodes = {new[n]: dataclasses.replace(node, name=new[n]) for n, node in flow.nodes.items()}
    flow.wires = [Wire(ref(w.source), ref(w.target)) for w in flow.wires]
    return flow


LAW_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- sequence ---------------------------------------------------------------------------------------


@LAW_SETTINGS
@given(st.data())
def test_sequence_computes_b_after_a(data):
    a, b = data.draw(chains(2))
    ab = a >> b
    assert ab.name == "p0 >> p1"
    assert ab.inputs == a.inputs and ab.outputs == b.outputs
    assert len(ab.nodes) == len(a.nodes) + len(b.nodes)
    assert problems(ab) == []
    x = data.draw(values(a.inputs))
    assert run_ok(ab, x) == run_ok(b, run_ok(a, x))
    assert loads(dumps(ab)) == ab


@LAW_SETTINGS
@given(st.data())
def test_sequence_is_associative(data):
    a, b, c = data.draw(chains(3))
    left, right = (a >> b) >> c, a >> (b >> c)
    assert left.name == right.name == "p0 >> p1 >> p2"
    assert_same_up_to_node_names(left, right)
    if len({n for f in (a, b, c) for n in f.nodes}) == sum(len(f.nodes) for f in (a, b, c)):
        assert canon(left) == canon(right)  # nothing was renamed: equal as they stand
    x = data.draw(values(a.inputs))
    assert run_ok(left, x) == run_ok(right, x) == run_ok(c, run_ok(b, run_ok(a, x)))


@LAW_SETTINGS
@given(st.data())
def test_identity_on_both_sides(data):
    (a,) = data.draw(chains(1))
    assert identity(a.inputs) >> a == a
    assert a >> identity(a.outputs) == a
    assert sequence(identity(a.inputs), a) is not a  # a copy, not the same object
    x = data.draw(values(a.inputs))
    assert run_ok(identity(a.inputs) >> a, x) == run_ok(a, x)


def test_identity_passes_each_port_through():
    flow = identity({"x": int, "s": Str(max_len=3)})
    assert flow.inputs == flow.outputs == {"x": Int(), "s": Str(max_len=3)}
    assert wire_set(flow) == {"x -> x", "s -> s"}
    assert not flow.nodes and identity({}, name="none").name == "none"


def test_identity_of_a_narrower_type_is_kept():
    flow = Flow("f", inputs={"x": float}, outputs={"y": float})
    flow.add(tool_node("n", {"i": Float()}, Float(), "double", lambda **kw: {"out": 2 * kw["i"]}))
    flow.connect("x", "n.i").connect("n.out", "y")
    narrowed = identity({"x": Int(ge=0)}) >> flow
    assert narrowed.inputs == {"x": Int(ge=0)}  # not the special case: the types differ
    assert narrowed.outputs == flow.outputs and wire_set(narrowed) == wire_set(flow)
    assert run_ok(narrowed, {"x": 3}) == {"y": 6.0}
    with pytest.raises(ValueValidationError) as info:
        execute(narrowed, {"x": -1})
    assert str(info.value) == "x: -1 is less than the minimum 0"


def test_sequence_joins_wires_through_the_boundary():
    a = Flow("a", inputs={"x": int}, outputs={"m": int, "k": int})
    a.add(tool_node("n", {"i": INT}, INT, "inc", affine(1, 1))).connect("x", "n.i").connect("n.out", "m")
    a.connect("x", "k")  # an output fed straight from an input
    b = Flow("b", inputs={"m": int, "k": int}, outputs={"y": int, "z": int})
    b.add(tool_node("n", {"i": INT, "j": INT}, INT, "sum", affine(1, 0)))
    b.connect("m", "n.i").connect("k", "n.j").connect("n.out", "y").connect("m", "z")
    ab = a >> b
    assert list(ab.nodes) == ["n", "n_2"]  # b's node renamed
    assert wire_set(ab) == {"x -> n.i", "n.out -> n_2.i", "x -> n_2.j", "n_2.out -> y", "n.out -> z"}
    assert run_ok(ab, {"x": 4}) == {"y": 9, "z": 5}


def test_sequence_renames_past_taken_names():
    a = chain_of("a", ["n", "n_2"])
    b = chain_of("b", ["n", "n_2"], prefix="y")
    ab = a >> b
    assert list(ab.nodes) == ["n", "n_2", "n_3", "n_2_2"]  # b's n and n_2, made fresh
    assert run_ok(ab, {"x": 1}) == {"y_out": 5}


def chain_of(name: str, nodes: list[str], prefix: str = "x") -> Flow:
    """A chain of +1 nodes from ``prefix`` to ``{next prefix}``."""
    out = "y" if prefix == "x" else "y_out"
    flow = Flow(name, inputs={prefix: int}, outputs={out: int})
    prev = prefix
    for node in nodes:
        flow.add(tool_node(node, {"i": INT}, INT, "inc", affine(1, 1)))
        flow.connect(prev, f"{node}.i")
        prev = f"{node}.out"
    return flow.connect(prev, out)


def test_sequence_errors_name_both_sides():
    a = Flow("a", inputs={"x": int}, outputs={"y": str}).connect("x", "y")
    b = Flow("b", inputs={"y": int}, outputs={"z": int}).connect("y", "z")
    with pytest.raises(FlowError) as info:
        a >> b
    assert str(info.value) == "cannot compose 'a' >> 'b': a.y is str but b.y is int (str is not int)"
    c = Flow("c", inputs={"w": int, "v": int}, outputs={})
    with pytest.raises(FlowError) as info:
        a >> c
    assert str(info.value) == "cannot compose 'a' >> 'c': outputs of 'a' (y) are not the inputs of 'c' (w, v)"
    with pytest.raises(FlowError) as info:
        Flow("e") >> c
    assert (
        str(info.value) == "cannot compose 'e' >> 'c': outputs of 'e' (none) are not the inputs of 'c' (w, v)"
    )
    assert (Flow("e") >> Flow("f")).inputs == {}


def test_sequence_int_into_float_is_fine_and_float_into_int_is_not():
    a = Flow("a", inputs={"x": int}, outputs={"y": int}).add(
        tool_node("n", {"i": INT}, INT, "inc", affine(1, 1))
    )
    a.connect("x", "n.i").connect("n.out", "y")
    b = Flow("b", inputs={"y": float}, outputs={"z": float})
    b.add(tool_node("m", {"i": Float()}, Float(), "half", lambda **kw: {"out": kw["i"] / 2}))
    b.connect("y", "m.i").connect("m.out", "z")
    assert run_ok(a >> b, {"x": 3}) == {"z": 2.0}
    with pytest.raises(FlowError) as info:
        b >> Flow("a", inputs={"z": int}, outputs={})
    assert str(info.value) == "cannot compose 'b' >> 'a': b.z is float but a.z is int (float is not int)"


def test_sequence_of_an_unfinished_flow_is_an_error_not_a_crash():
    a = Flow("a", inputs={"x": int}, outputs={"y": int})  # y is never wired
    b = Flow("b", inputs={"y": int}, outputs={"z": int}).connect("y", "z")
    with pytest.raises(FlowError) as info:
        a >> b
    assert str(info.value) == "cannot compose 'a' >> 'b': output 'y' of 'a' is not connected"


# -- parallel ---------------------------------------------------------------------------------------


@LAW_SETTINGS
@given(st.data())
def test_parallel_runs_both_sides(data):
    (a,) = data.draw(chains(1, "p"))
    (c,) = data.draw(chains(1, "q"))
    if data.draw(st.booleans()):  # share one of a's inputs with c (the copy map)
        port, typ = next(iter(a.inputs.items()))
        c = c.copy()
        c.inputs[port] = typ
    ac = a | c
    assert ac.name == "p0 | q0"
    assert ac.inputs == {**a.inputs, **c.inputs} and ac.outputs == {**a.outputs, **c.outputs}
    assert problems(ac) == []
    x = data.draw(values(ac.inputs))
    expected = {
        **run_ok(a, {k: x[k] for k in a.inputs}),
        **run_ok(c, {k: x[k] for k in c.inputs}),
    }
    assert run_ok(ac, x) == expected
    assert canon(a @ c) == canon(ac) and parallel(a, c) == ac


def test_parallel_renames_clashing_nodes_and_rails():
    a = chain_of("a", ["n"]).add_rail("pos", "n.out", "out > 0")
    b = Flow("b", inputs={"z": int}, outputs={"w": int})
    b.add(tool_node("n", {"i": INT}, INT, "inc", affine(1, 1))).connect("z", "n.i").connect("n.out", "w")
    b.add_rail("pos", "n.out", "out > 1")
    ab = a | b
    assert list(ab.nodes) == ["n", "n_2"]
    assert {name: (str(r.on), r.check) for name, r in ab.rails.items()} == {
        "pos": ("n.out", "out > 0"),
        "pos_2": ("n_2.out", "out > 1"),
    }
    assert wire_set(ab) == {"x -> n.i", "n.out -> y", "z -> n_2.i", "n_2.out -> w"}
    assert problems(ab) == []


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        (
            Flow("a", outputs={"y": int}),
            Flow("b", outputs={"y": int}),
            "cannot compose 'a' | 'b': both have an output named 'y'",
        ),
        (
            Flow("a", inputs={"x": int}),
            Flow("b", inputs={"x": Int(ge=0)}),
            "cannot compose 'a' | 'b': shared input 'x' is int in 'a' but {int: {ge: 0}} in 'b'",
        ),
        (
            Flow("a", inputs={"x": int}),
            Flow("b", outputs={"x": int}),
            "cannot compose 'a' | 'b': 'x' is an input of one and an output of the other",
        ),
        (
            Flow("a", outputs={"x": int}),
            Flow("b", inputs={"x": int}),
            "cannot compose 'a' | 'b': 'x' is an input of one and an output of the other",
        ),
        (
            Flow("a", constants={"K": 1}),
            Flow("b", constants={"K": 2}),
            "cannot compose 'a' with 'b': both define constant 'K' differently",
        ),
        (
            Flow("a", types={"T": Int()}),
            Flow("b", types={"T": Str()}),
            "cannot compose 'a' with 'b': both define type 'T' differently",
        ),
        (
            Flow("a", models={"m": "default"}),
            Flow("b", models={"m": {"local": "/x"}}),
            "cannot compose 'a' with 'b': both define model 'm' differently",
        ),
    ],
)
def test_parallel_errors(a, b, message):
    with pytest.raises(FlowError) as info:
        a | b
    assert str(info.value) == message


def test_shared_definitions_merge():
    a = Flow("a", types={"T": Int()}, constants={"K": 1}, use=["pii"])
    b = Flow("b", types={"T": Int(), "U": Str()}, constants={"K": 1, "L": [1]}, use=["finance", "pii"])
    ab = a | b
    assert ab.types == {"T": Int(), "U": Str()} and ab.constants == {"K": 1, "L": [1]}
    assert ab.use == ["pii", "finance"]


def test_rails_on_a_boundary_port_block_composition():
    a = chain_of("a", ["n"]).add_rail("cap", "y", "y < 10")
    with pytest.raises(FlowError) as info:
        a | Flow("b", inputs={"q": int})
    assert str(info.value) == (
        "cannot compose 'a': rail 'cap' sits on its boundary port 'y'; attach it to a node port first"
    )


# -- the interchange law ------------------------------------------------------------------------------


@LAW_SETTINGS
@given(st.data())
def test_interchange_law(data):
    distinct = data.draw(st.booleans())
    a, b = data.draw(chains(2, "p", shared_names=not distinct))
    c, d = data.draw(chains(2, "q", shared_names=not distinct))
    left = (a >> b) | (c >> d)
    right = (a | c) >> (b | d)
    assert left.inputs == right.inputs and left.outputs == right.outputs
    assert problems(left) == [] and problems(right) == []
    if distinct:  # no renaming: the same nodes and wires
        assert canon(left) == canon(right)
    else:  # the nodes are added in another order (a c b d), so fresh names may differ
        assert len(left.nodes) == len(right.nodes) and len(left.wires) == len(right.wires)
        assert sorted(n.config["tool"] for n in left.nodes.values()) == sorted(
            n.config["tool"] for n in right.nodes.values()
        )
    x = data.draw(values(left.inputs))
    assert run_ok(left, x) == run_ok(right, x)


# -- sub-flows as nodes ---------------------------------------------------------------------------------


def test_as_node_exposes_the_outer_ports():
    inner = chain_of("inner", ["n", "m"])
    node = inner.as_node()
    assert node.name == "inner" and node.kind == "flow"
    assert node.inputs == {"x": Int()} and node.outputs == {"y": Int()}
    assert node.config == {"flow": inner}
    assert inner.as_node("renamed").name == "renamed"


@LAW_SETTINGS
@given(st.data())
def test_sub_flow_node_computes_what_the_flow_computes(data):
    (a,) = data.draw(chains(1))
    outer = Flow("outer", inputs=dict(a.inputs), outputs=dict(a.outputs)).add(a.as_node("sub"))
    for port in a.inputs:
        outer.connect(port, f"sub.{port}")
    for port in a.outputs:
        outer.connect(f"sub.{port}", port)
    validate(outer)
    x = data.draw(values(a.inputs))
    assert run_ok(outer, x) == run_ok(a, x)
    # a sub-flow composes like any flow: outer >> b == a >> b on values
    (b,) = [data.draw(arrows(a.outputs, {"fin": INT}, "b"))]
    assert run_ok(outer >> b, x) == run_ok(a >> b, x)


def test_sub_flows_nest():
    inner = chain_of("inner", ["n"])
    middle = Flow("middle", inputs={"x": int}, outputs={"y": int}).add(
        inner.as_node("i1"), tool_node("t", {"i": INT}, INT, "dbl", affine(2, 0))
    )
    middle.connect("x", "i1.x").connect("i1.y", "t.i").connect("t.out", "y")
    outer = Flow("outer", inputs={"x": int}, outputs={"y": int}).add(middle.as_node("m"), inner.as_node("i2"))
    outer.connect("x", "m.x").connect("m.y", "i2.x").connect("i2.y", "y")
    assert problems(outer) == []
    assert run_ok(outer, {"x": 1}) == {"y": 5}  # ((1 + 1) * 2) + 1
    assert loads(dumps(outer)) == outer


def test_a_failing_sub_flow_names_itself():
    def boom(**kw: Any) -> dict[str, Any]:
        raise ValueError("no")

    inner = Flow("inner", inputs={"x": int}, outputs={"y": int}).add(
        tool_node("n", {"i": INT}, INT, "boom", boom)
    )
    inner.connect("x", "n.i").connect("n.out", "y")
    outer = Flow("outer", inputs={"x": int}, outputs={"y": int}).add(inner.as_node("sub"))
    outer.connect("x", "sub.x").connect("sub.y", "y")
    result = execute(outer, {"x": 1})
    assert result.status == "failed"
    assert str(result.error).startswith("node 'sub' failed: sub-flow 'inner' failed: node 'n' failed: ")
