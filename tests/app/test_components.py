"""The app's parts in Python: document edits, undo/redo, save, layout sidecar, canvas events."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from workbench.app.canvas import FlowCanvas
from workbench.app.document import KIND_TEMPLATES, FlowDocument, IncompatibleConnection, StaleFileError
from workbench.app.layout import INPUTS_ID, OUTPUTS_ID, auto_layout, layout_path, read_layout
from workbench.app.rails_panel import RailsPanel, parse_problem
from workbench.examples import flow_path
from workbench.flow import dumps, load, loads
from workbench.flow.validate import problems


@pytest.fixture
def triage(tmp_path: Path) -> Path:
    path = tmp_path / "triage.flow.yaml"
    path.write_text(dumps(load(flow_path("triage"))), encoding="utf-8")
    return path


def test_saving_an_unchanged_flow_rewrites_it_byte_for_byte(triage: Path) -> None:
    before = triage.read_bytes()
    doc = FlowDocument.open(triage)
    assert not doc.dirty
    doc.save()
    assert triage.read_bytes() == before
    assert layout_path(triage) == triage.with_name("triage.layout.json")
    assert set(read_layout(triage)) == {INPUTS_ID, OUTPUTS_ID, *load(triage).nodes}


def test_canvas_edits_round_trip_through_dumps(triage: Path) -> None:
    doc = FlowDocument.open(triage)
    canvas = FlowCanvas(doc)
    name = canvas.add_node("tool")
    assert canvas.connect("redact.text", f"{name}.text")
    doc.set_config(name, "tool", "workbench.examples.support:redact")
    text = doc.text()
    again = loads(text)
    assert dumps(again) == text
    assert f"redact.text -> {name}.text" in [str(w) for w in again.wires]
    assert again.nodes[name].config["tool"] == "workbench.examples.support:redact"
    # The canvas shows the new node and wire.
    assert name in [n["id"] for n in canvas.flow_view.nodes]
    assert f"redact.text -> {name}.text" in [e["id"] for e in canvas.flow_view.edges]


def test_palette_nodes_are_valid_for_their_kind(triage: Path) -> None:
    doc = FlowDocument.open(triage)
    for kind in KIND_TEMPLATES:
        doc.add_node(kind)
    kind_errors = [p for p in problems(doc.flow) if "not connected" not in p]
    assert kind_errors == []


def test_incompatible_connection_names_both_ports_and_types(triage: Path) -> None:
    doc = FlowDocument.open(triage)
    canvas = FlowCanvas(doc)
    wires = list(doc.flow.wires)
    with pytest.raises(IncompatibleConnection, match=r"redact\.text \(str\).*prioritise\.urgency \(int"):
        doc.connect("redact.text", "prioritise.urgency")
    assert not canvas.connect("classify.category", "prioritise.urgency")
    assert "classify.category (Category)" in canvas.message.object
    assert "prioritise.urgency (int" in canvas.message.object
    assert doc.flow.wires == wires and not doc.can_undo


def test_browser_edge_event_is_checked_and_taken_back(triage: Path) -> None:
    doc = FlowDocument.open(triage)
    canvas = FlowCanvas(doc)
    edge = {
        "id": "x",
        "source": "redact",
        "target": "prioritise",
        "sourceHandle": "text",
        "targetHandle": "urgency",
    }
    canvas.flow_view.add_edge(edge)  # what the frontend's edge_added message does
    assert "x" not in [e["id"] for e in canvas.flow_view.edges]
    assert "refused" in canvas.message.object
    good = {
        "id": "y",
        "source": INPUTS_ID,
        "target": "summarise",
        "sourceHandle": "ticket",
        "targetHandle": "text",
    }
    canvas.flow_view.add_edge(good)
    assert "ticket -> summarise.text" in [str(w) for w in doc.flow.wires]
    assert "redact.text -> summarise.text" not in [str(w) for w in doc.flow.wires]  # replaced


def test_undo_and_redo_walk_the_command_stack(triage: Path) -> None:
    doc = FlowDocument.open(triage)
    original = doc.text()
    name = doc.add_node("llm")
    doc.connect("redact.text", f"{name}.text")
    doc.remove_node("classify")
    after = doc.text()
    assert doc.undo() == "delete classify"
    assert "classify" in doc.flow.nodes
    assert doc.undo() == f"connect redact.text -> {name}.text"
    assert doc.undo() == f"add {name}"
    assert doc.text() == original and doc.undo() is None
    assert doc.redo() and doc.redo() and doc.redo()
    assert doc.text() == after and doc.redo() is None
    doc.undo()
    doc.move("redact", (1.0, 2.0))  # a new edit clears what could be redone
    assert not doc.can_redo


def test_save_refuses_a_file_changed_on_disk(triage: Path) -> None:
    doc = FlowDocument.open(triage)
    doc.add_node("tool")
    triage.write_text(triage.read_text(encoding="utf-8") + "# someone else's edit\n", encoding="utf-8")
    with pytest.raises(StaleFileError, match="changed on disk"):
        doc.save()
    assert triage.read_text(encoding="utf-8").endswith("# someone else's edit\n")
    canvas = FlowCanvas(doc)
    assert not canvas.save()
    assert "changed on disk" in canvas.message.object


def test_example_saves_as_a_new_file_and_never_overwrites_one(tmp_path: Path) -> None:
    target = tmp_path / "triage.flow.yaml"
    doc = FlowDocument.open(flow_path("triage"), save_to=target)
    assert doc.save() == target
    assert target.read_text(encoding="utf-8") == dumps(load(flow_path("triage")))
    other = FlowDocument.open(flow_path("triage"), save_to=target)
    with pytest.raises(StaleFileError, match="already exists"):
        other.save()


def test_positions_live_in_the_sidecar_only(triage: Path) -> None:
    doc = FlowDocument.open(triage)
    doc.move("classify", (123.0, 456.0))
    doc.save()
    assert "123" not in triage.read_text(encoding="utf-8")
    data = json.loads(layout_path(triage).read_text(encoding="utf-8"))
    assert data["nodes"]["classify"] == [123.0, 456.0]
    assert FlowDocument.open(triage).positions["classify"] == (123.0, 456.0)


def test_auto_layout_puts_each_node_after_its_inputs(tmp_path: Path) -> None:
    flow = load(flow_path("triage"))
    pos = auto_layout(flow)
    # Right of its inputs in the same band of columns, or in a band below.
    for wire in flow.wires:
        src, dst = pos[wire.source.node or INPUTS_ID], pos[wire.target.node or OUTPUTS_ID]
        assert dst[0] > src[0] or dst[1] > src[1], wire
    assert pos[INPUTS_ID] == (0.0, 0.0)
    assert pos[OUTPUTS_ID][1] == max(y for _, y in pos.values())
    # Kept positions win; the rest is laid out.
    assert auto_layout(flow, {"redact": (5.0, 6.0)})["redact"] == (5.0, 6.0)


def test_rail_parse_error_points_at_the_column(triage: Path) -> None:
    doc = FlowDocument.open(triage)
    problem = parse_problem(doc, "no_email", "priority >= ")
    assert problem is not None and "column" in problem
    assert problem.splitlines()[-1].index("^") == len("  priority >=")  # just after the last character
    assert parse_problem(doc, "no_email", "priority >= 1") is None


def test_rails_panel_status_changes_with_the_rail(triage: Path) -> None:
    doc = FlowDocument.open(triage)
    marks: dict[str, str] = {}
    panel = RailsPanel(doc, on_marks=marks.update)
    assert {r["name"]: r["status"] for r in panel.report["rails"]}["no_email"] == "enforced"
    panel.choice.value = "no_email"
    panel.editor.value = 'implies(tier == "enterprise", priority >= 2)'
    assert {r["name"]: r["status"] for r in panel.report["rails"]}["no_email"] == "proved"
    assert marks["summarise.reply"] == "proved"
    assert doc.can_undo


def test_a_port_is_marked_by_its_least_settled_rail() -> None:
    """A rail that cannot fail listed after an enforced one on the same port does not hide it."""
    from workbench.api import load

    flow = load("trader")  # budget and restricted on analyst.order are enforced, not proved
    flow.add_rail("qty_known", "analyst.order", "order.qty >= 0")  # true of every value of the type
    marks: dict[str, str] = {}
    panel = RailsPanel(FlowDocument(flow), on_marks=marks.update)
    assert {r["name"]: r["status"] for r in panel.report["rails"]}["qty_known"] == "vacuous"
    assert marks["analyst.order"] == "enforced"
    assert marks["risk.approved"] == "proved"


def test_show_builds_a_notebook_view() -> None:
    import workbench

    view = workbench.show("triage")
    assert view is not None
    shutil.rmtree(Path(".workbench-never"), ignore_errors=True)


def test_connect_sends_the_wires_only(triage: Path) -> None:
    """A new wire changes no node: nodes, port types and styles are not sent to the browser again."""
    doc = FlowDocument.open(triage)
    canvas = FlowCanvas(doc)
    sent: list[str] = []
    canvas.flow_view.param.watch(
        lambda *events: sent.extend(e.name for e in events), ["nodes", "node_types", "edges", "stylesheets"]
    )
    canvas.add_node("tool")
    assert {"nodes", "node_types", "edges"} <= set(sent)  # a new node: everything
    sent.clear()
    assert canvas.connect("redact.text", "tool1.text")
    assert sent == ["edges"]
    assert "redact.text -> tool1.text" in [e["id"] for e in canvas.flow_view.edges]
    sent.clear()
    assert not canvas.connect("redact.text", "prioritise.urgency")  # refused: the browser's wire goes
    assert sent == ["edges"]


def test_rails_panel_adds_and_deletes_rails(triage: Path) -> None:
    doc = FlowDocument.open(triage)
    canvas = FlowCanvas(doc)
    panel = RailsPanel(doc, on_marks=canvas.mark_rails)
    assert "prioritise.priority" in panel.new_port.options and panel.new_port.value == "ticket"
    # Live: the text is parsed at the chosen port as it is typed, the column pointed at.
    panel.new_name.value, panel.new_port.value = "low", "prioritise.priority"
    panel.new_text.value_input = "priority <= "
    assert "column" in panel.new_feedback.object and "^" in panel.new_feedback.object
    assert not panel.add_rail()
    assert "low" not in doc.flow.rails
    panel.new_text.value_input = "priority >= 1"
    assert "parses" in panel.new_feedback.object
    assert panel.add_rail()
    assert doc.flow.rails["low"].check == "priority >= 1" and panel.choice.value == "low"
    statuses = {r["name"]: r["status"] for r in panel.report["rails"]}
    assert statuses["low"] == "enforced"
    assert canvas.undo_button.disabled is False
    assert not panel.add_rail("low", "ticket", "len(ticket) > 0")  # the name is taken
    assert "already" in panel.new_feedback.object
    assert not panel.add_rail("x y", "ticket", "len(ticket) > 0")
    panel.choice.value = "no_email"
    assert panel.delete_rail()
    assert "deleted rail no_email" in panel.feedback.object
    assert "no_email" not in doc.flow.rails and "no_email" not in panel.choice.options
    assert "no_email" not in {r["name"] for r in panel.report["rails"]}
    assert doc.undo() == "delete rail no_email" and "no_email" in doc.flow.rails
    assert doc.undo() == "add rail low" and "low" not in doc.flow.rails
    assert parse_problem(doc, "z", "nope >= 1", "nowhere.port") == "there is no node 'nowhere'"
    # A new rail's text is read at its own port, even under the name of another rail.
    assert parse_problem(doc, "enterprise_first", "len(ticket) > 0", "ticket") is None


def test_a_wire_from_the_browser_is_patched_in_place_not_sent_again(
    triage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The browser's edge_added message: no edge list goes back, only patches of the wires that changed."""
    from panel.models.esm import DataEvent

    doc = FlowDocument.open(triage)
    canvas = FlowCanvas(doc)
    canvas.add_node("tool")
    sent: list[list[str]] = []
    canvas.flow_view.param.watch(lambda e: sent.append([x["id"] for x in e.new]), "edges")
    patches: list[dict] = []
    monkeypatch.setattr(canvas.flow_view, "_send_msg", patches.append)

    def browser(kind: str, **msg: object) -> None:
        canvas.flow_view._process_event(DataEvent(model=None, data={"type": kind, **msg}))

    edge = {"id": "xy", "source": "redact", "target": "tool1", "sourceHandle": "text", "targetHandle": "text"}
    browser("edge_added", edge=edge)
    assert sent == []  # the page has the wire already
    assert "connected redact.text -&gt; tool1.text" in canvas.message.object
    assert patches == [
        {
            "type": "patch_edge_props",
            "edge_id": "xy",
            "patch": {"id": "redact.text -> tool1.text", "style": {"stroke": "#2563eb", "strokeWidth": 2}},
        }
    ]
    # The canvas's own list follows the document (a page opened later draws it).
    assert "redact.text -> tool1.text" in [e["id"] for e in canvas.flow_view.edges]

    patches.clear()
    bad = {**edge, "id": "bad", "target": "prioritise", "targetHandle": "urgency"}
    browser("edge_added", edge=bad)
    assert "refused" in canvas.message.object
    assert [(p["edge_id"], p["patch"]["hidden"]) for p in patches] == [("bad", True)]

    patches.clear()  # a wire into summarise.text replaces redact.text -> summarise.text
    into = {"id": "in", "source": INPUTS_ID, "target": "summarise", "sourceHandle": "ticket"}
    browser("edge_added", edge={**into, "targetHandle": "text"})
    assert sorted((p["edge_id"], "hidden" in p["patch"]) for p in patches) == [
        ("in", False),
        ("redact.text -> summarise.text", True),
    ]
    ids = [e["id"] for e in canvas.flow_view.edges]
    assert "ticket -> summarise.text" in ids and "redact.text -> summarise.text" not in ids

    patches.clear()  # deleted in the page: gone from the document, nothing sent back
    browser("edge_deleted", edge_id="redact.text -> tool1.text", edge_ids=["redact.text -> tool1.text"])
    assert "redact.text -> tool1.text" not in [str(w) for w in doc.flow.wires]
    assert "redact.text -> tool1.text" not in [e["id"] for e in canvas.flow_view.edges]
    assert sent == [] and patches == []
    assert doc.undo() == "disconnect redact.text -> tool1.text"


def test_a_big_flow_sends_no_editor_per_node_and_one_type_per_port_shape() -> None:
    """A 60-node chain: no data-editor model per node in the page, and one node type for them all."""
    from bokeh.document import Document

    from workbench.flow import Flow, Node

    flow = Flow("chain", {"text": str}, {"text": str})
    last = "text"
    for i in range(60):
        flow.add(
            Node.tool(f"n{i}", "workbench.examples.support:redact", inputs={"t": str}, outputs={"o": str})
        )
        flow.connect(last, f"n{i}.t")
        last = f"n{i}.o"
    flow.connect(last, "text")
    canvas = FlowCanvas(FlowDocument(flow))
    root = canvas.flow_view.get_root(Document())
    assert len(root.data.references()) < 10  # was 60 JSON editors and more
    assert len(canvas.flow_view.node_types) == 3  # inputs, outputs, and the one shape of all 60
    # Each type names its (empty) data: panel-reactflow does not search the nodes for one per node.
    assert all(t["schema"] == {"type": "object"} for t in canvas.flow_view.node_types.values())
    assert {n["type"] for n in canvas.flow_view.nodes if n["id"].startswith("n")} == {
        next(k for k in canvas.flow_view.node_types if k.startswith("ports-"))
    }
