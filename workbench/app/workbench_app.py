"""The whole app of one browser session, and ``show(flow)`` for notebooks.

``Workbench`` puts the parts together: a flow picker, the canvas with the inspector,
rails and run view beside it, and the traces view. ``show`` renders the canvas, inspector,
rails panel and run view of one flow inline in a notebook (``pn.extension(inline=True)``:
offline).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import panel as pn

from workbench.errors import UsageError, WorkbenchError
from workbench.flow import Flow

from .canvas import FlowCanvas
from .document import FlowDocument, flow_under
from .offline import keep_tree_offline
from .rails_panel import RailsPanel
from .run_view import RunView
from .text import message, text_pane
from .traces_view import TracesView

__all__ = ["FlowSession", "Workbench", "show"]

HEADER_CSS = """
:host { display: block; }
.wb-title { font: 600 18px system-ui, sans-serif; color: #0f172a; }
"""


class FlowSession:
    """One open flow: its document, canvas, rails panel and run view, wired together."""

    def __init__(
        self,
        doc: FlowDocument,
        *,
        tracer: Callable[[], tuple[Any, bool]] | None = None,
        on_run: Callable[[Any], None] | None = None,
        height: int = 560,
    ) -> None:
        self.doc = doc
        self.canvas = FlowCanvas(doc, height=height)
        self.rails = RailsPanel(doc, on_marks=self.canvas.mark_rails)
        self.run = RunView(
            doc,
            tracer=tracer,
            on_nodes=self.canvas.mark_runs,
            on_start=self.canvas.clear_run_marks,
            on_done=on_run,
        )
        # Rail edits go through the document too: its listeners keep the canvas's undo button right.
        self.canvas.listeners += [lambda _d: self.rails.refresh_soon(), lambda _d: self.run.rebuild_form()]


def _crumb_label(node: str, inner: str) -> str:
    """A sub-flow's breadcrumb: its node, and the inner flow's name where that says more."""
    return f"{node} (sub-flow)" if inner == node else f"{node} ({inner})"


class Workbench(pn.viewable.Viewer):
    """The served app: ``flows`` maps names to flow files; ``save_to`` maps read-only ones."""

    def __init__(
        self,
        flows: dict[str, Path],
        *,
        save_to: dict[str, Path] | None = None,
        tracer: Callable[[], tuple[Any, bool]] | None = None,
        store: Callable[[], Any] | None = None,
        root: Path | None = None,
        **params: Any,
    ) -> None:
        super().__init__(**params)
        self.flows = dict(flows)  # this session's: a flow opened by path is not everyone's
        self.save_to = save_to or {}
        self._tracer = tracer
        self._store = store
        # The traces view is built when its tab is first opened: its queries and its
        # Tabulator and Bokeh models would otherwise delay every first page.
        self.traces: TracesView | None = None
        self.traces_holder = pn.Column(sizing_mode="stretch_width")
        self.picker = pn.widgets.Select(
            label="flow", options=list(flows), width=220, css_classes=["wb-picker"]
        )
        self.status = text_pane(css_classes=["wb-open-status"], sizing_mode="stretch_width")
        # Open any *.flow.yaml under the served directory by its path (``root``; none: no box).
        self.root = root
        self.path_box = pn.widgets.TextInput(
            label="open by path",
            placeholder="path/to/a.flow.yaml (Enter opens)",
            width=260,
            css_classes=["wb-open-path"],
        )
        self.path_box.param.watch(lambda e: self.open_path(e.new) if e.new else None, "value")
        self.description = text_pane(css_classes=["wb-description"], sizing_mode="stretch_width")
        self.main = pn.Row(sizing_mode="stretch_width")
        self.crumbs = pn.Row(css_classes=["wb-breadcrumb"])
        self.session: FlowSession | None = None
        # The open flow and the sub-flows opened inside it: (session, node name in the parent).
        self.stack: list[tuple[FlowSession, str | None]] = []
        self.picker.param.watch(lambda e: self.open(e.new), "value")
        if flows:
            self.open(next(iter(flows)))

    def open(self, name: str) -> None:
        """Open flow ``name`` from the list."""
        try:
            doc = FlowDocument.open(self.flows[name], save_to=self.save_to.get(name))
        except WorkbenchError as exc:
            message(self.status, f"cannot open {name}: {exc}", "error")
            return
        message(self.status, self._where(name, doc))
        self.stack = [(self._session(doc), None)]
        self._show()

    def _where(self, name: str, doc: FlowDocument) -> str:
        """For the header: the file a flow comes from, or for a read-only example where Save writes."""
        if name not in self.save_to or doc.path is None:
            return str(doc.path)
        target = doc.path
        if self.root is not None and target.is_relative_to(self.root):
            return f"example {name} (read-only) \u2014 Save writes ./{target.relative_to(self.root)}"
        return f"example {name} (read-only) \u2014 Save writes {target}"

    def open_path(self, text: str) -> bool:
        """Open the ``*.flow.yaml`` at ``text`` under the served directory; False (and why) if not."""
        try:
            if self.root is None:
                raise UsageError("this app opens the flows of its list only (it serves no directory)")
            path = flow_under(self.root, text)
        except WorkbenchError as exc:
            message(self.status, str(exc), "error")
            return False
        try:
            FlowDocument.open(path)  # a file that does not load stays out of the list
        except WorkbenchError as exc:
            message(self.status, f"cannot open {text.strip()}: {exc}", "error")
            return False
        name = next((n for n, p in self.flows.items() if p.resolve() == path), None)
        if name is None:
            name = path.name.removesuffix(".flow.yaml")
            if name in self.flows:  # another flow of that name: show where this one is
                name = str(path.relative_to(self.root.resolve()))
            self.flows[name] = path
            self.picker.options = list(self.flows)
        if self.picker.value == name:
            self.open(name)
        else:
            self.picker.value = name  # opens it
        return self.session is not None and self.session.doc.path == path

    def _session(self, doc: FlowDocument) -> FlowSession:
        session = FlowSession(doc, tracer=self._tracer, on_run=self._run_done)
        session.canvas.on_open_subflow = self.open_subflow
        return session

    def open_subflow(self, node: str) -> FlowSession:
        """Open the sub-flow of ``node`` (kind ``flow``) of the flow on show as its own canvas."""
        parent = self.stack[-1][0]
        inner = parent.doc.flow.nodes[node].config["flow"]
        session = self._session(FlowDocument(inner.copy()))
        session.canvas.save_button.disabled = True  # saved with the parent, after going back
        self.stack.append((session, node))
        self._show()
        return session

    def back(self, depth: int = 0) -> None:
        """Close sub-flows down to level ``depth`` (0: the flow itself); their edits go to the parent.

        An edited sub-flow is written into its parent node inline (a sub-flow from a file
        is then saved with the parent, no longer as a reference to that file).
        """
        while len(self.stack) > depth + 1:
            child, node = self.stack.pop()
            parent = self.stack[-1][0]
            if child.doc.can_undo and node is not None:
                edited = child.doc.flow.copy()
                edited.origin = None
                parent.doc.set_config(node, "flow", edited)
                parent.canvas.say(f"sub-flow {node} updated", "ok")
                parent.canvas._changed()
        self._show()

    def _show(self) -> None:
        """Put the session on top of the stack on show, with its breadcrumb."""
        self.session = session = self.stack[-1][0]
        doc = session.doc
        message(self.description, doc.flow.description or "")
        crumbs: list[Any] = []
        for depth, (level, node) in enumerate(self.stack):
            label = level.doc.flow.name if node is None else _crumb_label(node, level.doc.flow.name)
            if depth:
                crumbs.append(pn.pane.HTML("›", margin=(12, 2)))
            button = pn.widgets.Button(
                label=label,
                width=180,
                disabled=depth == len(self.stack) - 1,
                css_classes=[f"wb-crumb-{depth}"],
            )
            button.on_click(functools.partial(self._crumb, depth))
            crumbs.append(button)
        self.crumbs[:] = crumbs if len(self.stack) > 1 else []
        side = pn.Tabs(
            ("Inspector", session.canvas.inspector),
            ("Rails", session.rails),
            ("Run", session.run),
            width=430,
            dynamic=True,  # only the tab on show is sent to the browser
            css_classes=["wb-side"],
        )
        self.main[:] = [pn.Column(session.canvas, sizing_mode="stretch_width"), side]

    def _crumb(self, depth: int, _event: object) -> None:
        self.back(depth)

    def _run_done(self, _result: Any) -> None:
        if self.traces is not None:
            self.traces.refresh()

    def show_traces(self) -> TracesView | None:
        """Build the traces view (once) and put it in its tab; None when there is no store."""
        if self.traces is None and self._store is not None:
            self.traces = TracesView(self._store)
            self.traces_holder[:] = [self.traces]
        return self.traces

    def __panel__(self) -> Any:
        header = pn.Row(
            pn.pane.HTML('<span class="wb-title">Agent Workbench</span>', stylesheets=[HEADER_CSS]),
            self.picker,
            *([self.path_box] if self.root is not None else []),
            self.status,
            sizing_mode="stretch_width",
        )
        tabs: list[tuple[str, Any]] = [
            ("Flow", pn.Column(self.description, self.crumbs, self.main, sizing_mode="stretch_width"))
        ]
        if self._store is not None:
            tabs.append(("Traces", self.traces_holder))
        main = pn.Tabs(*tabs, sizing_mode="stretch_width", dynamic=True)
        main.param.watch(lambda e: self.show_traces() if e.new == 1 else None, "active")
        return pn.Column(header, main, sizing_mode="stretch_width")


def show(flow: Flow | str | Path, *, height: int = 480, db: str | Path | None = None) -> pn.viewable.Viewable:
    """The canvas of ``flow`` (a Flow, a file or an example name) with its inspector, rails
    panel and run view, for notebooks.

    Runs from the *Run* tab happen in the kernel and are traced to ``db`` (default
    ``.workbench/traces.duckdb``, or the ``workbench serve`` that owns that file). Call
    ``pn.extension(inline=True)`` first in a notebook so nothing is fetched from a CDN.
    """
    if isinstance(flow, Flow):
        doc = FlowDocument(flow)
    else:
        from workbench.api import load

        path = Path(flow)
        if path.exists():
            doc = FlowDocument.open(path)
        else:
            loaded = load(flow)
            doc = FlowDocument(loaded)
    session = FlowSession(doc, height=height, tracer=functools.partial(_notebook_tracer, db))
    side = pn.Tabs(
        ("Inspector", session.canvas.inspector),
        ("Rails", session.rails),
        ("Run", session.run),
        dynamic=True,
        sizing_mode="stretch_width",
        css_classes=["wb-side"],
    )
    return keep_tree_offline(pn.Column(session.canvas, side, sizing_mode="stretch_width"))


def _notebook_tracer(db: str | Path | None) -> tuple[Any, bool]:
    """A tracer for one run started in a notebook (closed after the run: the file stays free)."""
    from workbench.traces import tracer_for

    return tracer_for(db), True
