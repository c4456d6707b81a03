"""Grouping selected nodes into a sub-flow node: typed boundary ports, same verdicts, undo."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.flow.strategies import any_type, named_types
from workbench.app.canvas import FlowCanvas
from workbench.app.document import FlowDocument
from workbench.app.grouping import GroupRefused, _split, verdicts
from workbench.examples import flow_path
from workbench.flow import Flow, Node, PortRef, dumps, load, loads
from workbench.flow.validate import problems
from workbench.flow.verify import check_report
from workbench.types import Int, Type

TOOL = "workbench.examples.support:redact"


def crossing_types(flow: Flow, chosen: set[str]) -> list[tuple[str, str]]:
    """The type of every wire that crosses the boundary of ``chosen`` (inbound, outbound)."""
    out = []
    for wire in flow.wires:
        if (wire.source.node in chosen) != (wire.target.node in chosen):
            typ = flow.source_type(wire.source)
            assert typ is not None
            out.append(("in" if wire.target.node in chosen else "out", typ.describe()))
    return sorted(set(out))


def boundary_types(flow: Flow, node: str) -> list[tuple[str, str]]:
    """The types the group node's wires carry, read off the grouped flow."""
    out = []
    for wire in flow.wires:
        if node in (wire.source.node, wire.target.node):
            typ = flow.source_type(wire.source)
            assert typ is not None
            out.append(("in" if wire.target.node == node else "out", typ.describe()))
    return sorted(set(out))


def is_convex(flow: Flow, chosen: set[str]) -> bool:
    """No path leaves ``chosen`` and comes back (grouping it would make a cycle)."""
    succs: dict[str, set[str]] = {n: set() for n in flow.nodes}
    for wire in flow.wires:
        if wire.source.node in succs and wire.target.node in succs:
            succs[wire.source.node].add(wire.target.node)
    todo = [t for n in chosen for t in succs[n] if t not in chosen]
    seen: set[str] = set()
    while todo:
        node = todo.pop()
        if node in chosen:
            return False
        if node not in seen:
            seen.add(node)
            todo += succs[node]
    return True


@st.composite
def dag_flows(draw: st.DrawFn) -> Flow:
    """A valid flow of tool nodes in a random DAG, with rails on some int ports."""
    type_names = draw(st.lists(st.sampled_from(("Order", "Side", "T")), unique=True, max_size=2))
    named = draw(named_types(type_names))
    pool = list(named.values())
    flow = Flow("dag", types=named)
    sources: list[tuple[PortRef, Type]] = []
    for i in range(draw(st.integers(2, 6))):
        name = f"n{i}"
        inputs = {f"i{k}": draw(any_type(pool)) for k in range(draw(st.integers(1, 2)))}
        outputs = {f"o{k}": draw(any_type(pool)) for k in range(draw(st.integers(1, 2)))}
        flow.add(Node.tool(name, TOOL, inputs=inputs, outputs=outputs))
        for port, typ in inputs.items():
            fits = [ref for ref, t in sources if typ.accepts(t) is None]
            if fits and draw(st.booleans()):
                source = draw(st.sampled_from(fits))
            else:  # a new flow input of exactly this type
                source = PortRef(None, f"x{len(flow.inputs)}")
                flow.inputs[source.port] = typ
                sources.append((source, typ))
            flow.connect(source, PortRef(name, port))
        sources += [(PortRef(name, port), typ) for port, typ in outputs.items()]
    fed = {w.source for w in flow.wires}
    for ref, typ in sources:
        if ref.node is not None and (ref not in fed or draw(st.booleans())):
            out = f"y{len(flow.outputs)}"
            flow.outputs[out] = typ
            flow.connect(ref, PortRef(None, out))
    for ref, typ in sources + [(PortRef(None, k), t) for k, t in flow.outputs.items()]:
        if isinstance(typ, Int) and draw(st.integers(0, 3)) == 0:
            bound = draw(st.integers(-3, 3))
            flow.add_rail(f"r{len(flow.rails)}", str(ref), f"{ref.port} >= {bound}")
    assert problems(flow) == [], problems(flow)
    return flow


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_grouping_keeps_port_types_and_verdicts(data: Any) -> None:
    flow = data.draw(dag_flows())
    chosen = data.draw(st.sets(st.sampled_from(sorted(flow.nodes)), min_size=1))
    doc = FlowDocument(flow)
    before_text, before = doc.text(), check_report(flow)
    railed = {r.on.node for r in flow.rails.values()} & chosen
    try:
        node = doc.group(chosen)
    except GroupRefused as exc:
        event("refused")
        # A selection that holds rails or would make a cycle is refused; any other refusal is
        # the re-check's, and the grouped flow's verdicts must really differ (the group's
        # inputs are typed as their sources, so a narrower type of a port inside, which
        # narrowed what check saw, is hidden in the sub-flow).
        if not railed and is_convex(flow, chosen):
            assert "verdicts" in str(exc), str(exc)
            split = _split(flow, [n for n in flow.nodes if n in chosen], "g")
            assert verdicts(check_report(split)) != verdicts(before), str(exc)
        assert doc.text() == before_text and not doc.can_undo
        return
    event("grouped")
    assert not railed and is_convex(flow, chosen)
    grouped = doc.flow
    assert problems(grouped) == []
    after = check_report(grouped)
    assert after["errors"] == [] and verdicts(after) == verdicts(before)
    # The group's ports are the crossing wires, with their types.
    assert boundary_types(grouped, node) == crossing_types(flow, chosen)
    inner = grouped.nodes[node].config["flow"]
    assert set(inner.nodes) == chosen and not set(grouped.nodes) & chosen
    assert {k: t.describe() for k, t in grouped.nodes[node].inputs.items()} == {
        k: t.describe() for k, t in inner.inputs.items()
    }
    assert dumps(loads(doc.text())) == doc.text()  # the file it saves loads as the same flow
    assert doc.undo() is not None and doc.text() == before_text


