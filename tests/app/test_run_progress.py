"""Run progress of big flows: counted in the run view, marked on the canvas in few restyles."""

from __future__ import annotations

import asyncio

from workbench.app.canvas import RING_LIMIT, FlowCanvas
from workbench.app.document import FlowDocument
from workbench.app.run_view import LIVE_LIMIT, RunView
from workbench.examples import flow_path
from workbench.flow import load, loads
from workbench.spans import MemoryTracer

from .chain import chain_flow


def test_a_big_flow_is_marked_on_the_canvas_once_at_the_end_and_counted_meanwhile() -> None:
    n = LIVE_LIMIT + 50
    batches: list[dict[str, str | None]] = []
    view = RunView(
        FlowDocument(loads(chain_flow(n, "out"))),
        tracer=lambda: (MemoryTracer(), False),
        on_nodes=batches.append,
    )
    view.widgets["text"].value = "mail a@b.example"
    asyncio.run(view._run())
    assert view.last_result.status == "ok", view.last_result.error
    assert len(batches) == 1 and batches[0] == {f"n{i}": "done" for i in range(n)}
    assert f"nodes: {n} done (of {n})" in view.progress.object
    assert view.calls_pane.visible is False  # no agent, no tool-call list


def test_a_small_flow_is_marked_live() -> None:
    batches: list[dict[str, str | None]] = []
    view = RunView(
        FlowDocument(load(flow_path("triage"))),
        tracer=lambda: (MemoryTracer(), False),
        on_nodes=batches.append,
    )
    view.widgets["ticket"].value = "Invoice charged twice"
    asyncio.run(view._run())
    marked = {node: state for batch in batches for node, state in batch.items()}
    assert marked == dict.fromkeys(["redact", "classify", "prioritise", "summarise"], "done")
    assert "nodes: 4 done (of 4)" in view.progress.object


def test_canvas_styles_ports_by_type_once_and_tints_progress_of_big_flows() -> None:
    big = FlowCanvas(FlowDocument(loads(chain_flow(RING_LIMIT + 1, "out"))))
    big.mark_runs({"n0": "done", "n1": "running"})
    css = big.flow_view.stylesheets[-1]
    # Three (port, type) pairs for every handle of the chain, not one rule per handle.
    assert css.count("background: #") == 3
    assert '.react-flow__handle[data-tooltip="ticket (str)"]' in css
    assert ".wb-n-n0.wb-n-n0 { background-image: linear-gradient(#16a34a66" in css
    assert "box-shadow: 0 0 0 4px" not in css

    small = FlowCanvas(FlowDocument(load(flow_path("triage"))))
    small.mark_runs({"classify": "paused"})
    assert (
        ".wb-n-classify.wb-n-classify { box-shadow: 0 0 0 4px #7c3aed; }" in (small.flow_view.stylesheets[-1])
    )


def test_nodes_inside_a_sub_flow_count_as_their_sub_flow_node() -> None:
    doc = FlowDocument(load(flow_path("triage")))
    group = doc.group(["redact", "classify"])  # one sub-flow node in place of two
    batches: list[dict[str, str | None]] = []
    tracer = MemoryTracer()
    view = RunView(doc, tracer=lambda: (tracer, False), on_nodes=batches.append)
    view.widgets["ticket"].value = "Invoice charged twice"
    asyncio.run(view._run())
    assert view.last_result.status == "ok", view.last_result.error
    # The inner nodes ran under their own names (their spans say so) ...
    ran = {s.attributes.get("workbench.node.name") for s in tracer.spans}
    assert {"redact", "classify", group} <= ran
    # ... and show on the canvas, and in the count, as the sub-flow node.
    marked = {node: state for batch in batches for node, state in batch.items()}
    assert marked == dict.fromkeys([group, "prioritise", "summarise"], "done")
    assert ">nodes: 3 done (of 3)<" in view.progress.object
