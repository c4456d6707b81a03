"""The token view: one model call's tokens, and what the decode rails did to each of them.

Per generated token (the trace store's ``decode_steps``): its text with whitespace made
visible, how many tokens the answer's grammar allowed and how many the rails left (with the
share of the vocabulary), which rails narrowed it, the first tokens they removed, and the
chosen token's probability under the model before any mask (a rail that overruled the model
shows as a very low one). Drawn as a strip of tokens coloured by how much the rails cut, a
chart of the allowed counts step by step and a table of the steps.

``TokenView(store, span_id)`` works alone in a notebook; the traces view hosts one.
``token_steps`` gives the steps as a DataFrame for analysis; the view itself works on plain
``TokenStep`` records (simple, and quick for the type checker).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource, HoverTool, NumeralTickFormatter, Range1d
from bokeh.plotting import figure

from workbench.errors import WorkbenchError
from workbench.traces import TraceStore

from .text import message, plural, text_pane

__all__ = ["TokenStep", "TokenView", "decoded_spans", "read_steps", "token_steps", "token_strip", "visible"]

LOW_P = 0.01  # a chosen token below this probability: the model wanted another one
TABLE_COLUMNS = ["step", "token", "p", "grammar", "allowed", "share", "rails", "removed"]
_WHITESPACE = {" ": "·", "\t": "→", "\n": "↵", "\r": "␍"}
_STRIP_CSS = """<style>
.wb-strip{font:13px/1.9 ui-monospace,SFMono-Regular,Menlo,monospace;white-space:pre-wrap;
  max-height:240px;overflow:auto;padding:6px 8px;border:1px solid #e2e8f0;border-radius:4px}
.wb-strip span.t{padding:1px 0;border-right:1px solid #cbd5e1}
.wb-strip .g{color:#94a3b8}
.wb-strip .c1{background:#fef3c7}.wb-strip .c2{background:#fdba74}.wb-strip .c3{background:#f87171;color:#fff}
.wb-strip .low{text-decoration:underline wavy #b91c1c;text-underline-offset:3px}
.wb-strip .ws{opacity:.45}
.wb-legend{font-size:12px;color:#475569}
.wb-legend span{padding:1px 6px;border-radius:3px;margin-right:6px}
</style>"""
CHART_KEY = (
    '<div class="wb-legend" style="font-size:12px;color:#475569">allowed tokens at each step '
    "(log scale; hover a bar for its token): "
    '<span style="color:#cbd5e1">■</span> by the grammar '
    '<span style="color:#2563eb">■</span> allowed, no rail cut '
    '<span style="color:#ea580c">■</span> left by the rails</div>'
)
_LEGEND = (
    '<div class="wb-legend">'
    '<span class="c1" style="background:#fef3c7">rails cut &lt; half</span>'
    '<span class="c2" style="background:#fdba74">rails cut half or more</span>'
    '<span class="c3" style="background:#f87171;color:#fff">rails left one token</span>'
    '<span style="color:#94a3b8">grammar left one token</span>'
    '<span style="text-decoration:underline wavy #b91c1c">chosen with p &lt; 1%</span>'
    "· is a space, ↵ a line break, → a tab</div>"
)


def visible(text: str) -> str:
    """``text`` with its whitespace drawn (``·`` space, ``↵`` line break, ``→`` tab); ``∅`` if empty."""
    return "".join(_WHITESPACE.get(c, c) for c in text) if text else "∅"


def _removed_list(raw: object) -> list[str]:
    if raw is None:
        return []
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return [str(raw)]
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True, slots=True)
class TokenStep:
    """One generated token (a row of ``decode_steps``) and what the rails did to it."""

    step: int
    token: str
    token_id: int | None
    logprob: float | None
    allowed: int | None  # tokens left after the rails (None: not recorded)
    schema_allowed: int | None  # tokens the answer's grammar allowed
    rails: str  # the rails that narrowed this step, comma-separated ("" for none)
    removed: list[str]  # the first tokens the rails removed
    p: float | None  # the chosen token's probability before any mask
    cut: int  # tokens the rails removed (0 when either count is missing)
    share: float | None  # allowed over the vocabulary size (None when that is not recorded)

    @property
    def grammar(self) -> int | None:
        """What the grammar allowed (what was allowed, when the grammar's count is missing)."""
        return self.allowed if self.schema_allowed is None else self.schema_allowed


STEP_COLUMNS = [f.name for f in fields(TokenStep)]


def vocab_size(store: TraceStore, span_id: str) -> int | None:
    """The model's vocabulary size recorded on span ``span_id`` (None when not recorded)."""
    rows = store.arrow(
        "SELECT attributes->>'$.\"workbench.decode.vocab_size\"' AS v FROM spans WHERE span_id = ? LIMIT 1",
        [span_id],
    ).to_pylist()
    try:
        return _int_or_none(rows[0]["v"]) if rows else None
    except ValueError:
        return None


def read_steps(store: TraceStore, span_id: str, vocab: int | None = None) -> list[TokenStep]:
    """The decode steps of span ``span_id`` in order, one ``TokenStep`` a token (``vocab``: the
    model's vocabulary size when the caller has it; read from the span otherwise)."""
    rows = store.arrow(
        "SELECT step, token, token_id, logprob, allowed, schema_allowed, rails, removed "
        "FROM decode_steps WHERE span_id = ? ORDER BY step",
        [span_id],
    ).to_pylist()
    if vocab is None:
        vocab = vocab_size(store, span_id)
    steps = []
    for row in rows:
        logprob = None if row["logprob"] is None else float(row["logprob"])
        allowed, schema = _int_or_none(row["allowed"]), _int_or_none(row["schema_allowed"])
        steps.append(
            TokenStep(
                step=int(row["step"]),
                token=str(row["token"] or ""),
                token_id=_int_or_none(row["token_id"]),
                logprob=logprob,
                allowed=allowed,
                schema_allowed=schema,
                rails=str(row["rails"] or ""),
                removed=_removed_list(row["removed"]),
                p=None if logprob is None else math.exp(logprob),
                cut=max(0, schema - allowed) if allowed is not None and schema is not None else 0,
                share=allowed / vocab if vocab and allowed is not None else None,
            )
        )
    return steps


def steps_frame(steps: Sequence[TokenStep]) -> pd.DataFrame:
    """``steps`` as a DataFrame, one column a ``TokenStep`` field (missing numbers are NaN)."""
    return pd.DataFrame({c: [getattr(s, c) for s in steps] for c in STEP_COLUMNS}, columns=STEP_COLUMNS)


def token_steps(store: TraceStore, span_id: str) -> pd.DataFrame:
    """The decode steps of span ``span_id`` in order, one row a token.

    Columns: ``step, token, token_id, logprob, allowed, schema_allowed, rails, removed`` (a
    list of texts) as stored, and ``p`` (the chosen token's probability, before masks),
    ``cut`` (tokens the rails removed), ``share`` (allowed over the vocabulary size, NaN
    when it was not recorded).
    """
    return steps_frame(read_steps(store, span_id))


_DECODED_SPANS = (
    "SELECT s.span_id, s.node, s.name, count(*) AS tokens, "
    "count(*) FILTER (WHERE d.allowed < d.schema_allowed) AS narrowed "
    "FROM decode_steps d JOIN spans s ON s.trace_id = d.trace_id AND s.span_id = d.span_id "
    "JOIN runs r ON r.trace_id = s.trace_id WHERE r.run_id = ? "
    "GROUP BY s.span_id, s.node, s.name ORDER BY min(s.start_ns), s.span_id"
)


def decoded_spans(store: TraceStore, run_id: str) -> pd.DataFrame:
    """``span_id, node, name, tokens, narrowed`` of the model calls of ``run_id`` that recorded
    decode steps, in the order they started (``narrowed``: steps the rails cut)."""
    return store.query(_DECODED_SPANS, [store.resolve_run(run_id)])


def _token_html(text: str) -> str:
    """One token's text escaped, whitespace drawn faintly (a line break still breaks the line)."""
    if not text:
        return '<span class="ws">∅</span>'
    out = []
    for c in text:
        if c in _WHITESPACE:
            out.append(f'<span class="ws">{_WHITESPACE[c]}</span>' + ("\n" if c == "\n" else ""))
        else:
            out.append(html.escape(c))
    return "".join(out)


def _tip(s: TokenStep) -> str:
    parts = [f"step {s.step}", repr(s.token)]
    if s.p is not None:
        parts.append(f"p {s.p:.3g}")
    if s.allowed is not None:
        before = "" if s.schema_allowed is None else f"grammar {s.schema_allowed} → "
        parts.append(f"{before}allowed {s.allowed}")
    if s.rails:
        parts.append(f"narrowed by {s.rails}")
    if s.removed:
        parts.append(
            "removed " + " ".join(visible(t) for t in s.removed) + (" …" if s.cut > len(s.removed) else "")
        )
    return html.escape(" · ".join(parts), quote=True)


def token_strip(steps: Sequence[TokenStep]) -> str:
    """The tokens as HTML, coloured by how much the rails cut (hover a token for its numbers)."""
    spans = []
    for s in steps:
        classes = ["t"]
        if s.cut:
            frac = s.cut / max(1, s.cut + (s.allowed or 0))
            classes.append("c3" if s.allowed == 1 else "c2" if frac >= 0.5 else "c1")
        elif s.allowed == 1:
            classes.append("g")
        if s.p is not None and s.p < LOW_P:
            classes.append("low")
        spans.append(f'<span class="{" ".join(classes)}" title="{_tip(s)}">{_token_html(s.token)}</span>')
    return _STRIP_CSS + _LEGEND + f'<div class="wb-strip">{"".join(spans)}</div>'


def _p_text(p: float | None, missing: str) -> str:
    return missing if p is None else f"{p:.3g}"  # 3e-06 stays readable


def steps_figure(steps: Sequence[TokenStep]) -> Any:
    """Allowed tokens per step (log scale): what the grammar allowed, and what the rails left
    (the colours are explained by ``CHART_KEY``)."""
    data: dict[str, list[Any]] = {
        "step": [s.step for s in steps],
        "token": [visible(s.token) for s in steps],
        "grammar": [float(1 if s.grammar is None else s.grammar) for s in steps],
        "allowed": [float(1 if s.allowed is None else s.allowed) for s in steps],
        "rails": [s.rails or "-" for s in steps],
        "p": [_p_text(s.p, "-") for s in steps],
    }
    source = ColumnDataSource(data=data)
    narrowed = ColumnDataSource(
        data={k: [v for v, s in zip(col, steps) if s.cut > 0] for k, col in data.items()}
    )
    top = float(max((s.grammar for s in steps if s.grammar is not None), default=1))
    fig = figure(
        height=220,
        sizing_mode="stretch_width",
        y_axis_type="log",
        # up to the next power of ten: log ticks a decade apart, never crowded at the top
        y_range=Range1d(start=0.8, end=10 ** math.ceil(math.log10(max(top, 1.0) * 1.05))),
        x_range=Range1d(start=-1, end=max(len(steps), 1)),
        x_axis_label="step (token)",
        y_axis_label="allowed tokens",
        tools="xpan,xwheel_zoom,reset",
        toolbar_location="right",
    )
    column = fig.vbar(x="step", bottom=0.8, top="grammar", width=0.85, color="#cbd5e1", source=source)
    fig.vbar(x="step", bottom=0.8, top="allowed", width=0.5, color="#2563eb", source=source)
    fig.vbar(x="step", bottom=0.8, top="allowed", width=0.5, color="#ea580c", source=narrowed)
    fig.yaxis.formatter = NumeralTickFormatter(format="0,0")  # 1, 10, 100 rather than 10^0...
    fig.add_tools(
        HoverTool(
            renderers=[column],  # one tooltip a step, not one per bar drawn there
            tooltips=[
                ("step", "@step"),
                ("token", "@token"),
                ("grammar allowed", "@grammar"),
                ("after rails", "@allowed"),
                ("rails", "@rails"),
                ("p(chosen)", "@p"),
            ],
        )
    )
    return fig


def _table_frame(steps: Sequence[TokenStep]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "step": [s.step for s in steps],
            "token": [visible(s.token) for s in steps],
            "p": [_p_text(s.p, "") for s in steps],
            "grammar": [s.schema_allowed for s in steps],
            "allowed": [s.allowed for s in steps],
            "share": ["" if s.share is None else f"{round(s.share * 100, 2):g}%" for s in steps],
            "rails": [s.rails for s in steps],
            "removed": [" ".join(visible(t) for t in s.removed) for s in steps],
        },
        columns=TABLE_COLUMNS,
    )


def summary(steps: Sequence[TokenStep], vocab: int | None) -> str:
    """One line: tokens, how many steps each rail narrowed, the least likely chosen token."""
    if not steps:
        return "no decode steps recorded for this model call"
    narrowed = [s for s in steps if s.cut > 0]
    per_rail: dict[str, int] = {}
    for s in narrowed:
        for rail in filter(None, s.rails.split(",")):
            per_rail[rail] = per_rail.get(rail, 0) + 1
    parts = [plural(len(steps), "token")]
    if not narrowed:
        parts.append("no step narrowed by a rail")
    else:
        parts.append(
            f"the rails narrowed {plural(len(narrowed), 'step')} ("
            + ", ".join(f"{r}: {k}" for r, k in sorted(per_rail.items()))
            + f"), removing {plural(sum(s.cut for s in narrowed), 'token')}"
        )
    if vocab:
        parts.append(f"vocabulary {vocab:,}")
    chosen = [(s.p, s) for s in steps if s.p is not None]
    if chosen:
        p, low = min(chosen, key=lambda c: c[0])  # the first of equals, as argmin
        parts.append(f"least likely choice: {visible(low.token)!r} at step {low.step} (p {p:.2g})")
    return "; ".join(parts)


class TokenView(pn.viewable.Viewer):
    """The tokens of one model call and what the decode rails did to each.

    ``store``: a ``TraceStore`` or a zero-argument callable giving one. ``span_id`` shows that
    model call; ``run_id`` offers the run's model calls that recorded decode steps.
    ``rows`` holds the steps on show as ``TokenStep`` records, ``steps`` the same as a
    DataFrame (``token_steps``).
    """

    def __init__(
        self,
        store: TraceStore | Callable[[], TraceStore],
        span_id: str | None = None,
        *,
        run_id: str | None = None,
        **params: Any,
    ) -> None:
        super().__init__(**params)
        self._store: Callable[[], TraceStore] = store if callable(store) else (lambda: store)
        self.rows: list[TokenStep] = []
        self.steps = steps_frame([])
        self.picker = pn.widgets.Select(
            label="model call", options={}, width=420, css_classes=["wb-token-span"]
        )
        self.span_id: str | None = None  # the model call on show
        self.picker.param.watch(
            lambda e: self.show_span(e.new) if e.new and e.new != self.span_id else None, "value"
        )
        self.only_narrowed = pn.widgets.Checkbox(label="only steps the rails narrowed", value=False)
        self.only_narrowed.param.watch(lambda _e: self._fill_table(), "value")
        self.info = text_pane(sizing_mode="stretch_width", css_classes=["wb-token-info"])
        self.strip = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-token-strip"])
        self.chart = pn.pane.Bokeh(
            steps_figure([]),
            sizing_mode="stretch_width",
            css_classes=["wb-token-chart"],
        )
        self.key = pn.pane.HTML(CHART_KEY, sizing_mode="stretch_width")
        self.table = pn.widgets.Tabulator(
            _table_frame([]),
            disabled=True,
            show_index=False,
            pagination="local",
            page_size=15,
            sizing_mode="stretch_width",
            css_classes=["wb-token-table"],
        )
        self._draw("", None)  # nothing on show yet: no empty chart or table
        if run_id is not None:
            self.show_run(run_id)
        if span_id is not None:
            self.show_span(span_id)

    def show_run(self, run_id: str) -> list[dict[str, Any]]:
        """Offer the model calls of ``run_id`` that recorded decode steps and show the first;
        returns them (``span_id, node, name, tokens, narrowed`` each)."""
        try:
            store = self._store()
            calls = store.arrow(_DECODED_SPANS, [store.resolve_run(run_id)]).to_pylist()
        except WorkbenchError as exc:
            message(self.info, f"cannot read run {run_id}: {exc}", "error")
            return []
        options = {
            f"{c['node'] or '-'} · {c['name']} · {c['tokens']} tokens, {c['narrowed']} narrowed": str(
                c["span_id"]
            )
            for c in calls
        }
        self.picker.options = options  # may pick the first call already (the watcher draws it)
        if not calls:
            self._set([], None)
            self._draw("", None)
            message(self.info, "no decode steps in this run (local models record them for llm nodes)")
        elif self.span_id != calls[0]["span_id"]:
            self.show_span(str(calls[0]["span_id"]))
        return calls

    def has_steps(self, span_id: str) -> bool:
        """Whether span ``span_id`` is one of the model calls on offer."""
        return span_id in self.picker.options.values()

    def show_span(self, span_id: str) -> pd.DataFrame:
        """Show the tokens of model call ``span_id``; returns its steps (``token_steps``)."""
        try:
            store = self._store()
            vocab = vocab_size(store, span_id)
            rows = read_steps(store, span_id, vocab)
        except WorkbenchError as exc:
            message(self.info, f"cannot read span {span_id}: {exc}", "error")
            return steps_frame([])
        self._set(rows, span_id)
        if self.has_steps(span_id) and self.picker.value != span_id:
            self.picker.value = span_id  # its watcher finds this span on show: no second draw
        self._draw(span_id, vocab)
        return self.steps

    def _set(self, rows: list[TokenStep], span_id: str | None) -> None:
        self.rows, self.steps, self.span_id = rows, steps_frame(rows), span_id

    def _draw(self, span_id: str, vocab: int | None) -> None:
        rows = self.rows
        message(self.info, summary(rows, vocab) if span_id else "")
        self.strip.object = token_strip(rows) if rows else ""
        # Without steps only the text above shows: an empty chart drew a -1..1 axis and
        # crowded ticks, the table an empty pager.
        for part in (self.only_narrowed, self.key, self.chart, self.table):
            part.visible = bool(rows)
        self.picker.visible = bool(self.picker.options)
        self.chart.object = steps_figure(rows)
        # the table opens on what the rails did (the strip above shows every token)
        self.only_narrowed.value = any(s.cut > 0 for s in rows)
        self._fill_table()

    def _fill_table(self) -> None:
        rows = [s for s in self.rows if s.cut > 0] if self.only_narrowed.value else self.rows
        self.table.value = _table_frame(rows)

    def __panel__(self) -> Any:
        return pn.Column(
            pn.Row(self.picker, self.only_narrowed),
            self.info,
            self.strip,
            self.key,
            self.chart,
            self.table,
            sizing_mode="stretch_width",
        )
