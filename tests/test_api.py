"""``workbench.run`` / ``check`` / ``load``: the short API records runs in the trace store."""

from __future__ import annotations

import asyncio

import workbench
from workbench.traces import TraceStore


def test_run_records_the_run_in_the_trace_store(tmp_path):
    db = tmp_path / "traces.duckdb"
    result = workbench.run("triage", ticket="The app crashes", tier="pro", db=db)
    assert result.status == "ok"
    runs = TraceStore(db).runs()
    assert list(runs["run_id"]) == [result.run_id]
    assert set(TraceStore(db).spans(result.run_id)["name"]) >= {"invoke_flow triage"}


def test_run_works_inside_a_running_event_loop(tmp_path):
    async def cell():  # what a notebook cell is: code running inside a loop
        return workbench.run("triage", {"ticket": "Refund", "tier": "free"}, trace=False)

    assert asyncio.run(cell()).outputs["reply"]["category"] == "billing"


def test_run_default_db_is_under_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    workbench.run("triage", ticket="hello", tier="free")
    assert (tmp_path / ".workbench" / "traces.duckdb").exists()


def test_check_and_load():
    assert {r.name: r.status for r in workbench.check("trader").rails}["cap"] == "proved"
    assert workbench.load("triage").name == "triage"
