"""The rails panel: every rail's status from ``check_report``, and live editing of rail text.

Statuses: proved, enforced (with a counterexample), conflict (with the conflicting
rails), vacuous, unsupported (with the reason). Typing in the editor parses the text at
once and points at the column of a parse error; applying it (Enter) re-checks the flow.
Rails are added (a name, a port, the text, parsed as it is typed) and deleted here too.
*Explain* shows what ``workbench check --explain RAIL`` prints for the chosen rail.

In a served page the Z3 check runs on a worker thread (``refresh_soon``), so an edit on
the canvas answers at once: the panel says "checking…" and shows the statuses when the
check of the newest edit is done; a check of an older edit that finishes later is dropped.
"""

from __future__ import annotations

import functools
import html
import json
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import panel as pn

from workbench.errors import WorkbenchError
from workbench.flow import Flow, PortRef, RailSpec
from workbench.flow.port_rails import flow_rails
from workbench.flow.verify import check_report, explain_rail

from .document import FlowDocument
from .text import message, text_html, text_pane

T = TypeVar("T")

__all__ = ["RailsPanel", "explain_text", "parse_problem", "status_lines"]

# How unsettled a verdict is, for the one ring a port gets on the canvas.
MARK_RANK = {"proved": 0, "vacuous": 1, "enforced": 2, "unsupported": 2, "conflict": 3}

STATUS_STYLE = {"proved": "ok", "conflict": "error", "enforced": "info"}
EXPLAIN_CSS = (
    "white-space:pre;overflow:auto;max-height:480px;margin:0;padding:4px 8px;"
    "font-family:monospace;color:#1f2937;border:1px solid #e2e8f0;border-radius:4px"
)

# One checker thread for the whole process: Z3 checks of all sessions queue here rather
# than compete for the two cores with the server's event loop.
_CHECKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wb-rails-check")


def parse_problem(doc: FlowDocument, name: str, text: str, on: str | None = None) -> str | None:
    """Why rail ``name`` with ``text`` does not parse at its port (with a caret), or None.

    ``on``: the port of a new rail (``node.port`` or a flow port); it wins over the port
    of a rail of that name.
    """
    rail = doc.flow.rails.get(name)
    if rail is None and on is None:
        return f"no rail '{name}'"
    if not text.strip():
        return "a rail needs an expression"
    flow = doc.flow.copy()
    try:
        if on is not None:
            spec = RailSpec(name, PortRef.parse(on), text)
        else:
            assert rail is not None
            spec = RailSpec(name, rail.on, text, rail.enforce, rail.max_attempts)
        if spec.on.node is not None and spec.on.node not in flow.nodes:
            return f"there is no node '{spec.on.node}'"
        flow.rails[name] = spec
        flow_rails(flow)
    except WorkbenchError as exc:
        column = getattr(exc, "column", None)
        if isinstance(column, int) and getattr(exc, "line", 1) == 1:
            return f"{exc}\n  {text}\n  {' ' * (column - 1)}^"
        return str(exc)
    return None


def status_lines(rail: dict[str, Any]) -> str:
    """One rail of ``check_report`` as plain text lines (a counterexample: one value a line)."""
    lines = [f"{rail['status']}  {rail['name']} on {rail['port']}"]
    if rail.get("counterexample"):
        lines.append("  counterexample:")
        lines += [f"    {line}" for line in _flat_values(rail["counterexample"])]
    if rail.get("conflict_with"):
        lines.append(f"  conflicts with: {', '.join(rail['conflict_with'])}")
    if rail.get("reason"):
        lines.append(f"  {rail['reason']}")
    return "\n".join(lines)


def _flat_values(value: Any, path: str = "") -> list[str]:
    """``path = value`` lines, records opened up into dotted paths (short lines for a narrow panel)."""
    if isinstance(value, dict) and value:
        return [
            line
            for key, v in value.items()
            for line in _flat_values(v, f"{path}.{key}" if path else str(key))
        ]
    return [f"{path} = {json.dumps(value, default=str)}"]


