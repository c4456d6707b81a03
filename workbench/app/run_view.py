"""The run view: a form from the flow's input types, run, progress on the canvas, cancel.

Agents: each tool call is listed as it happens (the call as sent, then its outcome, with
the rail that refused it), and a call of a tool marked ``approve: true`` waits on a card
for *Approve*, *Send edited* or *Deny* (``approvals.PendingApprovals``, the executor's
``approve=`` callback). A run that ends ``ok`` after calls were denied, refused by rails
or failed says so in its status line (counted, not in green).

Breakpoints: the run pauses before each node picked under *break before* (the executor's
``before_node`` hook), shows that node's inputs and waits for *Step* (pause again before
the next node) or *Continue* (run on to the next breakpoint).

The run happens in the serving process, on its event loop, traced to the store that
process owns. Progress comes from the tracer itself: ``ProgressTracer`` passes every span
on and reports node spans starting and ending, which light the nodes up on the canvas.
Progress is sent to the page in batches, every ``FLUSH_S`` seconds (the environment's
``WORKBENCH_FLUSH_S`` when set: lower for smoother streaming, higher for slow links) and
whenever the run pauses, and counted in a line of the view; that line also names each
model being loaded (a first run of a local model waits seconds before its node starts).
A flow of more than ``LIVE_LIMIT`` nodes gets its canvas marks only when the run pauses or ends: each restyle
of the canvas makes the browser restyle every element of it (Bokeh re-installs all of a
component's stylesheets), which with a thousand nodes froze the page for most of the run.

Live output: each llm node's (and agent turn's) answer grows under *live output* as the
model decodes it (the executor's ``on_token``; ``workbench.runtime.streaming``), shown as
text and sent with the same batches, never a page update per token. Each model call of a
node starts its text afresh, headed by what it is (``answer``, ``attempt 2 (resample)``,
``repair``, ``turn 3``); the text stays after the run, then the node's last answer. The
``LIVE_TEXT_NODES`` nodes that started a model call last are shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
from collections.abc import Callable
from typing import Any

import panel as pn

from workbench.errors import UsageError, WorkbenchError
from workbench.runtime.streaming import NodeToken
from workbench.spans import NoopTracer, Span, Tracer
from workbench.types import Bool, Enum, Float, Int, Str, Type

from .approvals import PendingApprovals
from .document import FlowDocument
from .text import message, text_pane
from .tool_calls import ToolCalls

__all__ = ["LiveText", "ProgressTracer", "RunView", "flush_seconds", "input_widget", "widget_value"]

NODE_ATTR = "workbench.node.name"
KIND_ATTR = "workbench.node.kind"  # only the executor's node spans carry it
RUN_ATTR = "workbench.run.id"  # only the root span of a flow's run carries it
LOAD_SPAN = "workbench.model.load"  # a node's model loading, before the node's span opens
FLUSH_S = 0.2  # how often progress of a running flow is sent to the page
LIVE_LIMIT = 200  # flows with more nodes are marked on the canvas at pauses and at the end
LIVE_TEXT_NODES = 50  # live output shows the answers of this many nodes (the latest to start one)


def flush_seconds() -> float:
    """How often a running flow's progress goes to the page: ``WORKBENCH_FLUSH_S``, else ``FLUSH_S``."""
    text = os.environ.get("WORKBENCH_FLUSH_S", "").strip()
    if not text:
        return FLUSH_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise UsageError(f"WORKBENCH_FLUSH_S must be a number of seconds > 0, got {text!r}")
    return seconds


