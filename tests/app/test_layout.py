"""Auto-layout: bands of columns within a width bound, no overlaps, deterministic, and
readable shapes for the example flows and a 200-node chain."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.app.document import FlowDocument
from workbench.app.layout import (
    INPUTS_ID,
    MAX_ROW_WIDTH,
    NODE_GAP,
    NODE_WIDTH,
    OUTPUTS_ID,
    Position,
    auto_layout,
    node_height,
    row_width,
)
from workbench.examples import flow_path
from workbench.flow import Flow, Node, PortRef, Wire, load, loads
from workbench.types import Str

from .chain import chain_flow


@st.composite
def dags(draw: st.DrawFn) -> Flow:
    """A random flow of 1-60 nodes with 1-4 inputs and 1-3 outputs, wired forwards (plus a back edge)."""
    flow = Flow("g", {f"i{k}": Str() for k in range(draw(st.integers(1, 3)))}, {"out": Str()})
    count = draw(st.integers(1, 60))
    for n in range(count):
        ins = {f"a{k}": Str() for k in range(draw(st.integers(1, 4)))}
        outs = {f"b{k}": Str() for k in range(draw(st.integers(1, 3)))}
        flow.nodes[f"n{n}"] = Node(f"n{n}", "tool", ins, outs, config={"tool": "m:f"})
    for n in range(count):
        for port in flow.nodes[f"n{n}"].inputs:
            src = draw(st.integers(-1, n - 1))  # -1: a flow input
            source = PortRef(None, "i0") if src < 0 else PortRef(f"n{src}", "b0")
            flow.wires.append(Wire(source, PortRef(f"n{n}", port)))
    flow.wires.append(Wire(PortRef(f"n{count - 1}", "b0"), PortRef(None, "out")))
    if count > 2 and draw(st.booleans()):  # a cycle, as a loop's back edge makes
        flow.wires.append(Wire(PortRef(f"n{count - 1}", "b0"), PortRef("n0", "a0")))
    return flow


def _height(flow: Flow, node_id: str) -> float:
    if node_id == INPUTS_ID:
        return node_height(len(flow.inputs))
    if node_id == OUTPUTS_ID:
        return node_height(len(flow.outputs))
    node = flow.nodes[node_id]
    return node_height(max(len(node.inputs), len(node.outputs)))


def _overlaps(flow: Flow, pos: dict[str, Position]) -> list[tuple[str, str]]:
    boxes = [(n, x, y, x + NODE_WIDTH, y + _height(flow, n)) for n, (x, y) in pos.items()]
    return [
        (a[0], b[0])
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
        if a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]
    ]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags(), st.none() | st.floats(NODE_WIDTH, 3000.0))
def test_layout_has_no_overlaps_stays_in_its_width_and_is_deterministic(
    flow: Flow, width: float | None
) -> None:
    pos = auto_layout(flow, max_width=width)
    assert set(pos) == {INPUTS_ID, OUTPUTS_ID, *flow.nodes}
    assert _overlaps(flow, pos) == []
    bound = row_width(flow) if width is None else width
    assert all(x >= 0 and x + NODE_WIDTH <= bound for x, _ in pos.values())
    assert auto_layout(flow.copy(), max_width=width) == pos
    # Reading order: a wire's target is right of its source in the same band, or in a later
    # band (in a flow without a cycle: a back edge is cut where the layering meets it).
    if any(w.source.node and w.target.node == "n0" for w in flow.wires):
        return
    for wire in flow.wires:
        src, dst = pos[wire.source.node or INPUTS_ID], pos[wire.target.node or OUTPUTS_ID]
        assert dst[0] > src[0] or dst[1] > src[1], wire


def test_triage_fits_a_readable_width() -> None:
    flow = load(flow_path("triage"))
    pos = auto_layout(flow)
    assert max(x for x, _ in pos.values()) + NODE_WIDTH <= MAX_ROW_WIDTH
    assert _overlaps(flow, pos) == []


def test_a_200_node_chain_is_a_grid_not_a_row() -> None:
    flow = loads(chain_flow(200))
    pos = auto_layout(flow)
    width = max(x for x, _ in pos.values()) + NODE_WIDTH
    height = max(y for _, y in pos.values()) + node_height(1)
    # About the canvas's shape: what shows it all is a map of the flow, not a strip.
    assert 1.0 <= width / height <= 3.0, (width, height)
    assert _overlaps(flow, pos) == []


def test_kept_positions_win_and_the_rest_is_laid_out() -> None:
    flow = load(flow_path("triage"))
    pos = auto_layout(flow, {"redact": (5.0, 6.0)})
    assert pos["redact"] == (5.0, 6.0)
    assert {k: v for k, v in pos.items() if k != "redact"} == {
        k: v for k, v in auto_layout(flow).items() if k != "redact"
    }


def test_a_new_node_goes_to_free_space_within_the_flows_columns() -> None:
    doc = FlowDocument.open(flow_path("triage"))
    doc.positions = auto_layout(doc.flow)
    left = min(x for x, _ in doc.positions.values())
    right = max(x for x, _ in doc.positions.values()) + NODE_WIDTH
    for kind in ("agent", "tool", "llm", "router", "vote", "flow", "agent"):
        before = dict(doc.positions)
        name = doc.add_node(kind)
        x, y = doc.positions[name]
        h = _height(doc.flow, name)
        for other, (ox, oy) in before.items():  # a gap from every node (the old place was flush)
            oh = _height(doc.flow, other)
            apart_x = x + NODE_WIDTH + NODE_GAP <= ox or ox + NODE_WIDTH + NODE_GAP <= x
            assert apart_x or y + h + NODE_GAP <= oy or oy + oh + NODE_GAP <= y, (name, other)
        assert left <= x and x + NODE_WIDTH <= right, (name, x)  # no wider than the flow was
        assert {k: v for k, v in doc.positions.items() if k != name} == before  # nothing else moved
    # A hole left by a deleted node is used again: the highest free place comes first.
    hole = doc.positions["redact"]
    doc.remove_node("redact")
    assert doc.positions[doc.add_node("tool")] == hole
