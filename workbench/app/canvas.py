"""The flow canvas (panel-reactflow): typed ports, connect, palette, inspector, undo, save.

``FlowCanvas(doc)`` shows a ``FlowDocument``. Every node of the flow is one canvas node
with its own node type (its typed ports); the flow's inputs and outputs are two more.
Edits from the browser (a new wire, a deleted node, a move) go through the document, so
they are type-checked and undoable, and the canvas is redrawn from the document after
each. A wire between incompatible ports is taken back with a message naming both ports
and both types (``Type.accepts``).

A wire drawn or deleted in the browser is already on the page: the document checks it and
the page gets small patches of just the wires that changed (the new one restyled, the one
it replaced or a refused one hidden), not the whole wire list again (about 50 KB in a
200-node flow, which made a connect take 200-450 ms). Every other edit redraws from the
document.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any, Literal

import panel as pn
from panel_reactflow import NodeType, ReactFlow

from workbench.errors import WorkbenchError
from workbench.flow import Flow, PortRef, Wire
from workbench.types import Bool, Enum, Float, Int, List, Record, Str, Type

from .document import KIND_TEMPLATES, FlowDocument
from .inspector import FIELDS, config_value, kind_details
from .layout import INPUTS_ID, NODE_WIDTH, OUTPUTS_ID, auto_layout, bounds, node_height
from .text import message, plural, text_pane

__all__ = ["TYPE_COLOURS", "FlowCanvas", "type_colour"]

TYPE_COLOURS = {
    Str: "#2563eb",
    Int: "#16a34a",
    Float: "#0d9488",
    Bool: "#ea580c",
    Enum: "#9333ea",
    List: "#a16207",
    Record: "#dc2626",
}
KIND_COLOURS = {
    "tool": "#f1f5f9",
    "llm": "#fef3c7",
    "router": "#e0f2fe",
    "loop": "#ede9fe",
    "vote": "#fce7f3",
    "flow": "#dcfce7",
    "agent": "#ffedd5",
}

# Above this many nodes run progress tints nodes instead of ringing them: zoomed out far
# enough to show them all, a ring is thinner than a pixel. (!important: a node's own colour
# is set inline, and beat the tint until it had it.)
RING_LIMIT = 200

BASE_CSS = """
.react-flow__node { font-size: 12px; border-radius: 6px; min-width: 180px; padding: 0; }
.rf-node-label { text-align: center; margin: 0 !important; font-size: 13px; font-weight: 600; }
.react-flow__handle { width: 11px; height: 11px; border: 2px solid #fff; }
/* The selected node: a blue border and halo. Run marks (box-shadow, background-image) stay
   visible on it; a rail conflict's red outline gives way to the halo while it is selected. */
.react-flow__node.selected.selected { border: 2px solid #1d4ed8 !important; outline: 3px solid #93c5fd; }
.react-flow__handle::before {
  content: attr(data-handleid); position: absolute; top: -5px; font-size: 11px;
  color: #334155; white-space: nowrap; pointer-events: none;
}
.react-flow__handle-left::before { left: 12px; }
.react-flow__handle-right::before { right: 12px; }
"""


MESSAGE_HEIGHT = 28  # px of the message line above the canvas, reserved while it is empty


def type_colour(typ: Type) -> str:
    """The colour of a port of type ``typ``."""
    return TYPE_COLOURS.get(type(typ), "#64748b")


def _handles(ports: dict[str, Type]) -> list[str | dict[str, Any]]:
    return [{"id": p, "label": p, "type": t.describe()} for p, t in ports.items()]


# Every node type gets a data schema (the canvas's nodes hold no data): without one,
# panel-reactflow looks for a schema among all nodes for each node, n * n steps on every
# redraw (half a second of opening a 1,000-node flow).
NO_DATA = {"type": "object"}


def _node_type(name: str, label: str, inputs: list[Any], outputs: list[Any]) -> NodeType:
    return NodeType(type=name, label=label, inputs=inputs, outputs=outputs, schema=NO_DATA)


def _on_click(button: pn.widgets.Button, action: Callable[[], object]) -> None:
    """Run ``action`` on every click of ``button`` (what it returns is not Panel's business)."""

    def handler(_event: object) -> None:
        action()

    button.on_click(handler)


def _no_editor(*_args: Any, **_kwargs: Any) -> None:
    """panel-reactflow's editor factory for nodes and edges that have none."""
    return None


def _css_id(value: str) -> str:
    # Canvas ids are identifiers or 'flow.inputs'/'flow.outputs': nothing to escape in CSS.
    return value.replace("\\", "").replace('"', "")


def _node_sel(node_id: str) -> str:
    """A node by the class the canvas gives it (``wb-n-`` + its id), twice for weight.

    A class, not ``[data-id=...]``: the browser files rules under their class, so restyling
    matches each node against its own rule, not against one rule per node of the flow.
    (Not React Flow's type class either: nodes with the same ports share one type.)
    """
    cls = "wb-n-" + re.sub(r"[^A-Za-z0-9_-]", lambda m: "\\" + m.group(), node_id)
    return f".{cls}.{cls}"


def _css_str(value: str) -> str:
    """``value`` as the inside of a double-quoted CSS string."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\a ")


class FlowCanvas(pn.viewable.Viewer):
    """The editable canvas of one ``FlowDocument`` with palette, toolbar and inspector."""

    def __init__(self, doc: FlowDocument, *, height: int = 560, **params: Any) -> None:
        super().__init__(**params)
        self.doc = doc
        self._revision = 0
        self._gone = 0  # wires hidden in the browser (renamed wb-gone-N)
        self._applying = False  # set while the canvas is redrawn from the document
        self.rail_marks: dict[str, str] = {}  # "node.port" -> rail status (from the rails panel)
        self.run_marks: dict[str, str] = {}  # node -> running | done | failed
        self.flow_view = ReactFlow(
            sizing_mode="stretch_width",
            height=height,
            # No panel-reactflow connection policies: with any, starting and ending a wire
            # re-render every node (each handle re-checks itself against every node and
            # wire), 50-80 ms of a connect's time in a 200-node flow. React Flow itself
            # joins outputs to inputs only and does not add a wire twice; the document
            # checks the types.
            connection_validation={},
            display_side_bar=False,
            min_zoom=0.1,
            show_minimap=False,
            # The inspector is ours: no panel-reactflow data editor per node and per edge
            # (it made one JSON editor model per node, sent with the page and walked by
            # every update of the canvas: 202 of them in a 200-node flow).
            editor_mode="side",
            default_node_editor=_no_editor,
            default_edge_editor=_no_editor,
            stylesheets=[BASE_CSS],
        )
        self.flow_view.on_msg(self._on_msg)
        self.flow_view.on("edge_added", self._on_edge_added)
        self.flow_view.on("edge_deleted", self._on_edge_deleted)
        self.flow_view.on("node_deleted", self._on_node_deleted)
        self.flow_view.on("node_moved", self._on_node_moved)
        self.flow_view.on("selection_changed", self._on_selection)
        # A fixed height, empty or not: a message that appeared or went moved every node
        # under the pointer. A longer message wraps over the canvas's top edge instead.
        self.message = text_pane(
            sizing_mode="stretch_width",
            height=MESSAGE_HEIGHT,
            css_classes=["wb-canvas-message"],
            stylesheets=[":host { overflow: visible; z-index: 10; } .wb-text { position: relative; }"],
        )
        self.inspector = pn.Column(sizing_mode="stretch_width", min_width=260)
        self._flow_info = text_pane(pre=True, css_classes=["wb-flow-info"])
        self._flow_panes: list[Any] = [pn.pane.HTML("<b>Inspector</b> (select a node)"), self._flow_info]
        self.selected: str | None = None
        self.selection: list[str] = []  # every selected node (Shift-click adds one)
        palette = [
            pn.widgets.Button(label=f"+ {kind}", color="light", width=56, css_classes=[f"wb-add-{kind}"])
            for kind in KIND_TEMPLATES
        ]
        for button, kind in zip(palette, KIND_TEMPLATES):
            _on_click(button, functools.partial(self.add_node, kind))
        self.undo_button = pn.widgets.Button(label="Undo", width=60)
        self.redo_button = pn.widgets.Button(label="Redo", width=60)
        self.delete_button = pn.widgets.Button(label="Delete", width=66, color="warning")
        self.layout_button = pn.widgets.Button(label="Layout", width=66)
        self.group_button = pn.widgets.Button(label="Group", width=66, css_classes=["wb-group-button"])
        self.save_button = pn.widgets.Button(label="Save", width=60, color="primary")
        self.code_button = pn.widgets.Button(label="Python", width=70, css_classes=["wb-export-button"])
        self.code = pn.widgets.TextAreaInput(
            label="Python that rebuilds this flow (select all and copy)",
            height=260,
            visible=False,
            sizing_mode="stretch_width",
            css_classes=["wb-export-code"],
            stylesheets=["textarea { font: 12px/1.4 monospace; white-space: pre; }"],
        )
        # Called with a node name when the inspector's "Open sub-flow" is pressed.
        self.on_open_subflow: Callable[[str], object] | None = None
        _on_click(self.undo_button, lambda: self._history(self.doc.undo, "undo"))
        _on_click(self.redo_button, lambda: self._history(self.doc.redo, "redo"))
        _on_click(self.delete_button, self.delete_selected)
        _on_click(self.layout_button, self.relayout)
        _on_click(self.group_button, self.group_selected)
        _on_click(self.save_button, self.save)
        _on_click(self.code_button, self.toggle_code)
        buttons = [*palette, self.undo_button, self.redo_button, self.delete_button]
        buttons += [self.group_button, self.layout_button, self.save_button, self.code_button]
        for button in buttons:
            button.margin = (5, 2)  # Panel's 10 px each side wrapped the toolbar onto two lines
        self.toolbar = pn.FlexBox(
            *palette,
            self.undo_button,
            self.redo_button,
            self.delete_button,
            self.group_button,
            self.layout_button,
            self.save_button,
            self.code_button,
            sizing_mode="stretch_width",
            gap="2px",
            justify_content="flex-start",
        )
        self.listeners: list[Any] = []  # called with the document after every edit
        # Edits made elsewhere (the rails panel) are undone here too: keep the buttons right.
        doc.listeners.append(lambda _label: self._update_buttons())
        self.redraw()
        self._show_inspector()

    # -- drawing --------------------------------------------------------------------------

    def redraw(self) -> None:
        """Rebuild the canvas from the document (nodes, ports, wires, marks)."""
        flow = self.doc.flow
        self.doc.positions = auto_layout(flow, self.doc.positions)
        types: dict[str, Any] = {
            INPUTS_ID: _node_type(INPUTS_ID, "inputs", [], _handles(flow.inputs)),
            OUTPUTS_ID: _node_type(OUTPUTS_ID, "outputs", _handles(flow.outputs), []),
        }
        nodes = [
            self._node(INPUTS_ID, "inputs", "#f8fafc", len(flow.inputs)),
            self._node(OUTPUTS_ID, "outputs", "#f8fafc", len(flow.outputs)),
        ]
        for name, node in flow.nodes.items():
            # Nodes with the same ports share one node type: a 200-node chain sends one type,
            # not 200 (every update of the canvas walks them all, and the first page loads them).
            inputs, outputs = _handles(node.inputs), _handles(node.outputs)
            kind = (
                "ports-"
                + hashlib.sha1(json.dumps([inputs, outputs]).encode(), usedforsecurity=False).hexdigest()[:12]
            )
            types.setdefault(kind, _node_type(kind, node.kind, inputs, outputs))
            ports = max(len(node.inputs), len(node.outputs))
            nodes.append(
                self._node(name, f"{name} · {node.kind}", KIND_COLOURS.get(node.kind, "#fff"), ports, kind)
            )
        self._send(node_types=types, nodes=nodes)
        self._restyle()
        self._update_buttons()

    def redraw_wires(self) -> None:
        """Send the wires only: after an edit that changed nothing but wires (a connect).

        Nodes, their port types and the port colours are unchanged, so neither they nor
        the stylesheet go to the browser again: React Flow redraws edges, not every node
        (a whole redraw of a 200-node flow took most of a connect's time).
        """
        self._send()
        self._update_buttons()

    def _send(self, **params: Any) -> None:
        # A fresh class per send: the browser skips edge lists equal to the last one it was
        # sent, and after wires patched in place (_take_wire) that is exactly what it gets.
        self._revision += 1
        edges = [self._edge(w) for w in self.doc.flow.wires]
        self._applying = True
        try:
            self.flow_view.param.update(**params, edges=edges)
        finally:
            self._applying = False

    def _keep_wires(self) -> None:
        """Set the canvas's edge list to the document's wires without sending it to the browser.

        For wires the browser shows already (patched in place): the list stays what a page
        opened later draws, and what panel-reactflow's own handlers look edges up in.
        Changed in place: assigning it, even with events discarded, has param compare the
        old and new list dict by dict (tens of ms in a 200-node flow).
        """
        self.flow_view.edges[:] = [self._edge(w) for w in self.doc.flow.wires]

    def _patch_edge(self, edge_id: str, patch: dict[str, Any]) -> None:
        """Change one edge in the browser in place (panel-reactflow's ``patch_edge_props`` message).

        Sent as the message itself: the method checks the keys against the few it knows,
        and an edge that goes needs ``id`` and ``hidden`` too (React Flow skips hidden edges).
        """
        self.flow_view._send_msg({"type": "patch_edge_props", "edge_id": edge_id, "patch": patch})

    def _hide_edge(self, edge_id: str) -> None:
        """Take an edge off the page: hidden, renamed, and with no target port.

        Renamed so that a wire drawn again later can take its id; without its target port
        React Flow's own check does not take it for a duplicate of a wire drawn again.
        """
        self._gone += 1
        self._patch_edge(edge_id, {"id": f"wb-gone-{self._gone}", "hidden": True, "targetHandle": None})

    def _node(
        self, node_id: str, label: str, colour: str, ports: int, node_type: str | None = None
    ) -> dict[str, Any]:
        x, y = self.doc.positions[node_id]
        # Tall enough that the port names beside the handles do not overlap.
        return {
            "id": node_id,
            "type": node_type or node_id,
            "className": f"wb-n-{node_id}",  # run marks select it (_node_sel); ids hold no spaces
            "label": label,
            "position": {"x": x, "y": y},
            "data": {},
            "style": {
                "background": colour,
                "border": "1px solid #94a3b8",
                "minHeight": f"{node_height(ports):.0f}px",
            },
            "deletable": node_id not in (INPUTS_ID, OUTPUTS_ID),
        }

    @staticmethod
    def _end(ref: PortRef, side: str) -> tuple[str, str]:
        if ref.node is None:
            return (INPUTS_ID if side == "source" else OUTPUTS_ID), ref.port
        return ref.node, ref.port

    def _edge(self, wire: Wire) -> dict[str, Any]:
        src, src_port = self._end(wire.source, "source")
        dst, dst_port = self._end(wire.target, "target")
        typ = self.doc.flow.source_type(wire.source)
        return {
            "id": str(wire),
            "source": src,
            "target": dst,
            "sourceHandle": src_port,
            "targetHandle": dst_port,
            "style": {"stroke": type_colour(typ) if typ else "#94a3b8", "strokeWidth": 2},
            "className": f"wb-rev-{self._revision}",
        }

    def _restyle(self) -> None:
        """Port colours by type, rail marks on ports, run progress on nodes (one stylesheet)."""
        flow = self.doc.flow
        # One rule per (port name, type), by the handle's tooltip "name (type)": a 1,000-node
        # chain needs a few rules, not one per handle (Bokeh re-installs every sheet on any
        # change, and the browser matched each handle against all of them).
        colours: dict[str, str] = {}
        ports = [flow.inputs, flow.outputs] + [{**n.inputs, **n.outputs} for n in flow.nodes.values()]
        for side in ports:
            for port, typ in side.items():
                colours[f"{port} ({typ.describe()})"] = type_colour(typ)
        rules = [
            f'.react-flow__handle[data-tooltip="{_css_str(tip)}"] {{ background: {colour}; }}'
            for tip, colour in colours.items()
        ]
        ring = {"proved": "#16a34a", "conflict": "#dc2626", "enforced": "#d97706"}
        for where, status in self.rail_marks.items():
            node, _, port = where.rpartition(".")
            node_id = node or (INPUTS_ID if port in flow.inputs else OUTPUTS_ID)
            colour = ring.get(status)
            if colour:
                sel = (
                    f'.react-flow__handle[data-nodeid="{_css_id(node_id)}"][data-handleid="{_css_id(port)}"]'
                )
                rules.append(f"{sel} {{ box-shadow: 0 0 0 3px {colour}; }}")
                if status == "conflict":
                    rules.append(
                        f'.react-flow__node[data-id="{_css_id(node_id)}"] {{ outline: 3px solid #dc2626; }}'
                    )
        # Run marks stay rules here although every change makes Bokeh re-install the sheets
        # and the browser restyle the whole canvas (13,000 elements, ~0.18 s of main thread
        # for 1,000 nodes here): measured against it, a className patch per node re-renders
        # every node in React (panel-reactflow's nodes read a context renewed on each render),
        # ~1.5x that, and classes on the canvas's own element ~2.5x.
        glow = {"running": "#f59e0b", "done": "#16a34a", "failed": "#dc2626", "paused": "#7c3aed"}
        if len(flow.nodes) <= RING_LIMIT:
            mark = "box-shadow: 0 0 0 4px {};"
        else:
            mark = "background-image: linear-gradient({0}66, {0}66) !important;"
        for node_id, state in self.run_marks.items():
            rules.append(f"{_node_sel(node_id)} {{ {mark.format(glow.get(state, '#94a3b8'))} }}")
        self.flow_view.stylesheets = [BASE_CSS, "\n".join(rules)]

    def mark_rails(self, marks: dict[str, str]) -> None:
        """Show rail statuses on ports (``{"node.port": "proved"|"conflict"|...}``)."""
        if marks != self.rail_marks:  # most re-checks after an edit change no verdict
            self.rail_marks = dict(marks)
            self._restyle()

    def mark_run(self, node: str, state: str | None) -> None:
        """Light up a node while it runs (``running``, ``paused``, ``done``, ``failed``; None clears)."""
        if state is None:
            self.run_marks.pop(node, None)
        else:
            self.run_marks[node] = state
        self._restyle()

    def mark_runs(self, marks: dict[str, str | None]) -> None:
        """``mark_run`` for many nodes at once, with one restyle (a big run's progress batches)."""
        for node, state in marks.items():
            if state is None:
                self.run_marks.pop(node, None)
            else:
                self.run_marks[node] = state
        self._restyle()

    def clear_run_marks(self) -> None:
        """Remove all run progress marks."""
        self.run_marks = {}
        self._restyle()

    def _update_buttons(self) -> None:
        self.undo_button.disabled = not self.doc.can_undo
        self.redo_button.disabled = not self.doc.can_redo

    # -- edits ----------------------------------------------------------------------------

    def _changed(self, *, redraw: Literal["all", "wires", "none"] = "all") -> None:
        """Show the document after an edit.

        ``redraw``: ``"wires"`` when it changed nothing but wires, ``"none"`` when the
        browser shows it already (a wire drawn or deleted there, patched in place).
        """
        if self.code.visible:  # keep the shown code in step with the flow
            from .export import flow_python

            self.code.value = flow_python(self.doc.flow)
        if redraw == "all":
            self.redraw()
            self._show_inspector()
        else:
            if redraw == "wires":
                self.redraw_wires()
            else:
                self._update_buttons()
            if self.selected is None:  # the flow summary counts wires; a node's panes do not
                self._show_inspector()
        for listener in self.listeners:
            listener(self.doc)

    def say(self, text: str, style: str = "info") -> None:
        """Show a one-line message above the canvas."""
        message(self.message, text, style)

    def add_node(self, kind: str) -> str:
        """Add a node of ``kind`` (palette)."""
        name = self.doc.add_node(kind)
        self.selected = name
        self.say(f"added {name} ({kind})")
        self._changed()
        self._reveal(name)
        return name

    def _reveal(self, node_id: str) -> None:
        """Pan and zoom out so that ``node_id`` shows, when it lies outside the view.

        A new node goes below the others when they leave no hole, and a view fitted to
        them ends at the lowest one. The view then shows every node again, as tall as the
        canvas allows and no closer than it was (its width is the browser's: the flow's
        left edge is kept in view, and the columns fitted before fit again).
        """
        positions = self.doc.positions
        others = {k: v for k, v in positions.items() if k != node_id}
        left, top, right, bottom = bounds(self.doc.flow, others)
        nx, ny = positions[node_id]
        n_bottom = bounds(self.doc.flow, {node_id: (nx, ny)})[3]
        view = self.flow_view.viewport
        height = float(self.flow_view.height or 560)
        if view:
            pad = 8.0  # clear of the canvas's edge
            zoom, dy = view["zoom"], view["y"]
            shown = pad <= ny * zoom + dy and n_bottom * zoom + dy <= height - pad
        else:  # the view fitted at load: the other nodes' box
            shown = left <= nx and nx + NODE_WIDTH <= right and top <= ny and n_bottom <= bottom
        if shown:
            return
        left, top, _, bottom = bounds(self.doc.flow, positions)
        pad = 20.0  # around the nodes, as a fitted view leaves
        zoom = min(view["zoom"] if view else 1.0, (height - 2 * pad) / (bottom - top))
        zoom = max(zoom, self.flow_view.min_zoom)
        self.flow_view.viewport = {"x": pad - left * zoom, "y": pad - top * zoom, "zoom": zoom}

    def delete_selected(self) -> None:
        """Delete the selected node."""
        if self.selected and self.selected in self.doc.flow.nodes:
            name = self.selected
            self.doc.remove_node(name)
            self.selected = None
            self.say(f"deleted {name}")
            self._changed()
        else:
            self.say("select a node to delete first")

    def group_selected(self, names: list[str] | None = None) -> str | None:
        """Group the selected nodes (or ``names``) into one sub-flow node; None when refused."""
        chosen = [n for n in (self.selection if names is None else names) if n in self.doc.flow.nodes]
        try:
            node = self.doc.group(chosen)
        except WorkbenchError as exc:
            self.say(str(exc), "error")
            return None
        self.selected, self.selection = node, [node]
        ports = self.doc.flow.nodes[node]
        counts = f"{plural(len(ports.inputs), 'input')}, {plural(len(ports.outputs), 'output')}"
        self.say(f"grouped {', '.join(chosen)} as {node} ({counts})", "ok")
        self._changed()
        return node

    def relayout(self) -> None:
        """Lay every node out again (undoable)."""
        for node_id, pos in auto_layout(self.doc.flow).items():
            self.doc.move(node_id, pos)
        self._changed()

    def _history(self, step: Any, what: str) -> None:
        label = step()
        self.say(f"{what}: {label}" if label else f"nothing to {what}")
        self._changed()

    def connect(self, source: str, target: str) -> bool:
        """Wire ``source -> target``; on a type mismatch show why and return False."""
        try:
            wire = self.doc.connect(source, target)
        except WorkbenchError as exc:
            self.say(f"refused: {exc}", "error")
            self.redraw_wires()  # takes back the wire the browser drew
            return False
        self.say(f"connected {wire}", "ok")
        self._changed(redraw="wires")
        return True

    def toggle_code(self) -> str:
        """Show (or hide again) the Python code that rebuilds the flow; returns the code."""
        from .export import flow_python

        code = flow_python(self.doc.flow)
        self.code.value = code
        self.code.visible = not self.code.visible
        return code

    def save(self, path: str | None = None) -> bool:
        """Save the flow file and layout; show why not when refused."""
        try:
            target = self.doc.save(path)
        except WorkbenchError as exc:
            self.say(str(exc), "error")
            return False
        self.say(f"saved {target}", "ok")
        return True

    # -- browser events ---------------------------------------------------------------------

    def _ref(self, node_id: str, port: str | None) -> PortRef:
        if node_id in (INPUTS_ID, OUTPUTS_ID):
            return PortRef(None, port or "")
        return PortRef(node_id, port or "")

    def _on_msg(self, event: Any) -> None:
        """Take a wire drawn or deleted in the browser before panel-reactflow does.

        Its own handlers send the whole edge list back, which the page shows already.
        Message callbacks run first and share the message, so the wire is handled here and
        the message renamed for panel-reactflow (pinned) to ignore.
        """
        msg = getattr(event, "data", None)
        if not isinstance(msg, dict):
            return
        if msg.get("type") == "edge_added" and isinstance(msg.get("edge"), dict):
            msg["type"] = "edge_added_by_workbench"
            with pn.io.hold():  # one patch for the wire and the message, as panel-reactflow does
                self._take_wire(msg["edge"])
        elif msg.get("type") == "edge_deleted":
            msg["type"] = "edge_deleted_by_workbench"
            ids = [i for i in [*(msg.get("edge_ids") or []), msg.get("edge_id")] if isinstance(i, str)]
            with pn.io.hold():
                self._drop_wires(ids)

    def _take_wire(self, edge: dict[str, Any]) -> None:
        """Check a wire the browser drew (its ``edge``) and patch the page to match the document.

        Kept: the drawn edge gets the wire's id and colour, and the wire it replaced (its
        target had one) is hidden. Refused: the drawn edge is hidden and the message says why.
        """
        drawn = str(edge.get("id", ""))
        source = self._ref(edge.get("source", ""), edge.get("sourceHandle"))
        target = self._ref(edge.get("target", ""), edge.get("targetHandle"))
        shown = {e["id"] for e in self.flow_view.edges}  # what the page shows besides the drawn one
        try:
            wire = self.doc.connect(source, target)
        except WorkbenchError as exc:
            self.say(f"refused: {exc}", "error")
            self._hide_edge(drawn)
            return
        self.say(f"connected {wire}", "ok")
        self._keep_wires()
        for gone in shown - {e["id"] for e in self.flow_view.edges}:
            self._hide_edge(gone)
        if str(wire) in shown:  # drawn again: the page has it already
            self._hide_edge(drawn)
        else:
            style = self._edge(wire)["style"]
            self._patch_edge(drawn, {"id": str(wire), "style": style})
        self._changed(redraw="none")

    def _drop_wires(self, edge_ids: list[str]) -> None:
        """Wires deleted in the browser (gone from the page already) leave the document too."""
        removed = [w for w in self.doc.flow.wires if str(w) in edge_ids]
        for wire in removed:
            self.doc.disconnect(wire)
        if removed:
            self.say("removed wire " + ", ".join(map(str, removed)))
            self._keep_wires()
            self._changed(redraw="none")

    def _on_edge_added(self, payload: dict[str, Any]) -> None:
        if self._applying:
            return
        edge = payload.get("edge") or {}
        source = self._ref(edge.get("source", ""), edge.get("sourceHandle"))
        target = self._ref(edge.get("target", ""), edge.get("targetHandle"))
        self.connect(str(source), str(target))

    def _on_edge_deleted(self, payload: dict[str, Any]) -> None:
        if self._applying:
            return
        edge_id = payload.get("edge_id")
        for wire in self.doc.flow.wires:
            if str(wire) == edge_id:
                self.doc.disconnect(wire)
                self.say(f"removed wire {wire}")
                self._changed(redraw="wires")
                return

    def _on_node_deleted(self, payload: dict[str, Any]) -> None:
        if self._applying:
            return
        name = payload.get("node_id")
        if name in self.doc.flow.nodes:
            self.doc.remove_node(name)
            self.selected = None
            self.say(f"deleted {name}")
            self._changed()
        elif name in (INPUTS_ID, OUTPUTS_ID):
            self.redraw()  # the flow's own ports cannot go

    def _on_node_moved(self, payload: dict[str, Any]) -> None:
        pos = payload.get("position") or {}
        node_id = payload.get("node_id")
        if node_id in self.doc.positions and "x" in pos and "y" in pos:
            self.doc.move(node_id, (float(pos["x"]), float(pos["y"])))
            self._update_buttons()

    def _on_selection(self, payload: dict[str, Any]) -> None:
        nodes = payload.get("nodes") or []
        self.selection = [n for n in nodes if n in self.doc.flow.nodes]
        selected = nodes[0] if nodes else None
        if selected != self.selected:
            self.selected = selected
            self._show_inspector()

    # -- inspector ------------------------------------------------------------------------

    def _show_inspector(self) -> None:
        flow: Flow = self.doc.flow
        node = flow.nodes.get(self.selected or "")
        if node is None:
            lines = [
                f"flow {flow.name}",
                f"{plural(len(flow.nodes), 'node')}, {plural(len(flow.wires), 'wire')}",
            ]
            if flow.description:
                lines.append(flow.description)
            lines.append("inputs: " + ", ".join(f"{k}: {t.describe()}" for k, t in flow.inputs.items()))
            lines.append("outputs: " + ", ".join(f"{k}: {t.describe()}" for k, t in flow.outputs.items()))
            # Most edits happen with nothing selected: change the text, keep the panes
            # (new panes are new browser views on every wire drawn).
            message(self._flow_info, "\n".join(lines))
            if list(self.inspector) != self._flow_panes:
                self.inspector[:] = self._flow_panes
            return
        summary = [f"{node.name} · {node.kind}"]
        summary += [f"in  {k}: {t.describe()}" for k, t in node.inputs.items()]
        summary += [f"out {k}: {t.describe()}" for k, t in node.outputs.items()]
        widgets: list[Any] = [
            pn.pane.HTML("<b>Inspector</b>"),
            text_pane("\n".join(summary), pre=True, css_classes=["wb-node-info"]),
        ]
        for key in FIELDS.get(node.kind, ()):
            value = node.config.get(key)
            cls = pn.widgets.TextAreaInput if key in ("prompt", "system") else pn.widgets.TextInput
            widget = cls(
                label=key,
                value="" if value is None else str(value),
                sizing_mode="stretch_width",
                css_classes=[f"wb-field-{key}"],
            )
            widget.param.watch(
                lambda e, k=key, n=node.name, w=widget: self._set_config(n, k, e.new, w), "value"
            )
            widgets.append(widget)
        details = kind_details(node)
        if details:
            widgets.append(text_pane("\n".join(details), pre=True, css_classes=["wb-node-details"]))
        if node.kind == "flow" and isinstance(node.config.get("flow"), Flow) and self.on_open_subflow:
            opener = pn.widgets.Button(label="Open sub-flow", width=120, css_classes=["wb-open-subflow"])
            _on_click(opener, functools.partial(self.on_open_subflow, node.name))
            widgets.append(opener)
        guarantees = pn.widgets.TextAreaInput(
            label="guarantees (one rail per line)",
            value="\n".join(node.guarantees),
            sizing_mode="stretch_width",
            height=80,
        )
        guarantees.param.watch(lambda e, n=node.name: self._set_guarantees(n, e.new), "value")
        widgets.append(guarantees)
        self.inspector[:] = widgets

    def _set_config(self, name: str, key: str, text: str, widget: Any = None) -> None:
        """Set a text field of a node's config through the document (undoable).

        The text becomes the key's type (a whole number for ``max_steps``...), and an edit
        that would make the node invalid for its kind is refused with the reason; ``widget``
        (the field edited) then shows the node's value again.
        """
        node = self.doc.flow.nodes.get(name)
        if node is None:
            return
        try:
            value = config_value(node, key, text, self.doc.flow)
        except ValueError as exc:
            self.say(f"refused: {exc}", "error")
            if widget is not None:
                old = node.config.get(key)
                widget.value = "" if old is None else str(old)
            return
        if node.config.get(key) == value:  # the field shows the node's value again
            return
        self.doc.set_config(name, key, value)
        self.say(f"set {name}.{key}")
        self._update_buttons()
        for listener in self.listeners:
            listener(self.doc)

    def _set_guarantees(self, name: str, text: str) -> None:
        if name in self.doc.flow.nodes:
            self.doc.set_guarantees(name, [line.strip() for line in text.splitlines() if line.strip()])
            self._update_buttons()
            for listener in self.listeners:
                listener(self.doc)

    def __panel__(self) -> Any:
        return pn.Column(self.toolbar, self.message, self.flow_view, self.code, sizing_mode="stretch_width")
