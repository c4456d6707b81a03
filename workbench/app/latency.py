"""How long each node of a flow takes, over its recent runs: the numbers and a chart.

Only a node's own span counts (a rail check or a model call inside it is part of the
node's time, not a call of its own). The chart draws the distribution per node: every
call as a dot (the picked run's in orange), a tick at the median and, for a node with
enough calls, a box over the middle half and a line from the 5th to the 95th percentile.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from bokeh.models import ColumnDataSource, DataRange1d, FactorRange, HoverTool, NumeralTickFormatter
from bokeh.plotting import figure
from bokeh.transform import jitter

from .text import plural

__all__ = ["LAST_RUNS", "latency_by_node", "latency_figure", "node_durations"]

LAST_RUNS = 500  # runs of a flow the distribution covers (the newest)
BOX_CALLS = 5  # calls a node needs before its box and percentile line are drawn

# A node's own span: it names a node its parent span does not (rail checks carry their
# node's name too, so they are left out by kind).
_NODE_SPANS = """
SELECT s.node, r.run_id, s.duration_ns / 1e6 AS ms, s.status, s.start_ns - r.start_ns AS offset_ns
FROM (SELECT run_id, trace_id, start_ns FROM runs WHERE flow_name = ? ORDER BY start_ns DESC LIMIT ?) r
JOIN spans s ON s.trace_id = r.trace_id
LEFT JOIN spans p ON p.trace_id = s.trace_id AND p.span_id = s.parent_id
WHERE s.node IS NOT NULL AND coalesce(s.span_kind, '') <> 'GUARDRAIL'
  AND (p.node IS NULL OR p.node <> s.node)