def _indented_html(text: str, style: str) -> str:
    """``text_html`` of ``text`` where a line too long for the panel wraps under its own indent."""
    rows = []
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        # A hanging indent: the line starts at its indent, what wraps goes two columns further.
        rows.append(
            f'<div style="padding-left:{indent + 2}ch;text-indent:-2ch">{html.escape(line.lstrip(" "))}</div>'
        )
    return text_html("\0", style, pre=True).replace("\0", "".join(rows))  # the styled box, lines inside


def explain_text(flow: Flow, name: str) -> str:
    """What ``workbench check --explain NAME`` prints for rail ``name`` of ``flow`` (or why not)."""
    try:
        return explain_rail(flow, name)
    except WorkbenchError as exc:
        return f"cannot explain rail {name}: {exc}"


class RailsPanel(pn.viewable.Viewer):
    """Rails of a ``FlowDocument`` with their statuses; ``on_marks`` gets ``{port: status}``."""

    def __init__(
        self, doc: FlowDocument, *, on_marks: Callable[[dict[str, str]], None] | None = None, **params: Any
    ) -> None:
        super().__init__(**params)
        self.doc = doc
        self.on_marks = on_marks
        self.report: dict[str, Any] = {"errors": [], "rails": [], "notes": []}
        self.statuses = pn.pane.HTML(sizing_mode="stretch_width", css_classes=["wb-rail-statuses"])
        # Each control gets the panel's width (or a row of it): the side panel is narrow.
        self.choice = pn.widgets.Select(
            label="rail", options=[], sizing_mode="stretch_width", css_classes=["wb-rail-choice"]
        )
        self.editor = pn.widgets.TextInput(
            label="rail text (Enter applies)", sizing_mode="stretch_width", css_classes=["wb-rail-editor"]
        )
        self.feedback = text_pane(pre=True, sizing_mode="stretch_width", css_classes=["wb-rail-feedback"])
        self.delete_button = pn.widgets.Button(
            label="Delete rail", width=100, color="warning", align="end", css_classes=["wb-rail-delete"]
        )
        self.explain_button = pn.widgets.Button(
            label="Explain", width=80, align="end", css_classes=["wb-rail-explain"]
        )
        self.explained = pn.pane.HTML(sizing_mode="stretch_width", css_classes=["wb-rail-explained"])
        self.new_name = pn.widgets.TextInput(
            label="new rail", sizing_mode="stretch_width", css_classes=["wb-rail-new-name"]
        )
        self.new_port = pn.widgets.Select(
            label="on port", options=[], sizing_mode="stretch_width", css_classes=["wb-rail-new-port"]
        )
        self.new_text = pn.widgets.TextInput(
            label="rail text", sizing_mode="stretch_width", css_classes=["wb-rail-new-text"]
        )
        self.add_button = pn.widgets.Button(
            label="Add rail", width=90, align="end", css_classes=["wb-rail-add"]
        )
        self.new_feedback = text_pane(
            pre=True, sizing_mode="stretch_width", css_classes=["wb-rail-new-feedback"]
        )
        self.delete_button.on_click(self._on_delete)
        self.explain_button.on_click(lambda _e: self.explain_soon())
        self.add_button.on_click(self._on_add)
        self.new_text.param.watch(self._live_new, "value_input")
        self.new_port.param.watch(self._live_new, "value")
        self.checking = text_pane(css_classes=["wb-rail-checking"])
        self.choice.param.watch(self._choose, "value")
        self.editor.param.watch(self._live, "value_input")
        self.editor.param.watch(self._apply, "value")
        # Bumped by every check asked for; only the newest is shown. Read and written on the
        # server's event loop only (the checker thread never touches it).
        self._generation = 0
        self._explaining = 0  # the same for Explain
        # The first check runs here: a result delivered before the page is served would
        # restyle the canvas too early, and Panel would then link its theme to a CDN.
        self.refresh()

    def refresh(self, *_: Any) -> None:
        """Re-check the flow now (in this thread) and redraw the statuses."""
        self._generation += 1
        self._show(check_report(self.doc.flow))

    def refresh_soon(self, *_: Any) -> None:
        """Re-check the flow on the checker thread and show the result when it is the newest.

        Outside a served page (a notebook cell, a test) there is no document to hand the
        result back to, so the check runs here and now, like ``refresh``.
        """
        doc = pn.state.curdoc
        if doc is None or doc.session_context is None:
            self.refresh()
            return
        self._generation += 1
        generation = self._generation
        message(self.checking, "checking…", "info")
        flow = self.doc.flow.copy()  # later edits must not change what is being checked

        _off_loop(
            doc,
            functools.partial(check_report, flow),
            lambda exc: {"errors": [f"the rails check failed: {exc}"], "rails": [], "notes": []},
            functools.partial(self._deliver, generation),
        )

    def _deliver(self, generation: int, report: dict[str, Any]) -> None:
        """Show ``report`` if it checks the newest edit (latest edit wins); else drop it."""
        if generation == self._generation:
            self._show(report)

    def _show(self, report: dict[str, Any]) -> None:
        message(self.checking, "")
        self.report = report
        # One HTML pane whose text changes: no new models for every check.
        blocks: list[str] = []
        for error in self.report["errors"]:
            blocks.append(text_html(f"error: {error}", "error", pre=True))
        for rail in self.report["rails"]:
            style = STATUS_STYLE.get(rail["status"], "plain")
            blocks.append(
                f'<div class="wb-rail-{html.escape(rail["name"])}">'
                f"{_indented_html(status_lines(rail), style)}</div>"
            )
        for note in self.report["notes"]:
            blocks.append(text_html(f"note: {note}", "plain", pre=True))
        if not blocks:
            blocks.append(text_html("this flow has no rails", "plain"))
        self.statuses.object = '<div style="display:grid;gap:6px">' + "".join(blocks) + "</div>"
        self._sync_choices()
        if self.on_marks is not None:
            marks: dict[str, str] = {}
            for rail in self.report["rails"]:
                # A port shows its least settled verdict: green only where every rail is proved.
                old = marks.get(rail["port"])
                if old is None or MARK_RANK.get(rail["status"], 2) > MARK_RANK.get(old, 2):
                    marks[rail["port"]] = rail["status"]
            self.on_marks(marks)

    def _sync_choices(self) -> None:
        """The rail and port lists as the document has them now."""
        names = list(self.doc.flow.rails)
        self.choice.options = names
        if names and self.choice.value not in names:
            self.choice.value = names[0]
        elif not names:
            self.editor.value = ""
        self.delete_button.disabled = not names
        ports = self.doc.rail_ports()
        if ports != self.new_port.options:
            self.new_port.options = ports
        if self.new_port.value not in ports:  # the browser shows the first one: so must we
            self.new_port.value = ports[0] if ports else None

    def explain(self, name: str | None = None) -> str:
        """Show (and return) what ``workbench check --explain`` prints for the chosen rail (or ``name``)."""
        name = self.choice.value if name is None else name
        text = explain_text(self.doc.flow, name) if name else "choose a rail to explain first"
        self._explaining += 1  # an explanation still on the checker thread is now stale
        self._explain_show(text)
        return text

    def explain_soon(self) -> None:
        """``explain`` on the checker thread in a served page (Z3 may take a moment); the last click wins."""
        doc = pn.state.curdoc
        name = self.choice.value
        if doc is None or doc.session_context is None or not name:
            self.explain()
            return
        self._explaining += 1
        asked = self._explaining
        self._explain_show(f"explaining {name}…")
        flow = self.doc.flow.copy()

        _off_loop(
            doc,
            functools.partial(explain_text, flow, name),
            lambda exc: f"cannot explain rail {name}: {exc}",
            functools.partial(self._explain_deliver, asked),
        )

    def _explain_deliver(self, asked: int, text: str) -> None:
        if asked == self._explaining:
            self._explain_show(text)

    def _explain_show(self, text: str) -> None:
        # The CLI's columns kept (Z3 lays SMT-LIB out by them): a long line scrolls, not wraps.
        self.explained.object = (
            f'<pre class="wb-text" style="{EXPLAIN_CSS}">{html.escape(text)}</pre>' if text else ""
        )

    def add_rail(self, name: str | None = None, on: str | None = None, text: str | None = None) -> bool:
        """Add the rail typed in the "new rail" fields (or the one given); False with the reason."""
        name = ((self.new_name.value or "") if name is None else name).strip()
        on = self.new_port.value if on is None else on
        text = self.new_text.value_input if text is None else text
        text = text or ""
        if not name.isidentifier():
            message(self.new_feedback, f"a rail needs a name that is an identifier, not {name!r}", "error")
            return False
        if name in self.doc.flow.rails:
            message(self.new_feedback, f"there is a rail '{name}' already: pick another name", "error")
            return False
        if not on:
            message(self.new_feedback, "pick the port the rail sits on", "error")
            return False
        problem = parse_problem(self.doc, name, text, on)
        if problem:
            message(self.new_feedback, problem, "error")
            return False
        self.doc.add_rail(name, on, text)
        message(self.new_feedback, f"added rail {name} on {on}", "ok")
        self.new_name.value, self.new_text.value = "", ""
        self._sync_choices()
        self.choice.value = name
        self.refresh_soon()
        return True

    def delete_rail(self, name: str | None = None) -> bool:
        """Delete the chosen rail (or ``name``)."""
        name = self.choice.value if name is None else name
        if not name or name not in self.doc.flow.rails:
            message(self.feedback, "choose a rail to delete first", "error")
            return False
        self.doc.remove_rail(name)
        self._sync_choices()  # choosing another rail clears the feedback: say it after
        message(self.feedback, f"deleted rail {name}", "ok")
        self.refresh_soon()
        return True

    def _on_add(self, _event: Any) -> None:
        self.add_rail()

    def _on_delete(self, _event: Any) -> None:
        self.delete_rail()

    def _live_new(self, _event: Any) -> None:
        name = (self.new_name.value or "").strip() or "new_rail"
        text = self.new_text.value_input or ""
        if not text.strip() or not self.new_port.value:
            message(self.new_feedback, "")
            return
        problem = parse_problem(self.doc, name, text, self.new_port.value)
        message(self.new_feedback, problem or "parses", "error" if problem else "ok")

    def _choose(self, event: Any) -> None:
        rail = self.doc.flow.rails.get(event.new or "")
        self.editor.value = (rail.check or "") if rail is not None else ""
        message(self.feedback, "")
        self.explained.object = ""  # it explained another rail

    def _live(self, event: Any) -> None:
        name = self.choice.value
        if not name:
            return
        problem = parse_problem(self.doc, name, event.new or "")
        message(self.feedback, problem or "parses", "error" if problem else "ok")

    def _apply(self, event: Any) -> None:
        name = self.choice.value
        rail = self.doc.flow.rails.get(name or "")
        if rail is None or event.new == (rail.check or ""):
            return
        problem = parse_problem(self.doc, name, event.new or "")
        if problem:
            message(self.feedback, problem, "error")
            return
        self.doc.set_rail(name, event.new)
        message(self.feedback, f"applied to rail {name}", "ok")
        self.refresh_soon()

    def __panel__(self) -> Any:
        return pn.Column(
            pn.Row(pn.pane.HTML("<b>Rails</b>"), self.checking),
            self.statuses,
            pn.Row(self.choice, self.explain_button, self.delete_button, sizing_mode="stretch_width"),
            self.editor,
            self.feedback,
            self.explained,
            pn.Row(self.new_name, self.new_port, sizing_mode="stretch_width"),
            pn.Row(self.new_text, self.add_button, sizing_mode="stretch_width"),
            self.new_feedback,
            sizing_mode="stretch_width",
        )


def _off_loop(
    doc: Any, work: Callable[[], T], failed: Callable[[Exception], T], deliver: Callable[[T], None]
) -> None:
    """Run ``work`` on the checker thread, then hand its result to ``deliver`` on ``doc``'s next
    tick (Bokeh runs those on the server loop with the document locked). A crash gives
    ``failed(exc)`` instead, so a panel never stays at "checking…" for ever."""

    def done(future: Future[T]) -> None:
        try:
            result = future.result()
        except Exception as exc:
            result = failed(exc)
        doc.add_next_tick_callback(functools.partial(deliver, result))

    _CHECKER.submit(work).add_done_callback(done)