class ProgressTracer:
    """A ``Tracer`` that forwards to ``inner`` and calls ``on_node(name, state)`` for node spans.

    Only the nodes of the flow that runs are reported: the nodes inside a sub-flow node run
    under their own names (the sub-flow's own run, nested under that node's span), and
    count as that node, which stays ``running`` until its span ends. ``outer`` maps each
    inner node seen to its node on the canvas.

    With ``calls``, agents' ``execute_tool`` and ``apply_guardrail`` spans go there too.

    A node's model load (``workbench.model.load``, before the node's own span) reports the
    node ``running`` (``failed`` when the load fails) and is listed in ``loading`` meanwhile:
    a first load of a local model takes seconds, with nothing else to show.
    """

    def __init__(
        self, inner: Tracer | None, on_node: Callable[[str, str], None], calls: ToolCalls | None = None
    ) -> None:
        self.inner: Tracer = inner if inner is not None else NoopTracer()
        self.on_node = on_node
        self.calls = calls
        self._nodes: dict[str, str] = {}  # open node spans: span id -> node name
        self._top: dict[str, str] = {}  # open spans of the flow's own nodes: span id -> node name
        self._within: dict[str, str] = {}  # open spans inside a sub-flow node: span id -> that node
        self.outer: dict[str, str] = {}  # inner node of a sub-flow -> the sub-flow node
        self.loading: dict[str, tuple[str, str]] = {}  # open model loads: span id -> (node, model spec)
        self._loads: dict[str, str] = {}  # open model loads: span id -> the node on the canvas

    def start_span(
        self,
        name: str,
        *,
        parent: Span | None = None,
        kind: str = "INTERNAL",
        attributes: dict[str, Any] | None = None,
    ) -> Span:
        """Open a span (and report a node of the flow starting)."""
        span = self.inner.start_span(name, parent=parent, kind=kind, attributes=attributes)
        attrs = attributes or {}
        parent_id = parent.span_id if parent else ""
        owner = self._within.get(parent_id)
        if owner is None and RUN_ATTR in attrs:  # a run under one of our nodes: its sub-flow's
            owner = self._top.get(parent_id)
        if owner is not None:
            self._within[span.span_id] = owner
        if KIND_ATTR in attrs:
            self._nodes[span.span_id] = node = str(attrs.get(NODE_ATTR))
            if owner is None:
                self._top[span.span_id] = node
                self.on_node(node, "running")
            else:
                self.outer[node] = owner
        elif name == LOAD_SPAN:
            node = str(attrs.get("workbench.model.node", "?"))
            self.loading[span.span_id] = (node, str(attrs.get("workbench.model.spec", "?")))
            self._loads[span.span_id] = shown = owner or self._top.get(parent_id) or node
            self.on_node(shown, "running")
        elif self.calls is not None and attrs.get("gen_ai.operation.name") == "execute_tool":
            self.calls.started(span, self._nodes.get(parent_id, "?"))
        return span

    def add_event(self, span: Span, name: str, attributes: dict[str, Any] | None = None) -> None:
        """Attach an event."""
        self.inner.add_event(span, name, attributes)

    def end_span(self, span: Span, *, status: str = "OK", message: str | None = None) -> None:
        """Close a span (and report a node of the flow ending)."""
        self.inner.end_span(span, status=status, message=message)
        self._within.pop(span.span_id, None)
        node = self._nodes.pop(span.span_id, None)
        top = self._top.pop(span.span_id, None)
        self.loading.pop(span.span_id, None)
        loaded = self._loads.pop(span.span_id, None)
        if loaded is not None and status == "ERROR":
            self.on_node(loaded, "failed")
        elif top is not None:
            self.on_node(top, "failed" if status == "ERROR" else "done")
        elif node is None and self.calls is not None:
            operation = span.attributes.get("gen_ai.operation.name")
            if operation == "execute_tool":
                self.calls.ended(span)
            elif operation == "apply_guardrail":
                self.calls.rail_checked(span)

    def flush(self) -> None:
        """Flush the inner tracer."""
        self.inner.flush()


def input_widget(name: str, typ: Type) -> Any:
    """A widget for one flow input of type ``typ`` (JSON text for lists and records)."""
    label = f"{name} ({typ.describe()})"
    if isinstance(typ, Enum):
        return pn.widgets.Select(label=label, options=list(typ.values))
    if isinstance(typ, Bool):
        return pn.widgets.Checkbox(label=label)
    if isinstance(typ, Int):
        return pn.widgets.IntInput(label=label, value=0)
    if isinstance(typ, Float):
        return pn.widgets.FloatInput(label=label, value=0.0)
    if isinstance(typ, Str):
        return pn.widgets.TextAreaInput(label=label, value="", height=70, sizing_mode="stretch_width")
    return pn.widgets.TextAreaInput(
        label=label + " as JSON", value="", height=70, sizing_mode="stretch_width"
    )


def widget_value(widget: Any, typ: Type) -> Any:
    """The value of an ``input_widget`` (JSON parsed for lists and records)."""
    if isinstance(typ, Str | Enum | Bool | Int | Float):
        return widget.value
    return json.loads(widget.value or "null")


