"""Live forwarding: a writer sends what it stores on to an OTLP collector (here, a second sink)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

from workbench.traces import SinkServer, TraceWriter

from .helpers import record_run

SPANS = "SELECT span_id, name, attributes FROM spans ORDER BY span_id"


def _wait(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _unscoped(attributes: str) -> dict[str, object]:
    parsed = json.loads(attributes)
    assert parsed.pop("otel.scope.name") == "workbench"
    return parsed


def test_a_writer_forwards_each_stored_batch_redacted_to_a_collector(tmp_path: Path) -> None:
    with SinkServer(tmp_path / "collector.duckdb", port=0, announce=False) as collector:
        with TraceWriter(tmp_path / "local.duckdb", forward=collector.url) as w:
            root = record_run(w, "fwd-run", nodes=2, end=False)
            w.end_span(w.start_span("note", parent=root, attributes={"contact": "mail bob@example.com"}))
            w.end_span(root)
            w.flush()
            local = w.store()
            expected = local.query(SPANS).values.tolist()
            steps = local.query("SELECT count(*) FROM decode_steps").values[0][0]
            _wait(lambda: w.stats.forwarded == len(expected))
        assert collector.writer is not None
        collector.writer.flush()
        remote = collector.writer.store()
        got = remote.query(SPANS).values.tolist()
        # as stored here (redacted), every span once; the receiver notes the OTLP scope
        assert [(i, n, _unscoped(a)) for i, n, a in got] == [(i, n, json.loads(a)) for i, n, a in expected]
        assert "bob@example.com" not in str(got) and "[REDACTED:email]" in str(got)
        assert remote.query("SELECT count(*) FROM decode_steps").values[0][0] == steps > 0
        assert remote.runs()["run_id"].tolist() == ["fwd-run"]
        assert w.stats.forward_failed == 0


def test_a_collector_that_is_away_costs_the_run_nothing(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with TraceWriter(tmp_path / "local.duckdb", forward=f"http://127.0.0.1:{port}/v1/traces") as w:
        record_run(w, "lonely", nodes=2)
        w.flush()
        _wait(lambda: w.stats.forward_failed > 0)
        assert w.store().spans("lonely").shape[0] == w.stats.forward_failed == w.stats.written
        assert any("forwarding" in p for p in w.stats.problems)
