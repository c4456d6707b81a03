"""Decode steps in the store: what the rails did to each token, and files from before that was kept."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from workbench.api import load
from workbench.examples import flow_path
from workbench.runtime import Executor
from workbench.traces import TraceStore, TraceWriter
from workbench.traces.schema import MIGRATIONS, SCHEMA_VERSION, TABLES, current_version, migrate

from .helpers import record_run


def test_a_version_1_file_gains_the_new_decode_step_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_version (version INTEGER, applied_ns BIGINT)")
    for statement in MIGRATIONS[0]:
        con.execute(statement)
    con.execute("INSERT INTO schema_version VALUES (1, 0)")
    con.execute("INSERT INTO decode_steps VALUES ('t', 's', 0, 'x', 120, -0.5, 3, 'budget', 7)")
    assert [r[0] for r in con.execute("DESCRIBE decode_steps").fetchall()][-1] == "time_ns"
    assert migrate(con) == 1 and current_version(con) == SCHEMA_VERSION
    columns = [r[0] for r in con.execute("DESCRIBE decode_steps").fetchall()]
    assert columns == [c for c, _ in TABLES["decode_steps"]]  # the writer inserts by position
    assert con.execute("SELECT token, allowed, schema_allowed, removed FROM decode_steps").fetchall() == [
        ("x", 3, None, None)
    ]
    con.close()
    with TraceWriter(path) as w:  # new rows land in the right columns of the upgraded file
        node = w.start_span("chat tiny", attributes={"openinference.span.kind": "LLM"})
        w.add_event(
            node,
            "workbench.decode.step",
            {
                "workbench.decode.step": 0,
                "workbench.decode.token": "1",
                "workbench.decode.allowed": 2,
                "workbench.decode.schema_allowed": 12,
                "workbench.decode.rails": "budget",
                "workbench.decode.removed": ["8", "9"],
            },
        )
        w.end_span(node)
    with TraceStore(path) as store:
        row = store.query("SELECT * FROM decode_steps WHERE token = '1'").iloc[0]
        assert (row["allowed"], row["schema_allowed"], json.loads(row["removed"])) == (2, 12, ["8", "9"])


def test_decode_steps_round_trip_through_load_spans(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    narrowed = {
        "workbench.decode.step": 0,
        "workbench.decode.token": ".",
        "workbench.decode.allowed": 2,
        "workbench.decode.schema_allowed": 12,
        "workbench.decode.rails": "budget",
        "workbench.decode.removed": ["0", " ", "<"],
    }
    plain = {"workbench.decode.step": 1, "workbench.decode.token": "5", "workbench.decode.allowed": 10}
    with TraceWriter(db) as w:
        root = record_run(w, "run-1", nodes=0, end=False)
        node = w.start_span("chat tiny", parent=root)
        w.add_event(node, "workbench.decode.step", narrowed)
        w.add_event(node, "workbench.decode.step", plain)
        w.end_span(node)
        w.end_span(root)
    with TraceStore(db) as store:
        (_, spans), *_ = store.load_spans(["run-1"])
    steps = [e.attributes for s in spans for e in s.events if e.name == "workbench.decode.step"]
    assert steps == [narrowed, plain]  # what a forwarding writer sends on is what was recorded


def test_the_trader_run_records_what_the_budget_rail_removed_at_each_step(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    with TraceWriter(db) as w:
        result = Executor(load(flow_path("trader")), tracer=w).run(
            {"news": "BOLT shares jump; the stock trades at 12.50", "cash": 7.0}
        )
    assert result.status == "ok", result.error
    with TraceStore(db) as store:
        steps = store.decode_steps(result.run_id)
        chat = store.query("SELECT attributes FROM spans WHERE span_kind = 'LLM'")
        vocab = json.loads(chat["attributes"].iloc[0])["workbench.decode.vocab_size"]
        (_, spans), *_ = store.load_spans([result.run_id])
    assert vocab > 256 and (steps["schema_allowed"] >= steps["allowed"]).all()
    narrowed = steps[steps["allowed"] < steps["schema_allowed"]]
    assert len(narrowed) and (narrowed["rails"] == "budget").all()
    # what the rail removed is kept: its texts, as many as it removed (up to the first 16)
    for row in narrowed.itertuples():
        removed = json.loads(row.removed)
        assert removed and len(removed) == min(16, row.schema_allowed - row.allowed)
        assert row.token not in removed
    # steps the rails left alone record no removals
    assert steps.loc[steps["allowed"] == steps["schema_allowed"], "removed"].isna().all()
    events = [e for s in spans for e in s.events if e.name == "workbench.decode.step"]
    assert sum("workbench.decode.removed" in e.attributes for e in events) == len(narrowed)