class LiveText:
    """The text each llm node is writing in this run, from the executor's ``on_token``."""

    def __init__(self) -> None:
        self.nodes: dict[str, tuple[str, int, list[str]]] = {}  # node -> (call label, call number, pieces)
        self.changed = False

    def heard(self, token: NodeToken) -> None:
        """One ``NodeToken`` (on the run's loop): a new model call restarts its node's text."""
        if token.start is not None or token.node not in self.nodes:
            calls = self.nodes.pop(token.node, ("", 0, []))[1] + 1  # re-added last: shown as the latest
            self.nodes[token.node] = (token.start or "answer", calls, [])
        if token.text:
            self.nodes[token.node][2].append(token.text)
        self.changed = True

    def text(self) -> str:
        """Each node's call and its text so far (the ``LIVE_TEXT_NODES`` latest nodes)."""
        shown = list(self.nodes.items())[-LIVE_TEXT_NODES:]
        blocks = []
        for node, (label, calls, pieces) in shown:
            head = f"{node} \u00b7 {label}" + (f" \u00b7 model call {calls}" if calls > 1 else "")
            blocks.append(f"{head}\n{''.join(pieces)}")
        hidden = len(self.nodes) - len(shown)
        more = f"\n\n({hidden} more nodes streamed; their answers are in the trace)" if hidden else ""
        return "live output:\n" + "\n\n".join(blocks) + more


