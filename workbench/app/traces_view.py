"""The traces view: recent runs, one run's span timeline, its tokens, node latency, compare, SQL.

Recent runs are a Tabulator; picking one draws its span timeline (Bokeh; click a bar for
the span's attributes) and the p50/p95 latency of each node over every run of its flow.
*Tokens* shows a model call's tokens and what the decode rails did to each (clicking a
model call's bar picks it there); *Compare* shows two runs side by side and *SQL* queries
the store (reads only).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource, DataRange1d, FactorRange, HoverTool
from bokeh.plotting import figure

from workbench.errors import WorkbenchError

from .run_compare import RunCompare
from .sql_console import SqlConsole
from .text import message, text_pane
from .token_view import TokenView

__all__ = ["TracesView", "latency_by_node", "span_rows"]

RUN_COLUMNS = ["run_id", "flow_name", "status", "started", "duration_ms", "spans"]
STATUS_COLOURS = {"OK": "#16a34a", "ERROR": "#dc2626", "UNSET": "#64748b"}


def span_rows(spans: pd.DataFrame) -> pd.DataFrame:
    """Spans with a ``depth`` (nesting under the root) and a ``lane`` label for the timeline."""
    if spans.empty:
        return spans.assign(depth=[], lane=[])
    parent = dict(zip(spans["span_id"], spans["parent_id"]))

    def depth(span_id: str) -> int:
        d, seen = 0, set()
        while parent.get(span_id) and span_id not in seen:
            seen.add(span_id)
            span_id = parent[span_id]
            d += 1
        return d

    out = spans.copy()
    out["depth"] = [depth(s) for s in out["span_id"]]
    out["lane"] = [f"{i:02d} {'  ' * d}{name}" for i, (d, name) in enumerate(zip(out["depth"], out["name"]))]
    return out


def latency_by_node(store: Any, flow_name: str) -> pd.DataFrame:
    """``node, calls, p50_ms, p95_ms`` of node spans over every run of ``flow_name`` (slowest first)."""
    return store.query(
        "SELECT node, count(*) AS calls, quantile_cont(s.duration_ns, 0.5) / 1e6 AS p50_ms, "
        "quantile_cont(s.duration_ns, 0.95) / 1e6 AS p95_ms "
        "FROM spans s JOIN runs r ON s.trace_id = r.trace_id "
        "WHERE r.flow_name = ? AND s.node IS NOT NULL GROUP BY node ORDER BY p95_ms DESC, node",
        [flow_name],
    )


def latency_figure(flow_name: str, latency: pd.DataFrame) -> Any:
    """A bar per node to its p50 with a whisker on to its p95 (milliseconds)."""
    nodes = [str(n) for n in latency["node"]] if len(latency) else []
    source = ColumnDataSource(
        {
            "node": nodes,
            "p50": list(latency["p50_ms"]) if nodes else [],
            "p95": list(latency["p95_ms"]) if nodes else [],
            "calls": list(latency["calls"]) if nodes else [],
        }
    )
    calls = f"up to {int(latency['calls'].max())} calls a node" if nodes else "no node spans yet"
    fig = figure(
        title=f"node latency of {flow_name} (p50 bar, p95 whisker; {calls})",
        height=max(160, 30 * len(nodes) + 90),
        sizing_mode="stretch_width",
        y_range=FactorRange(factors=list(reversed(nodes)) or [""]),
        x_range=DataRange1d(start=0),
        x_axis_label="ms",
        tools="hover",
        tooltips=[
            ("node", "@node"),
            ("p50 ms", "@p50{0.000}"),
            ("p95 ms", "@p95{0.000}"),
            ("calls", "@calls"),
        ],
        toolbar_location=None,
    )
    fig.hbar(y="node", left=0, right="p50", height=0.6, color="#60a5fa", source=source)
    fig.segment(x0="p50", x1="p95", y0="node", y1="node", line_width=2, color="#1e3a8a", source=source)
    fig.scatter(x="p95", y="node", marker="dash", size=14, line_width=2, color="#1e3a8a", source=source)
    return fig


class TracesView(pn.viewable.Viewer):
    """Runs of a trace store; ``store`` is a zero-argument callable giving a ``TraceStore``."""

    def __init__(self, store: Callable[[], Any], **params: Any) -> None:
        super().__init__(**params)
        self._store = store
        self.runs = pn.widgets.Tabulator(
            pd.DataFrame(columns=RUN_COLUMNS),
            selectable=1,
            disabled=True,
            show_index=False,
            height=220,
            sizing_mode="stretch_width",
            css_classes=["wb-runs"],
        )
        self.refresh_button = pn.widgets.Button(label="Refresh", width=90)
        self.refresh_button.on_click(lambda _e: self.refresh())
        self.runs.param.watch(self._select, "selection")
        self.spans_df = pd.DataFrame()
        self.plot = pn.pane.Bokeh(self._figure("no run selected", []), sizing_mode="stretch_width")
        self.details = text_pane(pre=True, sizing_mode="stretch_width", css_classes=["wb-span-details"])
        self.info = text_pane(css_classes=["wb-traces-info"])
        self.latency = pn.pane.Bokeh(
            latency_figure("(pick a run)", pd.DataFrame()),
            sizing_mode="stretch_width",
            css_classes=["wb-latency"],
        )
        self.tokens = TokenView(store)
        self.compare = RunCompare(store)
        self.sql = SqlConsole(store)
        self.refresh()

    def refresh(self) -> None:
        """Reload the runs table (newest first)."""
        try:
            df = self._store().runs(limit=200)
        except WorkbenchError as exc:
            message(self.info, f"cannot read traces: {exc}", "error")
            return
        if df.empty:
            self.runs.value = pd.DataFrame(columns=RUN_COLUMNS)
            message(self.info, "no runs recorded yet")
            return
        df = df.assign(started=pd.to_datetime(df["start_ns"], unit="ns").dt.strftime("%Y-%m-%d %H:%M:%S"))
        df["duration_ms"] = df["duration_ms"].round(2)
        self.runs.value = df[RUN_COLUMNS].reset_index(drop=True)
        self.runs.height = min(220, 46 + 30 * len(df))  # a few runs leave no empty box
        self.compare.set_runs(df)
        message(self.info, f"{len(df)} runs")

    def _select(self, event: Any) -> None:
        if not event.new:
            return
        run_id = self.runs.value.iloc[event.new[0]]["run_id"]
        self.show_run(str(run_id))

    def show_run(self, run_id: str) -> None:
        """Draw the span timeline of ``run_id``."""
        try:
            spans = span_rows(self._store().spans(run_id))
        except WorkbenchError as exc:
            message(self.info, f"cannot read run {run_id}: {exc}", "error")
            return
        self.spans_df = spans
        # A new figure each time: Panel syncs a replaced object, not edits made to raw
        # Bokeh models from its callbacks (those happen outside the document lock).
        self.plot.object = self._figure(f"run {run_id[:12]}: {len(spans)} spans", list(spans["lane"]))
        message(self.info, f"run {run_id}")
        self.tokens.show_run(run_id)
        if len(spans):
            self.show_span(0)
        flows = self.runs.value.loc[self.runs.value["run_id"] == run_id, "flow_name"]
        if len(flows):
            self.show_latency(str(flows.iloc[0]))

    def show_latency(self, flow_name: str) -> pd.DataFrame | None:
        """Chart p50/p95 latency per node over the runs of ``flow_name``; returns the numbers."""
        try:
            latency = latency_by_node(self._store(), flow_name)
        except WorkbenchError as exc:
            message(self.info, f"cannot read latency of {flow_name}: {exc}", "error")
            return None
        self.latency.object = latency_figure(flow_name, latency)
        return latency

    def _figure(self, title: str, lanes: list[str]) -> Any:
        spans = self.spans_df
        data: dict[str, Any] = {
            "lane": lanes,
            "start": [],
            "end": [],
            "name": [],
            "status": [],
            "ms": [],
        }
        if lanes:
            data.update(
                start=list(spans["offset_ms"]),
                end=list(spans["offset_ms"] + spans["duration_ms"]),
                name=list(spans["name"]),
                status=list(spans["status"]),
                ms=list(spans["duration_ms"]),
            )
        data["colour"] = [STATUS_COLOURS.get(s, "#64748b") for s in data["status"]]
        source = ColumnDataSource(data)
        fig = figure(
            title=title,
            height=max(200, 26 * len(lanes) + 80),
            sizing_mode="stretch_width",
            y_range=FactorRange(factors=list(reversed(lanes)) or [""]),
            x_axis_label="ms since run start",
            tools="xpan,xwheel_zoom,reset,tap",
            toolbar_location="right",
        )
        fig.hbar(y="lane", left="start", right="end", height=0.7, color="colour", source=source)
        fig.add_tools(HoverTool(tooltips=[("span", "@name"), ("ms", "@ms{0.000}"), ("status", "@status")]))
        source.selected.on_change("indices", self._tap)
        return fig

    def _tap(self, _attr: str, _old: Any, new: list[int]) -> None:
        if new:
            self.show_span(new[0])

    def show_span(self, index: int) -> None:
        """Show the attributes of span ``index`` of the run on show."""
        row = self.spans_df.iloc[index]
        keep = ["name", "span_id", "parent_id", "kind", "status", "status_message", "duration_ms"]
        data = {k: (None if pd.isna(row[k]) else row[k]) for k in keep if k in row.index}
        attrs = row.get("attributes")
        if isinstance(attrs, str):
            with contextlib.suppress(ValueError):  # not JSON: show the text as it is
                attrs = json.loads(attrs)
        data["attributes"] = attrs
        message(self.details, json.dumps(data, indent=2, default=str, ensure_ascii=False))
        if self.tokens.has_steps(str(row["span_id"])):
            self.tokens.show_span(str(row["span_id"]))

    def __panel__(self) -> Any:
        tabs = pn.Tabs(
            ("Timeline", pn.Column(self.plot, self.details, sizing_mode="stretch_width")),
            ("Tokens", self.tokens),
            ("Latency", self.latency),
            ("Compare", self.compare),
            ("SQL", self.sql),
            dynamic=True,
            sizing_mode="stretch_width",
        )
        return pn.Column(
            pn.Row(pn.pane.HTML("<b>Traces</b>"), self.refresh_button, self.info),
            self.runs,
            tabs,
            sizing_mode="stretch_width",
        )
