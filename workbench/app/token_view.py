"""The token view: one model call's tokens, and what the decode rails did to each of them.

Per generated token (the trace store's ``decode_steps``): its text with whitespace made
visible, how many tokens the answer's grammar allowed and how many the rails left (with the
share of the vocabulary), which rails narrowed it, the first tokens they removed, and the
chosen token's probability under the model before any mask (a rail that overruled the model
shows as a very low one). Drawn as a strip of tokens coloured by how much the rails cut, a
chart of the allowed counts step by step and a table of the steps.

``TokenView(store, span_id)`` works alone in a notebook; the traces view hosts one.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource, HoverTool, NumeralTickFormatter, Range1d
from bokeh.plotting import figure

from workbench.errors import WorkbenchError

from .text import message, text_pane

__all__ = ["TokenView", "decoded_spans", "token_steps", "token_strip", "visible"]

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


def _removed_list(raw: Any) -> list[str]:
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return []
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return [str(raw)]
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def vocab_size(store: Any, span_id: str) -> int | None:
    """The model's vocabulary size recorded on span ``span_id`` (None when not recorded)."""
    rows = store.arrow(
        "SELECT attributes->>'$.\"workbench.decode.vocab_size\"' AS v FROM spans WHERE span_id = ? LIMIT 1",
        [span_id],
    ).to_pylist()
    try:
        return int(rows[0]["v"]) if rows and rows[0]["v"] is not None else None
    except ValueError:
        return None


def token_steps(store: Any, span_id: str) -> pd.DataFrame:
    """The decode steps of span ``span_id`` in order, one row a token.

    Columns: ``step, token, token_id, logprob, allowed, schema_allowed, rails, removed`` (a
    list of texts) as stored, and ``p`` (the chosen token's probability, before masks),
    ``cut`` (tokens the rails removed), ``share`` (allowed over the vocabulary size, NaN
    when it was not recorded).
    """
    df = store.query(
        "SELECT step, token, token_id, logprob, allowed, schema_allowed, rails, removed "
        "FROM decode_steps WHERE span_id = ? ORDER BY step",
        [span_id],
    )
    vocab = vocab_size(store, span_id)
    df["token"] = df["token"].fillna("")
    df["rails"] = df["rails"].fillna("")
    df["removed"] = [_removed_list(r) for r in df["removed"]]
    df["p"] = np.exp(df["logprob"].astype(float))
    allowed = df["allowed"].astype(float)
    df["cut"] = (df["schema_allowed"].astype(float) - allowed).clip(lower=0).fillna(0).astype(int)
    df["share"] = allowed / vocab if vocab else np.nan
    return df


def decoded_spans(store: Any, run_id: str) -> pd.DataFrame:
    """``span_id, node, name, tokens, narrowed`` of the model calls of ``run_id`` that recorded
    decode steps, in the order they started (``narrowed``: steps the rails cut)."""
    return store.query(
        "SELECT s.span_id, s.node, s.name, count(*) AS tokens, "
        "count(*) FILTER (WHERE d.allowed < d.schema_allowed) AS narrowed "
        "FROM decode_steps d JOIN spans s ON s.trace_id = d.trace_id AND s.span_id = d.span_id "
        "JOIN runs r ON r.trace_id = s.trace_id WHERE r.run_id = ? "
        "GROUP BY s.span_id, s.node, s.name ORDER BY min(s.start_ns), s.span_id",
        [store.resolve_run(run_id)],
    )


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


def _tip(row: Any) -> str:
    parts = [f"step {row.step}", repr(row.token)]
    if not math.isnan(row.p):
        parts.append(f"p {row.p:.3g}")
    if not pd.isna(row.allowed):
        before = "" if pd.isna(row.schema_allowed) else f"grammar {int(row.schema_allowed)} → "
        parts.append(f"{before}allowed {int(row.allowed)}")
    if row.rails:
        parts.append(f"narrowed by {row.rails}")
    if row.removed:
        parts.append(
            "removed "
            + " ".join(visible(t) for t in row.removed)
            + (" …" if row.cut > len(row.removed) else "")
        )
    return html.escape(" · ".join(parts), quote=True)