def test_triage_redact_and_classify_become_one_node() -> None:
    doc = FlowDocument(load(flow_path("triage")))
    original = doc.text()
    before = verdicts(check_report(doc.flow))
    node = doc.group(["classify", "redact"])
    group = doc.flow.nodes[node]
    assert node == "group1" and group.kind == "flow"
    assert {k: t.describe() for k, t in group.inputs.items()} == {"ticket": "{str: {max_len: 4000}}"}
    assert list(group.outputs) == ["redact_text", "classify_category", "classify_urgency"]
    assert group.outputs["classify_category"].describe() == "Category"
    assert "ticket -> group1.ticket" in [str(w) for w in doc.flow.wires]
    assert "group1.classify_urgency -> prioritise.urgency" in [str(w) for w in doc.flow.wires]
    assert verdicts(check_report(doc.flow)) == before
    assert list(doc.flow.nodes) == ["group1", "prioritise", "summarise"]  # where redact was
    assert "redact" not in doc.positions and node in doc.positions
    assert doc.undo() == "group redact, classify as group1"
    assert doc.text() == original and "redact" in doc.positions
    assert doc.redo() and node in doc.flow.nodes


@pytest.mark.parametrize(
    ("chosen", "reason"),
    [
        (["summarise"], r"rail no_email \(on summarise\.reply\) would move into the sub-flow"),
        (["redact", "prioritise"], "rail enterprise_first"),
        ([], "select the nodes to group first"),
        (["nope"], "has no node 'nope'"),
    ],
)
def test_grouping_that_would_change_verdicts_is_refused(chosen: list[str], reason: str) -> None:
    doc = FlowDocument(load(flow_path("triage")))
    with pytest.raises(GroupRefused, match=reason):
        doc.group(chosen)
    assert not doc.can_undo


def _chain(*kinds: str) -> Flow:
    flow = Flow("c", {"text": str}, {"out": str})
    last = "text"
    for i, kind in enumerate(kinds):
        if kind == "router":
            node = Node(f"n{i}", "router", {"value": str}, {"yes": str, "no": str})
            node.config = {"routes": {"yes": 'value == "yes"'}, "default": "no"}
            flow.add(node).connect(last, f"n{i}.value")
            last = f"n{i}.yes"
        else:
            flow.add(Node.tool(f"n{i}", TOOL, inputs={"ticket": str}, outputs={"text": str}))
            flow.connect(last, f"n{i}.ticket")
            last = f"n{i}.text"
    return flow.connect(last, "out")


def test_a_cycle_a_router_or_a_skippable_input_is_refused() -> None:
    flow = _chain("tool", "tool", "tool")
    with pytest.raises(GroupRefused, match="cycle"):
        FlowDocument(flow).group(["n0", "n2"])  # n0 -> n1 -> n2 would leave and re-enter the group
    routed = _chain("router", "tool", "tool")
    with pytest.raises(GroupRefused, match="router n0"):
        FlowDocument(routed).group(["n0", "n1"])
    with pytest.raises(GroupRefused, match=r"n0\.yes may carry no value"):
        FlowDocument(routed).group(["n1", "n2"])
    assert FlowDocument(flow).group(["n1", "n2"]) == "group1"


def test_canvas_groups_the_selection_and_says_why_not() -> None:
    doc = FlowDocument(load(flow_path("triage")))
    canvas = FlowCanvas(doc)
    canvas._on_selection({"nodes": ["redact", "classify"]})
    assert canvas.selection == ["redact", "classify"]
    assert canvas.group_selected() == "group1"
    assert "grouped redact, classify as group1 (1 input, 3 outputs)" in canvas.message.object
    ids = [n["id"] for n in canvas.flow_view.nodes]
    assert "group1" in ids and "redact" not in ids
    assert "ticket -> group1.ticket" in [e["id"] for e in canvas.flow_view.edges]
    assert canvas.group_selected(["summarise"]) is None
    assert "rail no_email" in canvas.message.object


def test_a_grouped_sub_flow_opens_with_a_plain_breadcrumb() -> None:
    from workbench.app.workbench_app import Workbench

    app = Workbench({"triage": flow_path("triage")})
    top = app.stack[0][0]
    assert top.canvas.group_selected(["redact", "classify"]) == "group1"
    app.open_subflow("group1")  # its inner flow is named after the node: not said twice
    assert [b.label for b in app.crumbs if hasattr(b, "label")] == ["triage", "group1 (sub-flow)"]
