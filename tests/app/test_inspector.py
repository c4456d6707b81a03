"""The canvas inspector: agent fields (edited through the document, checked, undoable), an
agent's tools with where they come from and their approve flag, router/vote/loop details,
and the palette's agent node."""

from __future__ import annotations

import html
from typing import Any

import pytest

from workbench.api import check
from workbench.app.canvas import FlowCanvas
from workbench.app.document import FlowDocument
from workbench.app.inspector import kind_details
from workbench.examples import flow_path
from workbench.flow import AgentTool, Flow, Node, dumps
from workbench.flow.agent_tools import McpServer, McpSource
from workbench.flow.validate import problems
from workbench.types import Str


def _pane(canvas: FlowCanvas, cls: str) -> Any:
    found = [w for w in canvas.inspector if cls in (getattr(w, "css_classes", None) or [])]
    assert found, f"no {cls} in the inspector"
    return found[0]


def _select(canvas: FlowCanvas, name: str) -> None:
    canvas._on_selection({"nodes": [name]})


@pytest.fixture
def desk() -> FlowCanvas:
    return FlowCanvas(FlowDocument.open(flow_path("desk")))


def test_agent_inspector_shows_its_fields_and_tools(desk: FlowCanvas) -> None:
    _select(desk, "desk")
    node = desk.doc.flow.nodes["desk"]
    assert _pane(desk, "wb-field-model").value == "default"
    assert _pane(desk, "wb-field-prompt").value == node.config["prompt"]
    assert _pane(desk, "wb-field-system").value == ""
    assert _pane(desk, "wb-field-max_steps").value == str(node.config["max_steps"])
    tools = _pane(desk, "wb-node-details").object
    assert "tools (2)" in tools
    assert "quote · python function workbench.examples.desk:quote" in tools
    assert "buy · python function workbench.examples.desk:buy" in tools
    # Each tool's approve flag, on the line after its name.
    lines = tools.splitlines()
    assert "approve: no" in lines[lines.index(next(x for x in lines if x.startswith("quote"))) + 1]
    assert "approve: yes" in lines[lines.index(next(x for x in lines if x.startswith("buy"))) + 1]
    assert "in  ticker: Ticker" in tools and "out filled: int" in tools


def test_agent_text_fields_go_through_the_document(desk: FlowCanvas) -> None:
    _select(desk, "desk")
    _pane(desk, "wb-field-prompt").value = "Buy nothing. {{ news }}"
    _pane(desk, "wb-field-system").value = "You are careful."
    _pane(desk, "wb-field-max_steps").value = " 5 "
    config = desk.doc.flow.nodes["desk"].config
    assert config["prompt"] == "Buy nothing. {{ news }}"
    assert config["system"] == "You are careful."
    assert config["max_steps"] == 5  # a number in the file, not the text "5"
    assert "max_steps: 5\n" in dumps(desk.doc.flow)
    assert desk.doc.undo() == "set desk.max_steps"
    assert desk.doc.flow.nodes["desk"].config["max_steps"] == 8
    desk.doc.undo()
    assert "system" not in desk.doc.flow.nodes["desk"].config


@pytest.mark.parametrize(
    ("key", "text", "reason"),
    [
        ("max_steps", "many", "desk.max_steps must be a whole number, got 'many'"),
        ("max_steps", "0", "max_steps must be a positive integer"),
        ("prompt", "", "an agent needs 'prompt'"),
    ],
)
def test_agent_field_edits_that_break_the_node_are_refused(
    desk: FlowCanvas, key: str, text: str, reason: str
) -> None:
    _select(desk, "desk")
    before = dumps(desk.doc.flow)
    field = _pane(desk, f"wb-field-{key}")
    shown = field.value
    field.value = text
    said = html.unescape(desk.message.object)
    assert "refused" in said and reason in said
    assert dumps(desk.doc.flow) == before and not desk.doc.can_undo
    assert field.value == shown  # the field shows the node's value again


def test_palette_adds_an_agent_that_checks() -> None:
    flow = Flow("fresh", {"text": Str()}, {"answer": Str()})
    canvas = FlowCanvas(FlowDocument(flow))
    assert "+ agent" in [getattr(w, "label", None) for w in canvas.toolbar]
    name = canvas.add_node("agent")
    assert canvas.connect("text", f"{name}.text") and canvas.connect(f"{name}.answer", "answer")
    assert problems(canvas.doc.flow) == []
    assert check(canvas.doc.flow).ok
    assert canvas.selected == name  # and the inspector shows its tool
    assert "quote · python function workbench.examples.desk:quote" in _pane(canvas, "wb-node-details").object


def test_mcp_tools_say_which_server_they_come_from() -> None:
    server = McpServer(command=["python", "-m", "files_server"], timeout=30)
    expanded = AgentTool(
        "mcp", inputs={"path": Str()}, outputs={"text": Str()}, mcp=McpSource("web", server, "read_file")
    )
    tools = {
        "files": server,
        "search": McpServer(url="http://127.0.0.1:8931/mcp"),
        "read_file": expanded,
    }
    node = Node("helper", "agent", {"q": Str()}, {"a": Str()}, config={"prompt": "{{ q }}", "tools": tools})
    text = "\n".join(kind_details(node))
    assert "files · MCP server (stdio): python -m files_server · timeout 30 s" in text
    assert "search · MCP server over HTTP at http://127.0.0.1:8931/mcp" in text
    assert "read_file · tool read_file of MCP server (stdio): python -m files_server" in text


def test_router_vote_and_loop_show_their_settings() -> None:
    canvas = FlowCanvas(FlowDocument(Flow("fresh", {"text": Str()}, {"answer": Str()})))
    details = {}
    for kind in ("router", "vote", "loop"):
        details[kind] = _pane(canvas, "wb-node-details").object if canvas.add_node(kind) else ""
    router = html.unescape(details["router"])
    assert 'yes when value == "yes"' in router and "otherwise no" in router
    assert "rule: majority" in details["vote"] and "tie: fail" in details["vote"]
    assert "max_iterations" in details["loop"]
    assert _pane(canvas, "wb-field-max_iterations").value == "3"
