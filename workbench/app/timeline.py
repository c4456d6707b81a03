"""One run's spans as a timeline labelled by node, and one span's details as text.

A researcher looks for the node, so each row is named by the node its span belongs to:
the node's own span reads ``classify``; what ran inside it reads ``desk › chat 2``,
``desk › tool buy › rail cap`` or ``analyst › model load``. The span's operation
(``execute_tool ...``, ``chat default``) is written on its bar and shown on hover.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pandas as pd
from bokeh.models import ColumnDataSource, FixedTicker, HoverTool, Range1d
from bokeh.plotting import figure

__all__ = ["span_details", "span_rows", "timeline_figure"]

STATUS_COLOURS = {"OK": "#16a34a", "ERROR": "#dc2626", "UNSET": "#64748b"}
MODEL_LOAD = "workbench.model.load"
_DETAIL_KEYS = ["name", "node", "span_id", "parent_id", "kind", "status", "status_message", "duration_ms"]


def _attributes(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}
    return raw if isinstance(raw, dict) else {}


def _text(value: Any) -> str | None:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def _short_tool(name: str) -> str:
    """``workbench.examples.support:redact`` reads ``support:redact``."""
    module, sep, func = name.rpartition(":")
    return f"{module.rsplit('.', 1)[-1]}{sep}{func}" if sep else name.rsplit(".", 1)[-1]


def _step(kind: str | None, name: str, attrs: dict[str, Any]) -> str:
    """What a span nested in a node did, in a word or two."""
    if kind == "GUARDRAIL":
        return f"rail {attrs.get('workbench.rail.name') or attrs.get('gen_ai.guardrail.name') or name}"
    if kind == "LLM":
        step = attrs.get("workbench.agent.step")
        return f"chat {step}" if step is not None else "chat"
    if kind == "TOOL":
        return f"tool {_short_tool(str(attrs.get('gen_ai.tool.name') or name.removeprefix('execute_tool ')))}"
    if name == MODEL_LOAD:
        return "model load"
    return name


def _operation(name: str) -> str:
    """The span name with a tool's module path cut to its last part (for the bar's text)."""
    head, sep, tool = name.partition(" ")
    return f"{head} {_short_tool(tool)}" if sep and head == "execute_tool" else name


def span_rows(spans: pd.DataFrame) -> pd.DataFrame:
    """Spans (``store.spans(run)``) with ``depth``, ``owner`` (the node a span belongs to),
    ``label`` (the timeline row's name) and ``operation`` (the span name, shortened)."""
    if spans.empty:
        return spans.assign(depth=[], owner=[], label=[], operation=[])
    ids = list(spans["span_id"])
    parent = {s: _text(p) for s, p in zip(ids, spans["parent_id"])}
    node = {s: _text(n) for s, n in zip(ids, spans.get("node", pd.Series([None] * len(ids))))}
    kind = {s: _text(k) for s, k in zip(ids, spans.get("span_kind", pd.Series([None] * len(ids))))}
    names = dict(zip(ids, spans["name"].astype(str)))
    attrs = {s: _attributes(a) for s, a in zip(ids, spans.get("attributes", pd.Series([None] * len(ids))))}
    known = set(ids)
    memo: dict[str, tuple[int, str | None, str]] = {}

    def row(span_id: str, seen: frozenset[str] = frozenset()) -> tuple[int, str | None, str]:
        """(depth, owner, label) of a span, from its parent's (a cycle counts as a root)."""
        if span_id in memo:
            return memo[span_id]
        up = parent[span_id]
        a = attrs[span_id]
        if up is None or up not in known or span_id in seen:
            flow = a.get("workbench.flow.name")
            own = node[span_id]
            result = (0, own, own or (f"flow {flow}" if flow else names[span_id]))
        else:
            depth, owner, label = row(up, seen | {span_id})
            own = node[span_id] or _text(a.get("workbench.model.node"))
            if own and own != owner and kind[span_id] != "GUARDRAIL" and names[span_id] != MODEL_LOAD:
                result = (depth + 1, own, own)  # the node's own span
            else:
                mine = own or owner
                step = _step(kind[span_id], names[span_id], a)
                inside = label if owner and owner == mine and label != mine else mine
                result = (depth + 1, mine, f"{inside} › {step}" if inside else step)
        memo[span_id] = result
        return result

    out = spans.copy()
    rows = [row(s) for s in ids]
    out["depth"] = [d for d, _, _ in rows]
    out["owner"] = [o for _, o, _ in rows]
    labels = [lab for _, _, lab in rows]
    # The same label twice (a node in a loop, an agent's repeated calls) gets #1, #2...
    counts = pd.Series(labels).value_counts()
    seen_count: dict[str, int] = {}
    numbered = []
    for lab in labels:
        if counts[lab] > 1:
            seen_count[lab] = seen_count.get(lab, 0) + 1
            lab = f"{lab} #{seen_count[lab]}"
        numbered.append(lab)
    out["label"] = numbered
    out["operation"] = [_operation(n) for n in spans["name"].astype(str)]
    return out


def _decoded(value: Any) -> Any:
    """``value`` with JSON text inside it (an attribute holding an object) parsed, recursively."""
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            return _decoded(json.loads(value))
        except ValueError:
            return value
    if isinstance(value, dict):
        return {k: _decoded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decoded(v) for v in value]
    return value


def span_details(row: pd.Series) -> str:
    """A span's fields and attributes as indented JSON text, JSON-valued attributes decoded
    (``workbench.run.inputs`` shows as an object, not an escaped string)."""
    data: dict[str, Any] = {}
    for key in _DETAIL_KEYS:
        if key in row.index:
            value = row[key]
            data[key] = None if not isinstance(value, str) and pd.isna(value) else value
    data["attributes"] = _decoded(row.get("attributes"))
    return json.dumps(data, indent=2, default=str, ensure_ascii=False)


def timeline_figure(title: str, spans: pd.DataFrame, on_tap: Callable[[int], None] | None = None) -> Any:
    """A bar per span of ``span_rows(...)`` on a ms axis, one row each, labelled by node;
    the operation and duration are written on (or beside) each bar. ``on_tap(i)``: a bar
    clicked."""
    n = len(spans)
    data: dict[str, Any] = {k: [] for k in ("y", "start", "end", "label", "op", "ms", "status")}
    if n:
        start = [float(x) for x in spans["offset_ms"]]
        ms = [float(x) for x in spans["duration_ms"]]
        data.update(
            y=list(range(n)),
            start=start,
            end=[s + d for s, d in zip(start, ms)],
            label=list(spans["label"]),
            op=list(spans["operation"]),
            ms=ms,
            status=[str(s) for s in spans["status"]],
        )
    extent = max(data["end"], default=0.0) or 1.0
    # Text inside a long bar (white), beside a short one: it stays readable either way.
    wide = [e - s >= 0.4 * extent for s, e in zip(data["start"], data["end"])]
    data["text"] = [f"{op} · {_ms(m)}" for op, m in zip(data["op"], data["ms"])]
    data["text_x"] = [s if w else e for s, e, w in zip(data["start"], data["end"], wide)]
    data["text_align"] = ["left"] * n
    data["text_colour"] = ["#ffffff" if w else "#334155" for w in wide]
    data["colour"] = [STATUS_COLOURS.get(s, "#64748b") for s in data["status"]]
    source = ColumnDataSource(data)
    fig = figure(
        title=title,
        height=max(200, 26 * n + 80),
        sizing_mode="stretch_width",
        y_range=Range1d(start=n - 0.5 if n else 0.5, end=-0.5),  # the first span on top
        x_range=Range1d(start=-0.02 * extent, end=extent * 1.3),  # room on the right for a short bar's text
        x_axis_label="ms since run start",
        tools="xpan,xwheel_zoom,reset,tap",
        toolbar_location="right",
    )
    if not n:  # nothing to draw: no empty axes either
        fig.height, fig.toolbar_location = 60, None
        fig.axis.visible = fig.grid.visible = False
        fig.outline_line_color = None
    fig.yaxis.ticker = FixedTicker(ticks=list(range(n)))
    fig.yaxis.major_label_overrides = {i: lab for i, lab in enumerate(data["label"])}
    fig.yaxis.major_label_text_font_size = "12px"
    fig.ygrid.grid_line_color = None
    bars = fig.hbar(y="y", left="start", right="end", height=0.7, color="colour", source=source)
    fig.text(
        x="text_x",
        y="y",
        text="text",
        x_offset=4,
        text_align="left",
        text_baseline="middle",
        text_font_size="11px",
        text_color="text_colour",
        nonselection_text_alpha=1.0,  # a picked bar fades the others; their words stay readable
        source=source,
    )
    fig.add_tools(
        HoverTool(
            renderers=[bars],
            tooltips=[("node", "@label"), ("operation", "@op"), ("ms", "@ms{0.000}"), ("status", "@status")],
        )
    )
    if on_tap is not None:
        source.selected.on_change("indices", lambda _a, _o, new: on_tap(new[0]) if new else None)
    return fig


def _ms(ms: float) -> str:
    return f"{ms:,.0f} ms" if ms >= 100 else f"{ms:.2f} ms" if ms >= 1 else f"{ms * 1000:.0f} µs"
