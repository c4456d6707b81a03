"""The traces view on a real trace file of real runs: the runs table's filters and pages, the
timeline's rows named by node, span details with JSON attributes decoded, and the
distribution of each node's time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from workbench.app.latency import BOX_CALLS, latency_by_node
from workbench.app.runs_query import RunFilter, find_runs
from workbench.app.timeline import span_details, span_rows
from workbench.app.traces_view import TracesView
from workbench.examples import flow_path
from workbench.flow import load
from workbench.runtime import Approve, Executor
from workbench.traces import TraceStore, TraceWriter

from .trace_runs import record_runs

TRIAGE_RUNS = 5


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, list[str]]]]:
    """Five triage runs, a failed and a cancelled run, and one desk run (an agent on the tiny
    model: model load, chats, tool calls and a rail check inside its node)."""
    db = tmp_path_factory.mktemp("traces-view") / "t.duckdb"
    ids = record_runs(db, TRIAGE_RUNS)
    with TraceWriter(db) as writer:
        desk = Executor(load(flow_path("desk")), tracer=writer, approve=lambda *a: Approve()).run(
            {"news": "BOLT shares jump after a record quarter", "cash": 1000.0}
        )
    assert desk.status == "ok", desk.error
    ids["desk"] = [desk.run_id]
    with TraceStore(db) as store:
        yield store, ids


def info(view: TracesView) -> str:
    return str(view.info.object)


def test_filters_and_pages_apply_in_the_query(recorded: tuple[Any, dict[str, list[str]]]) -> None:
    store, ids = recorded
    total = TRIAGE_RUNS + 3
    view = TracesView(lambda: store, page_size=3)
    # Only one page of runs is read and sent to the page, newest first.
    assert len(view.runs.value) == 3 and view.total == total
    assert f"1 to 3 of {total} runs" in info(view)
    assert view.runs.value["run_id"].iloc[0] == ids["desk"][0]
    assert view.newer_button.disabled and not view.older_button.disabled
    view.older_button.clicks += 1
    assert view.page == 1 and f"4 to 6 of {total} runs" in info(view)
    view.refresh(page=2)
    assert len(view.runs.value) == total - 6 and view.older_button.disabled
    # Statuses as a person says them; cancelled is told apart from other errors.
    view.status_filter.value = "cancelled"
    assert view.page == 0 and list(view.runs.value["run_id"]) == ids["cancelled"]
    assert list(view.runs.value["status"]) == ["cancelled"] and "1 run (filtered)" in info(view)
    view.status_filter.value = "error"
    assert list(view.runs.value["run_id"]) == ids["error"]
    view.status_filter.value = "running"
    assert view.runs.value.empty and "no run matches the filters" in info(view)
    view.status_filter.value = "any"
    # The flow picker offers every flow with runs; picking one keeps only its runs.
    assert view.flow_filter.options == ["(all flows)", "desk", "sleepy", "triage"]
    view.flow_filter.value = "triage"
    assert view.total == TRIAGE_RUNS and set(view.runs.value["flow_name"]) == {"triage"}
    view.flow_filter.value = "(all flows)"
    # The text filter: any part of a run id or a flow name, any case.
    view.text_filter.value_input = ids["triage"][2][3:11].upper()
    assert list(view.runs.value["run_id"]) == [ids["triage"][2]]
    view.text_filter.value_input = "SLEE"
    assert view.total == 2 and set(view.runs.value["status"]) == {"error", "cancelled"}
    # A % typed in the box means itself, not "anything".
    view.text_filter.value_input = "%"
    assert view.total == 0
    # The same query straight: the page holds at most `limit` rows, the count all of them.
    page, count = find_runs(store, RunFilter(flow="triage"), limit=2, offset=1)
    assert len(page) == 2 and count == TRIAGE_RUNS
    assert list(page["run_id"]) == ids["triage"][::-1][1:3]
    with pytest.raises(ValueError, match="unknown run status"):
        RunFilter(status="bogus").where()


def test_timeline_rows_are_named_by_node(recorded: tuple[Any, dict[str, list[str]]]) -> None:
    store, ids = recorded
    view = TracesView(lambda: store)
    view.show_run(ids["triage"][0])
    assert list(view.spans_df["label"]) == ["flow triage", "redact", "classify", "prioritise", "summarise"]
    fig = view.plot.object
    assert fig.yaxis.major_label_overrides == dict(enumerate(view.spans_df["label"]))
    # the operation stays on the bar (the tool's module path cut to its last part)
    text = fig.renderers[1].data_source.data["text"]
    assert text[1].startswith("execute_tool support:redact · ")
    # picking a bar fades the others, not the words on them
    assert fig.renderers[1].nonselection_glyph.text_alpha == 1.0

    view.show_run(ids["desk"][0])
    labels = list(view.spans_df["label"])
    # The agent node's own span, then what ran inside it, named after the node.
    assert labels[0] == "flow desk" and "desk" in labels
    assert {"desk › chat 1", "desk › chat 2", "desk › tool quote", "desk › tool buy"} <= set(labels)
    assert "desk › tool buy › rail cap" in labels
    rail = labels.index("desk › tool buy › rail cap")
    assert view.spans_df["depth"].iloc[rail] == view.spans_df["depth"].iloc[labels.index("desk")] + 2
    assert set(view.spans_df["owner"].iloc[1:]) == {"desk"}


def test_span_rows_number_repeated_labels_and_survive_odd_parents() -> None:
    spans = pd.DataFrame(
        {
            "span_id": ["r", "a", "b", "c"],
            "parent_id": [None, "r", "r", "zz"],  # c's parent was never stored
            "name": ["invoke_flow f", "execute_tool m:t", "execute_tool m:t", "orphan"],
            "node": [None, "loop", "loop", None],
            "span_kind": ["CHAIN", "TOOL", "TOOL", None],
            "attributes": ['{"workbench.flow.name": "f"}', "{}", "{}", "not json"],
        }
    )
    rows = span_rows(spans)
    assert list(rows["label"]) == ["flow f", "loop #1", "loop #2", "orphan"]
    assert list(rows["depth"]) == [0, 1, 1, 0]


def test_span_details_decode_json_attributes_as_text(recorded: tuple[Any, dict[str, list[str]]]) -> None:
    store, ids = recorded
    view = TracesView(lambda: store)
    view.show_run(ids["triage"][0])
    shown = span_details(view.spans_df.iloc[0])
    data = json.loads(shown)
    inputs = data["attributes"]["workbench.run.inputs"]
    assert inputs == {
        "ticket": "Invoice charged twice, urgent! mail me at [REDACTED:email]",
        "tier": "enterprise",
    }
    assert data["attributes"]["workbench.run.outputs"]["reply"]["category"] == "billing"
    assert '\\"' not in shown and '\n      "ticket": ' in shown  # indented, not an escaped string
    # Trace data is shown as text, never markup.
    row = pd.Series(
        {"name": "x", "attributes": json.dumps({"a": json.dumps({"b": "<script>alert(1)</script>"})})}
    )
    view.spans_df = pd.DataFrame([row]).assign(span_id="s")
    view.show_span(0)
    assert "<script>" not in view.details.object and "&lt;script&gt;" in view.details.object
    # text that only looks like JSON stays as it was
    assert json.loads(span_details(pd.Series({"attributes": '{"a": "[not json"}'})))["attributes"] == {
        "a": "[not json"
    }


def test_latency_shows_each_nodes_distribution(recorded: tuple[Any, dict[str, list[str]]]) -> None:
    store, ids = recorded
    view = TracesView(lambda: store)
    view.show_run(ids["triage"][1])
    stats = view.latency_table.value
    assert list(stats["node"]) == ["redact", "classify", "prioritise", "summarise"]  # the order they ran
    assert (stats["calls"] == TRIAGE_RUNS).all() and (stats["runs"] == TRIAGE_RUNS).all()
    fig = view.latency.object
    assert (
        fig.title.text
        == f"time in each node of triage ({TRIAGE_RUNS} runs, {TRIAGE_RUNS} calls of each node)"
    )
    sources = [r.data_source.data for r in fig.renderers]
    # every call is a dot; the picked run's calls are the orange ones
    mine = [d for d in sources if "run" in d and set(d["run"]) == {ids["triage"][1]}]
    others = [d for d in sources if "run" in d and ids["triage"][1] not in d["run"]]
    assert len(mine) == 1 and len(mine[0]["ms"]) == 4
    assert len(others) == 1 and len(others[0]["ms"]) == 4 * (TRIAGE_RUNS - 1)
    assert TRIAGE_RUNS >= BOX_CALLS  # so each node has its box
    boxes = [d for d in sources if "p25_ms" in d and len(d["node"]) == 4]
    assert len(boxes) == 3  # the percentile line, the box and the median tick

    # One run: "1 call", and the rail check inside the desk node is not a call of the node.
    view.show_run(ids["desk"][0])
    assert view.latency.object.title.text == "time in each node of desk (1 run, 1 call of each node)"
    assert view.latency_table.value.to_dict("list")["calls"] == [1]
    desk = latency_by_node(store, "desk")
    assert list(desk["node"]) == ["desk"] and list(desk["calls"]) == [1]


def test_refresh_keeps_the_run_on_show_marked(recorded: tuple[Any, dict[str, list[str]]]) -> None:
    store, ids = recorded
    view = TracesView(lambda: store)
    row = list(view.runs.value["run_id"]).index(ids["triage"][0])
    view.runs.selection = [row]  # a click on the row
    assert view.run_id == ids["triage"][0]
    view.flow_filter.value = "triage"  # the run moves up among fewer rows
    assert view.runs.selection == [TRIAGE_RUNS - 1] and view.run_id == ids["triage"][0]
    view.flow_filter.value = "sleepy"  # gone from the table: nothing is marked
    assert view.runs.selection == []
    view.runs.selection = [0]  # a click on the first row picks its run
    assert view.run_id in ids["cancelled"]
