"""Export as Python (exec it: the same flow) and sub-flows opened as their own canvas."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.app.canvas import FlowCanvas
from workbench.app.document import FlowDocument
from workbench.app.export import flow_python
from workbench.app.workbench_app import Workbench
from workbench.examples import flow_path, list_flows
from workbench.flow import Flow, Node, dumps, load, loads


def rebuilt(code: str) -> Flow:
    namespace: dict[str, object] = {}
    exec(compile(code, "<exported>", "exec"), namespace)
    flow = namespace["flow"]
    assert isinstance(flow, Flow)
    return flow


@pytest.mark.parametrize("name", list_flows())
def test_exported_example_rebuilds_the_same_flow(name: str) -> None:
    flow = load(flow_path(name))
    assert dumps(rebuilt(flow_python(flow))) == dumps(flow)


def test_export_covers_every_node_kind_sub_flows_and_rail_options() -> None:
    doc = FlowDocument(load(flow_path("triage")))
    names = [doc.add_node(kind) for kind in ("tool", "llm", "router", "loop", "vote", "flow")]
    doc.set_config(names[1], "system", 'say "hi"\nthen stop')
    flow = doc.flow.copy()
    flow.nodes["redact"].timeout = 2.5
    flow.nodes["redact"].retries = 2
    flow.nodes["summarise"].guarantees = ['not matches(reply.summary, ".*@.*")']
    flow.constants = {"limit": 3}
    flow.add_rail("short", "redact.text", "len(text) <= 4000", "repair", max_attempts=2)
    flow.version = 1
    code = flow_python(flow)
    assert "Flow(" in code and "Node(" in code and ".connect(" in code
    again = rebuilt(code)
    assert dumps(again) == dumps(flow)
    assert dumps(again.nodes["flow1"].config["flow"]) == dumps(flow.nodes["flow1"].config["flow"])


def test_sub_flow_from_a_file_keeps_its_reference(tmp_path: Path) -> None:
    (tmp_path / "inner.flow.yaml").write_text(
        "flow: inner\nversion: 1\ninputs: {value: str}\noutputs: {result: str}\nnodes: {}\n"
        "wires:\n  - value -> result\n",
        encoding="utf-8",
    )
    outer = loads(
        "flow: outer\nversion: 1\ninputs: {text: str}\noutputs: {text: str}\nnodes:\n"
        "  step:\n    kind: flow\n    flow: inner.flow.yaml\n    inputs: {value: str}\n"
        "    outputs: {result: str}\nwires:\n  - text -> step.value\n  - step.result -> text\n",
        base_dir=tmp_path,
    )
    code = flow_python(outer)
    assert "'inner.flow.yaml'" in code
    assert dumps(rebuilt(code)) == dumps(outer)


def test_canvas_export_button_shows_the_code() -> None:
    canvas = FlowCanvas(FlowDocument(load(flow_path("triage"))))
    code = canvas.toggle_code()
    assert canvas.code.visible and canvas.code.value == code
    canvas.add_node("tool")
    assert "Node('tool1', 'tool'" in canvas.code.value  # kept in step with edits
    canvas.toggle_code()
    assert not canvas.code.visible


def test_sub_flow_opens_as_its_own_canvas_and_edits_go_back_to_the_parent(tmp_path: Path) -> None:
    path = tmp_path / "triage.flow.yaml"
    path.write_text(dumps(load(flow_path("triage"))), encoding="utf-8")
    app = Workbench({"triage": path})
    top = app.stack[0][0]
    node = top.canvas.add_node("flow")
    inner = app.open_subflow(node)
    assert app.session is inner and len(app.stack) == 2
    assert inner.doc.flow.name == "sub" and inner.canvas.save_button.disabled
    assert [b.label for b in app.crumbs if hasattr(b, "label")] == ["triage", f"{node} (sub)"]
    inner.doc.add_node("tool")
    assert "tool1" not in top.doc.flow.nodes[node].config["flow"].nodes
    app.back(0)
    assert app.session is top and len(app.stack) == 1 and list(app.crumbs) == []
    assert "tool1" in top.doc.flow.nodes[node].config["flow"].nodes
    assert top.doc.can_undo
    saved = loads(top.doc.text())
    assert "tool1" in saved.nodes[node].config["flow"].nodes


def test_unchanged_sub_flow_leaves_the_parent_alone(tmp_path: Path) -> None:
    path = tmp_path / "x.flow.yaml"
    flow = Flow("x", {"a": str}, {"b": str})
    inner = Flow("inner", {"v": str}, {"r": str}).connect("v", "r")
    flow.add(Node("s", "flow", {"v": str}, {"r": str}, config={"flow": inner}))
    flow.connect("a", "s.v").connect("s.r", "b")
    path.write_text(dumps(flow), encoding="utf-8")
    app = Workbench({"x": path})
    app.open_subflow("s")
    app.back()
    assert app.session is not None
    assert not app.session.doc.can_undo and app.session.doc.text() == dumps(flow)
