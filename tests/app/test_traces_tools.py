"""The traces view's tools in Python: node latency, the read-only SQL console, run compare."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import workbench
from workbench.app.run_compare import CHANGED, RunCompare, compare_outputs, compare_spans
from workbench.app.sql_console import SqlConsole, read_only_problem
from workbench.app.traces_view import TracesView, latency_by_node
from workbench.traces import TraceStore

TICKETS = [
    ("Invoice charged twice, urgent!", "enterprise"),
    ("the app crashes on login", "free"),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    db = tmp_path_factory.mktemp("traces") / "t.duckdb"
    for text, tier in TICKETS:
        assert workbench.run("triage", {"ticket": text, "tier": tier}, db=db).status == "ok"
    with TraceStore(db) as opened:
        yield opened


def test_latency_per_node_covers_every_node_of_the_flow(store: Any) -> None:
    latency = latency_by_node(store, "triage")
    assert set(latency["node"]) == set(workbench.load("triage").nodes)
    assert (latency["calls"] == len(TICKETS)).all()
    assert (latency["p95_ms"] >= latency["p50_ms"]).all() and (latency["p50_ms"] > 0).all()
    assert latency_by_node(store, "no-such-flow").empty
    view = TracesView(lambda: store)
    view.show_run(str(view.runs.value["run_id"].iloc[0]))
    # The chart's bars are the nodes of the run's flow.
    assert set(view.latency.object.y_range.factors) == set(latency["node"])


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM runs",
        "INSERT INTO runs (run_id) VALUES ('x')",
        "DROP TABLE spans",
        "COPY runs TO 'out.csv'",
        "ATTACH 'other.duckdb'",
        "SET threads = 1",
        "CALL pragma_version()",
        "PRAGMA show_tables",
        "SELECT 1; DELETE FROM runs",
    ],
)
def test_console_refuses_anything_but_one_read(sql: str) -> None:
    problem = read_only_problem(sql)
    assert problem is not None
    assert "refused" in problem or "one statement" in problem


@pytest.mark.parametrize(
    "sql",
    ["SELECT 1", "WITH a AS (SELECT 1 AS x) SELECT x FROM a", "FROM runs", "DESCRIBE spans", "SHOW TABLES"],
)
def test_console_accepts_reads(sql: str) -> None:
    assert read_only_problem(sql) is None


def test_console_runs_a_query_and_reports_errors_in_one_paragraph(store: Any) -> None:
    console = SqlConsole(lambda: store)
    df = console.run("SELECT flow_name, count(*) AS n FROM runs GROUP BY flow_name")
    assert df is not None and df.to_dict("records") == [{"flow_name": "triage", "n": len(TICKETS)}]
    assert list(console.result.value.columns) == ["flow_name", "n"]
    assert console.run("SELECT nope FROM runs") is None
    assert console.result.value.empty
    assert "query failed" in console.info.object and "nope" in console.info.object
    assert console.run("DELETE FROM runs") is None
    assert "DELETE statements are refused" in console.info.object
    assert len(store.runs()) == len(TICKETS)


def test_compare_marks_the_outputs_and_spans_that_differ(store: Any) -> None:
    compare = RunCompare(lambda: store)
    view = TracesView(lambda: store)
    compare.set_runs(view.runs.value)
    table = compare.compare()
    assert table is not None
    assert "invoke_flow triage" in list(table["span"])
    # Billing vs technical ticket: the category output differs and is marked on both sides.
    assert f"{CHANGED} reply.category" in compare.outputs_a.object
    assert f"{CHANGED} reply.category" in compare.outputs_b.object
    assert "outputs differ" in compare.info.object
    assert "duration off by at least 1 ms and 20%" in compare.info.object  # the rule, said


def test_compare_helpers() -> None:
    import pandas as pd

    rows = compare_outputs({"a": 1, "b": "x"}, {"a": 1, "c": 2})
    assert [(k, d) for k, _x, _y, d in rows] == [("a", False), ("b", True), ("c", True)]
    a = pd.DataFrame({"name": ["run", "node", "node"], "duration_ms": [10.0, 2.0, 2.0], "status": ["OK"] * 3})
    b = pd.DataFrame({"name": ["run", "node"], "duration_ms": [30.0, 2.1], "status": ["OK", "ERROR"]})
    table = compare_spans(a, b).set_index("span")["change"].to_dict()
    assert table == {
        "run": f"{CHANGED} +20.00 ms",
        "node": f"{CHANGED} status OK / ERROR",
        "node #2": f"{CHANGED} only in A",
    }
    # Material differences only: at least 1 ms and at least 20% of the longer duration.
    names = ["guard", "tool", "chat", "load"]
    a = pd.DataFrame({"name": names, "duration_ms": [0.007, 0.4, 272.6, 10.0], "status": ["OK"] * 4})
    b = pd.DataFrame({"name": names, "duration_ms": [0.005, 2.6, 267.0, 11.0], "status": ["OK"] * 4})
    table = compare_spans(a, b).set_index("span")["change"].to_dict()
    assert table == {"guard": "", "tool": f"{CHANGED} +2.20 ms", "chat": "", "load": ""}


def test_rails_check_result_of_an_older_edit_is_dropped(tmp_path: Path) -> None:
    from workbench.app.document import FlowDocument
    from workbench.app.rails_panel import RailsPanel
    from workbench.examples import flow_path

    panel = RailsPanel(FlowDocument.open(flow_path("triage")))
    shown = panel.report
    panel.refresh()  # generation 2 is the newest now
    stale = {"errors": ["stale"], "rails": [], "notes": []}
    panel._deliver(1, stale)
    assert panel.report is not stale and panel.report["rails"] == shown["rails"]
    panel._deliver(panel._generation, stale)
    assert panel.report is stale