def token_strip(steps: pd.DataFrame) -> str:
    """The tokens as HTML, coloured by how much the rails cut (hover a token for its numbers)."""
    spans = []
    for row in steps.itertuples(index=False):
        classes = ["t"]
        if row.cut:
            frac = row.cut / max(1, row.cut + (0 if pd.isna(row.allowed) else int(row.allowed)))
            classes.append("c3" if row.allowed == 1 else "c2" if frac >= 0.5 else "c1")
        elif row.allowed == 1:
            classes.append("g")
        if not math.isnan(row.p) and row.p < LOW_P:
            classes.append("low")
        spans.append(f'<span class="{" ".join(classes)}" title="{_tip(row)}">{_token_html(row.token)}</span>')
    return _STRIP_CSS + _LEGEND + f'<div class="wb-strip">{"".join(spans)}</div>'


def steps_figure(steps: pd.DataFrame) -> Any:
    """Allowed tokens per step (log scale): what the grammar allowed, and what the rails left
    (the colours are explained by ``CHART_KEY``)."""
    n = len(steps)
    grammar = steps["schema_allowed"].astype(float).fillna(steps["allowed"].astype(float))
    data = {
        "step": steps["step"].tolist(),
        "token": [visible(t) for t in steps["token"]],
        "grammar": grammar.fillna(1).tolist(),
        "allowed": steps["allowed"].astype(float).fillna(1).tolist(),
        "rails": [r or "-" for r in steps["rails"]],
        "p": [f"{p:.3g}" if not math.isnan(p) else "-" for p in steps["p"]],
    }
    cut = (steps["cut"] > 0).tolist()
    source = ColumnDataSource(data)
    narrowed = ColumnDataSource({k: [v for v, c in zip(col, cut) if c] for k, col in data.items()})
    top = float(grammar.max()) if n and not math.isnan(grammar.max()) else 1.0
    fig = figure(
        height=220,
        sizing_mode="stretch_width",
        y_axis_type="log",
        # up to the next power of ten: log ticks a decade apart, never crowded at the top
        y_range=Range1d(0.8, 10 ** math.ceil(math.log10(max(top, 1.0) * 1.05))),
        x_range=Range1d(-1, max(n, 1)),
        x_axis_label="step (token)",
        y_axis_label="allowed tokens",
        tools="xpan,xwheel_zoom,reset",
        toolbar_location="right",
    )
    column = fig.vbar(
        x="step",
        bottom=0.8,
        top="grammar",
        width=0.85,
        color="#cbd5e1",
        source=source,
    )
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


def _table_frame(steps: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "step": steps["step"],
            "token": [visible(t) for t in steps["token"]],
            "p": [f"{p:.3g}" if not math.isnan(p) else "" for p in steps["p"]],  # 3e-06 stays readable
            "grammar": steps["schema_allowed"],
            "allowed": steps["allowed"],
            "share": (steps["share"] * 100).round(2).map(lambda v: "" if pd.isna(v) else f"{v:g}%"),
            "rails": steps["rails"],
            "removed": [" ".join(visible(t) for t in r) for r in steps["removed"]],
        }
    )[TABLE_COLUMNS]


def summary(steps: pd.DataFrame, vocab: int | None) -> str:
    """One line: tokens, how many steps each rail narrowed, the least likely chosen token."""
    if steps.empty:
        return "no decode steps recorded for this model call"
    narrowed = steps[steps["cut"] > 0]
    per_rail: dict[str, int] = {}
    for rails in narrowed["rails"]:
        for rail in filter(None, rails.split(",")):
            per_rail[rail] = per_rail.get(rail, 0) + 1
    parts = [f"{len(steps)} tokens"]
    if narrowed.empty:
        parts.append("no step narrowed by a rail")
    else:
        parts.append(
            f"the rails narrowed {len(narrowed)} steps ("
            + ", ".join(f"{r}: {k}" for r, k in sorted(per_rail.items()))
            + f"), removing {int(narrowed['cut'].sum())} tokens"
        )
    if vocab:
        parts.append(f"vocabulary {vocab:,}")
    if steps["p"].notna().any():
        low = steps.iloc[int(steps["p"].fillna(math.inf).to_numpy().argmin())]
        parts.append(
            f"least likely choice: {visible(str(low['token']))!r} at step {low['step']} (p {low['p']:.2g})"
        )
    return "; ".join(parts)