ORDER BY r.start_ns DESC, s.start_ns"""


def node_durations(store: Any, flow_name: str, last_runs: int = LAST_RUNS) -> pd.DataFrame:
    """``node, run_id, ms, status, offset_ns``: every node call in the newest ``last_runs``
    runs of ``flow_name`` (newest run first, calls in start order)."""
    return store.query(_NODE_SPANS, [flow_name, int(last_runs)])


def latency_by_node(store: Any, flow_name: str, last_runs: int = LAST_RUNS) -> pd.DataFrame:
    """``node, calls, runs, p5_ms, p25_ms, p50_ms, p75_ms, p95_ms, max_ms`` per node over
    the newest ``last_runs`` runs of ``flow_name``, nodes in the order they ran."""
    return summarise(node_durations(store, flow_name, last_runs))


def summarise(durations: pd.DataFrame) -> pd.DataFrame:
    """Per-node statistics of ``node_durations`` rows (quantiles interpolate, as DuckDB's
    ``quantile_cont`` does)."""
    columns = ["node", "calls", "runs", "p5_ms", "p25_ms", "p50_ms", "p75_ms", "p95_ms", "max_ms"]
    if durations.empty:
        return pd.DataFrame(columns=columns)
    # Nodes in the order they ran: by their typical start within a run.
    order = durations.groupby("node")["offset_ns"].median().sort_values().index
    grouped = durations.groupby("node")["ms"]
    table = pd.DataFrame(
        {
            "calls": grouped.size(),
            "runs": durations.groupby("node")["run_id"].nunique(),
            **{f"p{int(q * 100)}_ms": grouped.quantile(q) for q in (0.05, 0.25, 0.5, 0.75, 0.95)},
            "max_ms": grouped.max(),
        }
    ).loc[order]
    return table.reset_index(names="node")[columns]


def _stats_source(stats: pd.DataFrame) -> ColumnDataSource:
    columns = ("p5_ms", "p25_ms", "p50_ms", "p75_ms", "p95_ms", "max_ms")
    return ColumnDataSource(
        {
            "node": [str(n) for n in stats["node"]],
            **{c: [float(v) for v in stats[c]] for c in columns},
            "calls": [plural(int(c), "call") for c in stats["calls"]],
            "runs": [plural(int(r), "run") for r in stats["runs"]],
        }
    )


def _calls_note(stats: pd.DataFrame, runs: int) -> str:
    low, high = int(stats["calls"].min()), int(stats["calls"].max())
    calls = f"{plural(high, 'call')} of each node" if low == high else f"{low:,} to {high:,} calls a node"
    return f"{plural(runs, 'run')}, {calls}"


def latency_figure(flow_name: str, durations: pd.DataFrame, run_id: str | None = None) -> Any:
    """The distribution of each node's call time (ms) in ``durations``; ``run_id``'s calls
    are drawn in orange. A log axis where calls differ by more than a hundredfold."""
    if len(durations):  # a zero-length call still shows on a log axis
        durations = durations.assign(ms=durations["ms"].clip(lower=1e-3))
    stats = summarise(durations)
    nodes = [str(n) for n in stats["node"]]
    runs = int(durations["run_id"].nunique()) if len(durations) else 0
    note = _calls_note(stats, runs) if nodes else "no node calls recorded yet"
    log = bool(len(durations)) and durations["ms"].max() / durations["ms"].min() > 100
    fig = figure(
        title=f"time in each node of {flow_name} ({note})",
        height=max(180, 38 * len(nodes) + 100),
        sizing_mode="stretch_width",
        y_range=FactorRange(factors=list(reversed(nodes)) or [""]),
        x_range=DataRange1d() if log else DataRange1d(start=0),
        x_axis_type="log" if log else "linear",
        x_axis_label="ms per call" + (" (log scale)" if log else ""),
        tools="xpan,xwheel_zoom,reset",
        toolbar_location="right",
    )
    fig.ygrid.grid_line_color = None
    fig.xaxis.formatter = NumeralTickFormatter(format="0.[000]")  # 0.1, 1, 10: not 10^-1
    # A box over fewer than BOX_CALLS calls would draw quartiles the data cannot give.
    boxed = _stats_source(stats[stats["calls"] >= BOX_CALLS])
    fig.segment(
        x0="p5_ms",
        x1="p95_ms",
        y0="node",
        y1="node",
        line_width=2,
        color="#1e3a8a",
        source=boxed,
    )
    box = fig.hbar(
        y="node",
        left="p25_ms",
        right="p75_ms",
        height=0.55,
        fill_color="#bfdbfe",
        line_color="#1e3a8a",
        source=boxed,
    )
    median = fig.scatter(
        x="p50_ms",
        y="node",
        marker="dash",
        angle=math.pi / 2,
        size=22,
        line_width=3,
        color="#1e3a8a",
        source=_stats_source(stats),
    )
    fig.add_tools(
        HoverTool(
            renderers=[box, median],
            tooltips=[
                ("node", "@node"),
                ("calls", "@calls in @runs"),
                ("median ms", "@p50_ms{0.000}"),
                ("middle half", "@p25_ms{0.000} to @p75_ms{0.000}"),
                ("p5 to p95", "@p5_ms{0.000} to @p95_ms{0.000}"),
                ("max ms", "@max_ms{0.000}"),
            ],
        )
    )
    if len(durations):
        mine = durations["run_id"] == run_id
        for part, colour, size, label in (
            (durations[~mine], "#64748b", 5, "other runs"),
            (durations[mine], "#ea580c", 8, "this run"),
        ):
            if len(part):
                dots = ColumnDataSource(
                    {
                        "node": [str(n) for n in part["node"]],
                        "ms": list(part["ms"]),
                        "run": list(part["run_id"]),
                    }
                )
                fig.scatter(
                    x="ms",
                    y=jitter("node", width=0.35, range=fig.y_range),
                    source=dots,
                    size=size,
                    color=colour,
                    alpha=0.55 if label == "other runs" else 0.9,
                    legend_label=label,
                )
        fig.legend.label_text_font_size = "11px"
        fig.add_layout(fig.legend[0], "right")  # beside the plot: it never hides a dot
    return fig