class RunView(pn.viewable.Viewer):
    """Run the document's flow from a generated form and show outputs and rail verdicts.

    ``tracer``: a zero-argument callable giving the tracer of one run and whether to close
    it after (the server passes its own writer; by default ``workbench.traces.tracer_for``).
    ``on_node``: progress callback ``(node, state)``, or ``on_nodes`` taking a batch
    ``{node: state}`` at once (the canvas restyles once per batch); ``on_done``: called with
    the result.
    """

    def __init__(
        self,
        doc: FlowDocument,
        *,
        tracer: Callable[[], tuple[Tracer | None, bool]] | None = None,
        on_node: Callable[[str, str | None], None] | None = None,
        on_nodes: Callable[[dict[str, str | None]], None] | None = None,
        on_start: Callable[[], None] | None = None,
        on_done: Callable[[Any], None] | None = None,
        **params: Any,
    ) -> None:
        super().__init__(**params)
        self.doc = doc
        self._tracer = tracer or _default_tracer
        self.on_node = on_node or (lambda _n, _s: None)
        self.on_nodes = on_nodes or self._each_node
        self._marks: dict[str, str | None] = {}  # progress not yet sent to the page
        self._states: dict[str, str] = {}  # each node's state in this run, for the count
        self.progress = text_pane(css_classes=["wb-run-progress"])
        self.calls = ToolCalls()
        self.calls_pane = text_pane(
            pre=True, sizing_mode="stretch_width", css_classes=["wb-run-calls"], visible=False
        )
        self.live = LiveText()
        self.live_pane = text_pane(
            pre=True, sizing_mode="stretch_width", css_classes=["wb-run-live"], visible=False
        )
        self.approvals = PendingApprovals(on_wait=self._waiting)
        self.on_start = on_start or (lambda: None)
        self.on_done = on_done or (lambda _r: None)
        self.form = pn.Column(sizing_mode="stretch_width", css_classes=["wb-run-form"])
        self.widgets: dict[str, Any] = {}
        self._form_shape: list[tuple[str, str]] | None = None
        self.run_button = pn.widgets.Button(
            label="Run", color="success", width=90, css_classes=["wb-run-button"]
        )
        self.cancel_button = pn.widgets.Button(label="Cancel", color="danger", width=90, disabled=True)
        self.status = text_pane(css_classes=["wb-run-status"])
        self.outputs = text_pane(pre=True, sizing_mode="stretch_width", css_classes=["wb-run-outputs"])
        self.verdicts = text_pane(pre=True, sizing_mode="stretch_width", css_classes=["wb-run-rails"])
        self.run_button.on_click(self._run)
        self.cancel_button.on_click(lambda _e: self.cancel())
        self.breakpoints = pn.widgets.MultiChoice(
            label="break before", options=[], sizing_mode="stretch_width", css_classes=["wb-breakpoints"]
        )
        self.step_button = pn.widgets.Button(label="Step", width=80, disabled=True, css_classes=["wb-step"])
        self.continue_button = pn.widgets.Button(
            label="Continue", width=90, disabled=True, css_classes=["wb-continue"]
        )
        self.step_button.on_click(lambda _e: self.resume(step=True))
        self.continue_button.on_click(lambda _e: self.resume(step=False))
        self.paused = text_pane(pre=True, sizing_mode="stretch_width", css_classes=["wb-paused"])
        self._resume: asyncio.Event | None = None
        self._stepping = False
        self._task: asyncio.Future[Any] | None = None
        self._progress: ProgressTracer | None = None  # the tracer of the run going on (or last)
        self.last_result: Any = None
        self.rebuild_form()

    def rebuild_form(self, *_: Any) -> None:
        """Regenerate the form from the flow's inputs (after edits that changed them)."""
        nodes = list(self.doc.flow.nodes)
        if nodes != self.breakpoints.options:
            self.breakpoints.options = nodes
            self.breakpoints.value = [n for n in self.breakpoints.value if n in nodes]
        shape = [(n, t.describe()) for n, t in self.doc.flow.inputs.items()]
        if shape == self._form_shape:
            return  # most edits leave the inputs alone: keep the widgets and what was typed
        self._form_shape = shape
        old = {k: w.value for k, w in self.widgets.items()}
        self.widgets = {name: input_widget(name, typ) for name, typ in self.doc.flow.inputs.items()}
        for name, widget in self.widgets.items():
            if name in old:
                with contextlib.suppress(ValueError):  # the type changed: keep the new default
                    widget.value = old[name]
        self.form[:] = list(self.widgets.values())

    async def _before_node(self, name: str, inputs: dict[str, Any]) -> None:
        """The executor's hook: pause here when ``name`` is a breakpoint or we are stepping."""
        if not self._stepping and name not in self.breakpoints.value:
            return
        self._resume = asyncio.Event()
        self._mark(name, "paused")
        self.flush()
        text = json.dumps(inputs, indent=2, ensure_ascii=False, default=str)
        message(self.paused, f"paused before {name}; its inputs:\n{text}", "info")
        self.step_button.disabled = self.continue_button.disabled = False
        try:
            await self._resume.wait()
        finally:
            self._resume = None
            self.step_button.disabled = self.continue_button.disabled = True
            message(self.paused, "")
            self._mark(name, None)
            self.flush()

    def _mark(self, node: str, state: str | None) -> None:
        """Progress of one node, sent with the next batch."""
        self._marks[node] = state
        if state is not None:
            self._states[node] = state

    def _each_node(self, marks: dict[str, str | None]) -> None:
        for node, state in marks.items():
            self.on_node(node, state)

    def _waiting(self, node: str, call_id: str, waits: bool) -> None:
        """A tool call of ``node`` starts or stops waiting for approval: the node glows purple
        (the sub-flow node on the canvas, for an agent inside a sub-flow)."""
        self.calls.waiting(node, call_id, waits)
        shown = (
            node if node in self.doc.flow.nodes or self._progress is None else self._progress.outer.get(node)
        )
        if shown is not None:
            self._mark(shown, "paused" if waits else "running")
        self.flush()

    def flush(self, *, canvas: bool = True) -> None:
        """Send the progress gathered since the last batch to the page (node marks, tool calls);
        ``canvas=False`` keeps the node marks for later and only updates the count."""
        if self._marks and (canvas or len(self.doc.flow.nodes) <= LIVE_LIMIT):
            marks, self._marks = self._marks, {}
            self.on_nodes(marks)
        lines = []
        loading = self._progress.loading.values() if self._progress is not None else ()
        if loading:  # the first run of a local model: seconds before its node's span opens
            lines.append("loading " + ", ".join(f"model {spec} for {node}" for node, spec in loading) + "...")
        if self._states:
            counts: dict[str, int] = {}
            for state in self._states.values():
                counts[state] = counts.get(state, 0) + 1
            shown = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
            lines.append(f"nodes: {shown} (of {len(self.doc.flow.nodes)})")
        if lines:
            message(self.progress, " \u00b7 ".join(lines))
        if self.live.changed:
            self.live.changed = False
            message(self.live_pane, self.live.text())
            self.live_pane.visible = True
        if self.calls.changed:
            self.calls.changed = False
            message(self.calls_pane, "tool calls:\n" + self.calls.text())
            self.calls_pane.visible = True

    async def _flush_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            self.flush(canvas=False)

    def resume(self, *, step: bool = False) -> None:
        """Go on from a breakpoint: ``step`` pauses again before the next node."""
        self._stepping = step
        if self._resume is not None:
            self._resume.set()

    def cancel(self) -> None:
        """Cancel the running run (its spans end as cancelled)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def _session_destroyed(self, _session_context: Any) -> None:
        """The page of this view is gone (its tab closed): a run waiting on it would wait forever."""
        self.cancel()

    async def _run(self, _event: Any = None) -> None:
        from workbench.runtime import Executor

        try:
            values = {n: widget_value(w, self.doc.flow.inputs[n]) for n, w in self.widgets.items()}
        except ValueError as exc:
            message(self.status, f"bad input: {exc}", "error")
            return
        try:
            every = flush_seconds()
        except UsageError as exc:
            message(self.status, f"cannot run: {exc}", "error")
            return
        inner, close = self._tracer()
        self.calls = ToolCalls()
        self.live = LiveText()
        self._marks, self._states = {}, {}
        message(self.progress, "")
        self._progress = tracer = ProgressTracer(inner, self._mark, self.calls)
        self.on_start()
        self.run_button.disabled, self.cancel_button.disabled = True, False
        doc = pn.state.curdoc
        if doc is not None and doc.session_context is not None:
            doc.on_session_destroyed(self._session_destroyed)  # a set: once per view however many runs
        message(self.status, "running...", "info")
        for pane in (self.outputs, self.verdicts, self.calls_pane, self.live_pane):
            message(pane, "")
        self.calls_pane.visible = False  # a flow without agents keeps no empty space for calls
        self.live_pane.visible = False  # nor one without llm nodes for their text
        self._stepping = False
        hook = self._before_node if self.breakpoints.value else None
        flusher = asyncio.ensure_future(self._flush_every(every))
        try:
            executor = Executor(
                self.doc.flow.copy(),
                tracer=tracer,
                before_node=hook,
                approve=self.approvals.ask,
                on_token=self.live.heard,
            )
            self._task = asyncio.ensure_future(executor.arun(values))
            result = await self._task
        except asyncio.CancelledError:
            # The executor ends the spans of the nodes it stops as errors; they were cancelled.
            for node, state in list(self._states.items()):
                if state in ("running", "paused", "failed"):
                    self._mark(node, "cancelled")
            message(self.status, "cancelled", "muted")
            return
        except WorkbenchError as exc:
            message(self.status, f"cannot run: {exc}", "error")
            return
        finally:
            flusher.cancel()
            self.flush()
            self.run_button.disabled, self.cancel_button.disabled = False, True
            closer = getattr(inner, "close", None) if close else None
            if closer is not None:
                closer()  # a tracer the run view opened for this run alone
            elif inner is not None:
                inner.flush()
        self.last_result = result
        self.show_result(result)
        self.on_done(result)

    def show_result(self, result: Any) -> None:
        """Show a ``RunResult``: status, outputs, each rail verdict.

        A run whose agents had tool calls denied by a person, refused by rails or failed
        still ends ``ok`` (the agent answered), but not in green: the status line counts
        those calls, and the outputs say they came after them.
        """
        ms = result.seconds * 1000
        text = f"run {result.run_id[:12]}: {result.status} in {ms:.1f} ms"
        skipped = self.calls.summary()
        style = "error" if result.status != "ok" else "warn" if skipped else "ok"
        message(
            self.status,
            text + (f" \u2014 {skipped}" if skipped else "") + (f" - {result.error}" if result.error else ""),
            style,
        )
        head = f"outputs (given after {skipped}; see the tool calls):" if skipped else "outputs:"
        shown = json.dumps(result.outputs, indent=2, ensure_ascii=False, default=str)
        message(self.outputs, f"{head}\n{shown}")
        lines = [f"{r.verdict:>5}  {r.name} on {r.port} ({r.enforce}, {r.us:.0f} us)" for r in result.rails]
        message(self.verdicts, "rail checks:\n" + ("\n".join(lines) or "(none)"))

    def __panel__(self) -> Any:
        return pn.Column(
            pn.pane.HTML("<b>Run</b>"),
            self.form,
            self.breakpoints,
            pn.Row(self.run_button, self.cancel_button, self.step_button, self.continue_button),
            self.paused,
            self.approvals,
            self.status,
            self.progress,
            self.live_pane,
            self.calls_pane,
            self.outputs,
            self.verdicts,
            sizing_mode="stretch_width",
        )


def _default_tracer() -> tuple[Tracer | None, bool]:
    from workbench.traces import tracer_for

    return tracer_for(), True
