"""The rails panel: every rail's status from ``check_report``, and live editing of rail text.

Statuses: proved, enforced (with a counterexample), conflict (with the conflicting
rails), vacuous, unsupported (with the reason). Typing in the editor parses the text at
once and points at the column of a parse error; applying it (Enter) re-checks the flow.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import panel as pn

from workbench.errors import WorkbenchError
from workbench.flow.port_rails import flow_rails
from workbench.flow.verify import check_report

from .document import FlowDocument
from .text import message, text_pane

__all__ = ["RailsPanel", "parse_problem", "status_lines"]

STATUS_STYLE = {"proved": "ok", "conflict": "error", "enforced": "info"}


def parse_problem(doc: FlowDocument, name: str, text: str) -> str | None:
    """Why rail ``name`` with ``text`` does not parse at its port (with a caret), or None."""
    rail = doc.flow.rails.get(name)
    if rail is None:
        return f"no rail '{name}'"
    if not text.strip():
        return "a rail needs an expression"
    flow = doc.flow.copy()
    try:
        from workbench.flow import RailSpec

        flow.rails[name] = RailSpec(name, rail.on, text, rail.enforce, rail.max_attempts)
        flow_rails(flow)
    except WorkbenchError as exc:
        column = getattr(exc, "column", None)
        if isinstance(column, int) and getattr(exc, "line", 1) == 1:
            return f"{exc}\n  {text}\n  {' ' * (column - 1)}^"
        return str(exc)
    return None


def status_lines(rail: dict[str, Any]) -> str:
    """One rail of ``check_report`` as plain text lines."""
    lines = [f"{rail['status']:>11}  {rail['name']} on {rail['port']}"]
    if rail.get("counterexample"):
        lines.append(f"             counterexample: {json.dumps(rail['counterexample'], default=str)}")
    if rail.get("conflict_with"):
        lines.append(f"             conflicts with: {', '.join(rail['conflict_with'])}")
    if rail.get("reason"):
        lines.append(f"             {rail['reason']}")
    return "\n".join(lines)


class RailsPanel(pn.viewable.Viewer):
    """Rails of a ``FlowDocument`` with their statuses; ``on_marks`` gets ``{port: status}``."""

    def __init__(
        self, doc: FlowDocument, *, on_marks: Callable[[dict[str, str]], None] | None = None, **params: Any
    ) -> None:
        super().__init__(**params)
        self.doc = doc
        self.on_marks = on_marks
        self.report: dict[str, Any] = {"errors": [], "rails": [], "notes": []}
        self.statuses = pn.Column(sizing_mode="stretch_width", css_classes=["wb-rail-statuses"])
        self.choice = pn.widgets.Select(label="rail", options=[], width=160, css_classes=["wb-rail-choice"])
        self.editor = pn.widgets.TextInput(
            label="rail text (Enter applies)", sizing_mode="stretch_width", css_classes=["wb-rail-editor"]
        )
        self.feedback = text_pane(pre=True, sizing_mode="stretch_width", css_classes=["wb-rail-feedback"])
        self.choice.param.watch(self._choose, "value")
        self.editor.param.watch(self._live, "value_input")
        self.editor.param.watch(self._apply, "value")
        self.refresh()

    def refresh(self, *_: Any) -> None:
        """Re-check the flow and redraw the statuses."""
        self.report = check_report(self.doc.flow)
        blocks: list[Any] = []
        for error in self.report["errors"]:
            blocks.append(text_pane(f"error: {error}", style="error", pre=True))
        for rail in self.report["rails"]:
            style = STATUS_STYLE.get(rail["status"], "plain")
            blocks.append(
                text_pane(status_lines(rail), style=style, pre=True, css_classes=[f"wb-rail-{rail['name']}"])
            )
        for note in self.report["notes"]:
            blocks.append(text_pane(f"note: {note}", pre=True))
        if not blocks:
            blocks.append(text_pane("this flow has no rails"))
        self.statuses[:] = blocks
        names = list(self.doc.flow.rails)
        self.choice.options = names
        if names and self.choice.value not in names:
            self.choice.value = names[0]
        elif not names:
            self.editor.value = ""
        if self.on_marks is not None:
            marks: dict[str, str] = {}
            for rail in self.report["rails"]:
                # A conflict wins over other verdicts on the same port.
                if marks.get(rail["port"]) != "conflict":
                    marks[rail["port"]] = rail["status"]
            self.on_marks(marks)

    def _choose(self, event: Any) -> None:
        rail = self.doc.flow.rails.get(event.new or "")
        self.editor.value = (rail.check or "") if rail is not None else ""
        message(self.feedback, "")

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
        self.refresh()

    def __panel__(self) -> Any:
        return pn.Column(
            pn.pane.HTML("<b>Rails</b>"),
            self.statuses,
            pn.Row(self.choice, self.editor, sizing_mode="stretch_width"),
            self.feedback,
            sizing_mode="stretch_width",
        )
