"""The traces view: recent runs, one run's span timeline, its tokens, node latency, compare, SQL.

Recent runs are a Tabulator with filters (flow, status, a text the run id or flow name
contains), filtered and paged in SQL. Picking one draws its span timeline (Bokeh, a row
per span named by its node; click a bar for the span's attributes) and the distribution
of each node's time over the recent runs of its flow. *Tokens* shows a model call's tokens
and what the decode rails did to each (clicking a model call's bar picks it there);
*Compare* shows two runs side by side and *SQL* queries the store (reads only).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import panel as pn

from workbench.errors import WorkbenchError

from .latency import BOX_CALLS, LAST_RUNS, latency_by_node, latency_figure, node_durations, summarise
from .run_compare import RunCompare
from .runs_query import ANY, STATUSES, RunFilter, find_runs, flow_names
from .sql_console import SqlConsole
from .text import message, plural, text_pane
from .timeline import span_details, span_rows, timeline_figure
from .token_view import TokenView

__all__ = ["TracesView", "latency_by_node", "span_rows"]

RUN_COLUMNS = ["run_id", "flow_name", "status", "started", "duration_ms", "spans"]
ALL_FLOWS = "(all flows)"
PAGE = 50  # runs a page of the table shows


class TracesView(pn.viewable.Viewer):
    """Runs of a trace store; ``store`` is a zero-argument callable giving a ``TraceStore``;
    the table shows ``page_size`` runs at a time."""

    def __init__(self, store: Callable[[], Any], page_size: int = PAGE, **params: Any) -> None:
        super().__init__(**params)
        self._store = store
        self.page_size = page_size
        self.page = 0  # which page of runs the table shows (0: the newest)
        self.total = 0  # runs the filters match
        self.run_id: str | None = None  # the run on show
        self._marking = False  # True while refresh() moves the table's selection
        self.runs = pn.widgets.Tabulator(
            pd.DataFrame(columns=RUN_COLUMNS),
            selectable=1,
            disabled=True,
            show_index=False,
            height=220,
            sizing_mode="stretch_width",
            css_classes=["wb-runs"],
        )
        self.flow_filter = pn.widgets.Select(
            label="flow", options=[ALL_FLOWS], value=ALL_FLOWS, width=180, css_classes=["wb-runs-flow"]
        )
        self.status_filter = pn.widgets.Select(
            label="status", options=STATUSES, value=ANY, width=120, css_classes=["wb-runs-status"]
        )
        self.text_filter = pn.widgets.TextInput(
            label="run id or flow contains",
            placeholder="e.g. 3f2a or triage",
            width=220,
            css_classes=["wb-runs-text"],
        )
        for widget in (self.flow_filter, self.status_filter):
            widget.param.watch(lambda _e: self.refresh(page=0), "value")
        self.text_filter.param.watch(lambda _e: self.refresh(page=0), "value_input")
        self.newer_button = pn.widgets.Button(
            label="‹ newer", width=80, disabled=True, css_classes=["wb-runs-newer"]
        )
        self.older_button = pn.widgets.Button(
            label="older ›", width=80, disabled=True, css_classes=["wb-runs-older"]
        )
        self.newer_button.on_click(lambda _e: self.refresh(page=self.page - 1))
        self.older_button.on_click(lambda _e: self.refresh(page=self.page + 1))
        self.refresh_button = pn.widgets.Button(label="Refresh", width=90)
        self.refresh_button.on_click(lambda _e: self.refresh())
        self.runs.param.watch(self._select, "selection")
        self.spans_df = span_rows(pd.DataFrame(columns=["span_id", "parent_id", "name"]))
        self.plot = pn.pane.Bokeh(
            timeline_figure("no run selected", self.spans_df), sizing_mode="stretch_width"
        )
        self.details = text_pane(pre=True, sizing_mode="stretch_width", css_classes=["wb-span-details"])
        self.info = text_pane(css_classes=["wb-traces-info"])
        self.latency = pn.pane.Bokeh(
            latency_figure("(pick a run)", pd.DataFrame(columns=["node", "run_id", "ms"])),
            sizing_mode="stretch_width",
            css_classes=["wb-latency"],
        )
        self.latency_table = pn.widgets.Tabulator(
            pd.DataFrame(columns=["node", "calls", "runs", "p50_ms", "p95_ms", "max_ms"]),
            disabled=True,
            show_index=False,
            sizing_mode="stretch_width",
            css_classes=["wb-latency-table"],
        )
        self.tokens = TokenView(store)
        self.compare = RunCompare(store)
        self.sql = SqlConsole(store)
        self.refresh()

    @property
    def filter(self) -> RunFilter:
        """What the filter widgets ask for."""
        flow = self.flow_filter.value
        text = self.text_filter.value_input or ""
        return RunFilter("" if flow == ALL_FLOWS else str(flow), str(self.status_filter.value), text)

    def refresh(self, page: int | None = None) -> None:
        """Reload the runs table: the page ``page`` (default: the one on show) of the runs the
        filters match, newest first; the flow filter offers every flow with runs."""
        try:
            store = self._store()
            flows = flow_names(store)
            self.page = max(0, self.page if page is None else page)
            df, self.total = find_runs(
                store, self.filter, limit=self.page_size, offset=self.page * self.page_size
            )
            if df.empty and self.page and self.total:  # the filters shrank the list: back to its end
                self.page = (self.total - 1) // self.page_size
                df, self.total = find_runs(
                    store, self.filter, limit=self.page_size, offset=self.page * self.page_size
                )
        except WorkbenchError as exc:
            message(self.info, f"cannot read traces: {exc}", "error")
            return
        keep = self.flow_filter.value
        self.flow_filter.options = [
            ALL_FLOWS,
            *flows,
            *([keep] if keep not in flows and keep != ALL_FLOWS else []),
        ]
        first = self.page * self.page_size
        self._mark([])
        self.newer_button.disabled = self.page == 0
        self.older_button.disabled = first + len(df) >= self.total
        if df.empty:
            self.runs.value = pd.DataFrame(columns=RUN_COLUMNS)
            self.runs.height = 80
            filtered = self.filter != RunFilter()
            message(self.info, "no run matches the filters" if filtered else "no runs recorded yet")
            return
        df = df.assign(started=pd.to_datetime(df["start_ns"], unit="ns").dt.strftime("%Y-%m-%d %H:%M:%S"))
        df["duration_ms"] = df["duration_ms"].round(2)
        self.runs.height = min(260, 46 + 30 * len(df))  # a few runs leave no empty box
        self.runs.value = df[RUN_COLUMNS].reset_index(drop=True)
        # The run on show stays marked where it is among the new rows (row 0 is likely
        # another run now: a click on it must count as a new pick).
        self._mark([i for i, r in enumerate(df["run_id"]) if r == self.run_id])
        self.compare.set_runs(df)
        shown = f"{first + 1:,} to {first + len(df):,} of " if self.total > len(df) else ""
        message(
            self.info,
            f"{shown}{plural(self.total, 'run')}" + (" (filtered)" if self.filter != RunFilter() else ""),
        )

    def _mark(self, rows: list[int]) -> None:
        """Move the table's selection without picking a run (it follows the rows)."""
        self._marking = True
        try:
            self.runs.selection = rows
        finally:
            self._marking = False

    def _select(self, event: Any) -> None:
        if not event.new or self._marking:
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
        self.run_id = run_id
        # A new figure each time: Panel syncs a replaced object, not edits made to raw
        # Bokeh models from its callbacks (those happen outside the document lock).
        self.plot.object = timeline_figure(
            f"run {run_id[:12]}: {plural(len(spans), 'span')}", spans, self.show_span
        )
        message(self.info, f"run {run_id}")
        self.tokens.show_run(run_id)
        if len(spans):
            self.show_span(0)
        flows = self.runs.value.loc[self.runs.value["run_id"] == run_id, "flow_name"]
        if len(flows):
            self.show_latency(str(flows.iloc[0]), run_id)

    def show_latency(self, flow_name: str, run_id: str | None = None) -> pd.DataFrame | None:
        """Chart how long each node of ``flow_name`` takes over its recent runs (``run_id``'s
        calls marked); returns the per-node numbers."""
        try:
            durations = node_durations(self._store(), flow_name)
        except WorkbenchError as exc:
            message(self.info, f"cannot read latency of {flow_name}: {exc}", "error")
            return None
        self.latency.object = latency_figure(flow_name, durations, run_id)
        stats = summarise(durations)
        self.latency_table.value = stats[["node", "calls", "runs", "p50_ms", "p95_ms", "max_ms"]].round(3)
        return stats

    def show_span(self, index: int) -> None:
        """Show the attributes of span ``index`` of the run on show."""
        row = self.spans_df.iloc[index]
        message(self.details, span_details(row))
        if self.tokens.has_steps(str(row["span_id"])):
            self.tokens.show_span(str(row["span_id"]))

    def __panel__(self) -> Any:
        caption = text_pane(
            "Each dot is one call of the node (orange: the picked run); the tick is the median. For a node "
            f"with {BOX_CALLS} calls or more, the box spans the middle half of the calls and the line runs "
            "from the 5th to the 95th percentile. "
            f"Over the newest {LAST_RUNS} runs of the flow at most.",
            sizing_mode="stretch_width",
        )
        tabs = pn.Tabs(
            ("Timeline", pn.Column(self.plot, self.details, sizing_mode="stretch_width")),
            ("Tokens", self.tokens),
            ("Latency", pn.Column(caption, self.latency, self.latency_table, sizing_mode="stretch_width")),
            ("Compare", self.compare),
            ("SQL", self.sql),
            dynamic=True,
            sizing_mode="stretch_width",
        )
        return pn.Column(
            pn.Row(pn.pane.HTML("<b>Traces</b>"), self.refresh_button, self.info),
            pn.Row(
                self.flow_filter,
                self.status_filter,
                self.text_filter,
                pn.Column(pn.Spacer(height=18), pn.Row(self.newer_button, self.older_button)),
            ),
            self.runs,
            tabs,
            sizing_mode="stretch_width",
        )