class TokenView(pn.viewable.Viewer):
    """The tokens of one model call and what the decode rails did to each.

    ``store``: a ``TraceStore`` or a zero-argument callable giving one. ``span_id`` shows that
    model call; ``run_id`` offers the run's model calls that recorded decode steps.
    """

    def __init__(self, store: Any, span_id: str | None = None, *, run_id: str | None = None, **params: Any):
        super().__init__(**params)
        self._store: Callable[[], Any] = store if callable(store) else (lambda: store)
        self.steps = pd.DataFrame()
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
            steps_figure(_empty_steps()),
            sizing_mode="stretch_width",
            css_classes=["wb-token-chart"],
        )
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(columns=TABLE_COLUMNS),
            disabled=True,
            show_index=False,
            pagination="local",
            page_size=15,
            sizing_mode="stretch_width",
            css_classes=["wb-token-table"],
        )
        if run_id is not None:
            self.show_run(run_id)
        if span_id is not None:
            self.show_span(span_id)

    def show_run(self, run_id: str) -> pd.DataFrame:
        """Offer the model calls of ``run_id`` that recorded decode steps and show the first."""
        try:
            calls = decoded_spans(self._store(), run_id)
        except WorkbenchError as exc:
            message(self.info, f"cannot read run {run_id}: {exc}", "error")
            return pd.DataFrame()
        options = {
            f"{row['node'] or '-'} · {row['name']} · {row['tokens']} tokens, {row['narrowed']} narrowed": row[
                "span_id"
            ]
            for row in calls.to_dict("records")
        }
        self.picker.options = options  # may pick the first call already (the watcher draws it)
        if calls.empty:
            self.steps, self.span_id = pd.DataFrame(), None
            self._draw("", None)
            message(self.info, "no decode steps in this run (local models record them for llm nodes)")
        elif self.span_id != calls["span_id"].iloc[0]:
            self.show_span(str(calls["span_id"].iloc[0]))
        return calls

    def has_steps(self, span_id: str) -> bool:
        """Whether span ``span_id`` is one of the model calls on offer."""
        return span_id in self.picker.options.values()

    def show_span(self, span_id: str) -> pd.DataFrame:
        """Show the tokens of model call ``span_id``; returns its steps (``token_steps``)."""
        try:
            store = self._store()
            steps = token_steps(store, span_id)
            vocab = vocab_size(store, span_id)
        except WorkbenchError as exc:
            message(self.info, f"cannot read span {span_id}: {exc}", "error")
            return pd.DataFrame()
        self.steps, self.span_id = steps, span_id
        if self.has_steps(span_id) and self.picker.value != span_id:
            self.picker.value = span_id  # its watcher finds this span on show: no second draw
        self._draw(span_id, vocab)
        return steps

    def _draw(self, span_id: str, vocab: int | None) -> None:
        steps = self.steps
        message(self.info, summary(steps, vocab) if span_id else "")
        self.strip.object = token_strip(steps) if len(steps) else ""
        self.chart.object = steps_figure(steps if len(steps) else _empty_steps())
        # the table opens on what the rails did (the strip above shows every token)
        self.only_narrowed.value = bool(len(steps)) and bool((steps["cut"] > 0).any())
        self._fill_table()

    def _fill_table(self) -> None:
        steps = self.steps
        if steps.empty:
            self.table.value = pd.DataFrame(columns=TABLE_COLUMNS)
            return
        if self.only_narrowed.value:
            steps = steps[steps["cut"] > 0]
        self.table.value = _table_frame(steps).reset_index(drop=True)

    def __panel__(self) -> Any:
        return pn.Column(
            pn.Row(self.picker, self.only_narrowed),
            self.info,
            self.strip,
            pn.pane.HTML(CHART_KEY, sizing_mode="stretch_width"),
            self.chart,
            self.table,
            sizing_mode="stretch_width",
        )


def _empty_steps() -> pd.DataFrame:
    """An empty frame with ``token_steps``' columns (for a view with nothing selected)."""
    cols = [
        "step",
        "token",
        "token_id",
        "logprob",
        "allowed",
        "schema_allowed",
        "rails",
        "removed",
        "p",
        "cut",
        "share",
    ]
    return pd.DataFrame(
        {c: pd.Series(dtype=object if c in ("token", "rails", "removed") else float) for c in cols}
    )
