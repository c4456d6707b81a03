"""Export: Parquet, OTLP/JSON files, OTLP forwarded to a collector; the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from workbench.traces import SinkServer, TraceStore, TraceWriter
from workbench.traces.cli import main
from workbench.traces.otlp import decode_json

from .helpers import record_run


@pytest.fixture
def recorded(db: Path) -> Path:
    with TraceWriter(db) as w:
        record_run(w, "run-a", nodes=2)
        record_run(w, "run-b", nodes=1, fail=True)
    return db


def test_parquet_export_per_table_and_per_run(recorded: Path, tmp_path: Path) -> None:
    with TraceStore(recorded) as store:
        files = store.export_parquet(tmp_path / "all")
        assert {f.stem for f in files} >= {"runs", "spans", "span_events", "rail_verdicts", "decode_steps"}
        assert pq.read_table(tmp_path / "all" / "spans.parquet").num_rows == 5 + 3
        store.export_parquet(tmp_path / "one", ["run-b"])
    assert pq.read_table(tmp_path / "one" / "spans.parquet").num_rows == 3
    assert pq.read_table(tmp_path / "one" / "runs.parquet").column("run_id").to_pylist() == ["run-b"]
    assert pq.read_table(tmp_path / "one" / "decode_steps.parquet").num_rows == 4


def test_otlp_json_export_round_trips(recorded: Path, tmp_path: Path) -> None:
    with TraceStore(recorded) as store:
        path = store.export_otlp_json(tmp_path / "run.json", ["run-a"])
        original = store.spans("run-a")
    groups = decode_json(path.read_bytes())
    spans = [s for _, group in groups for s in group]
    assert sorted(s.span_id for s in spans) == sorted(original["span_id"])
    node = next(s for s in spans if s.attributes.get("workbench.node.name") == "node0")
    assert [e.name for e in node.events].count("workbench.decode.step") == 4
    assert node.attributes["gen_ai.usage.output_tokens"] == 4
    doc = json.loads(path.read_text())
    first = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert len(first["traceId"]) == 32 and isinstance(first["kind"], int)


def test_forwarding_to_a_collector(recorded: Path, tmp_path: Path) -> None:
    # The "collector" is another sink on loopback: it speaks the same OTLP/HTTP protocol.
    with SinkServer(tmp_path / "collector.duckdb") as collector, TraceStore(recorded) as store:
        assert store.forward_otlp(collector.url) == 8
        assert collector.writer is not None
        remote = collector.writer.store()
        assert sorted(remote.runs()["run_id"]) == ["run-a", "run-b"]
        assert len(remote.decode_steps("run-a")) == 8 and len(remote.rail_verdicts("run-b")) == 2
        assert remote.runs().set_index("run_id").loc["run-b", "status"] == "ERROR"


def test_forwarding_to_nowhere_is_a_clear_error(recorded: Path) -> None:
    with TraceStore(recorded) as store, pytest.raises(Exception, match="cannot reach collector"):
        store.forward_otlp("http://127.0.0.1:9/v1/traces")


def test_cli_list_show_query_export(
    recorded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(recorded)
    assert main(["traces", "list", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "run-a" in out and "run-b" in out and "ERROR" in out
    assert main(["traces", "list", "--db", db, "--json"]) == 0
    assert {r["run_id"] for r in json.loads(capsys.readouterr().out)} == {"run-a", "run-b"}
    assert main(["traces", "show", "run-a", "--db", db]) == 0
    out = capsys.readouterr().out
    assert (
        "invoke_agent trader" in out
        and "ms   chat tiny-0" in out
        and "restricted on node0.order: fail" in out
    )
    assert main(["traces", "show", "--db", db, "--json"]) == 0  # latest
    assert json.loads(capsys.readouterr().out)["run"]["run_id"] == "run-b"
    assert (
        main(
            [
                "traces",
                "query",
                "SELECT node, calls FROM node_latency ORDER BY node",
                "--db",
                db,
                "--format",
                "csv",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.splitlines() == ["node,calls", "node0,2", "node1,1"]
    assert main(["traces", "export", "--db", db, "--out", str(tmp_path / "pq")]) == 0
    assert (tmp_path / "pq" / "spans.parquet").exists()
    assert (
        main(
            [
                "traces",
                "export",
                "run-a",
                "--db",
                db,
                "--format",
                "otlp-json",
                "--out",
                str(tmp_path / "a.json"),
            ]
        )
        == 0
    )
    assert (tmp_path / "a.json").exists()


def test_cli_errors_are_messages_with_exit_codes(
    recorded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["traces", "show", "nope", "--db", str(recorded)]) == 1
    assert "no run 'nope'" in capsys.readouterr().err
    assert main(["traces", "query", "SELECT * FROM nowhere", "--db", str(recorded)]) == 1
    assert "query failed" in capsys.readouterr().err
    assert main(["traces", "list", "--db", str(tmp_path / "missing.duckdb")]) == 1
    assert "no trace database" in capsys.readouterr().err
    assert main(["traces", "export", "--db", str(recorded)]) == 2
    assert "needs --out" in capsys.readouterr().err


def test_cli_reads_through_a_running_sink(recorded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with SinkServer(recorded):
        assert main(["traces", "list", "--db", str(recorded)]) == 0
        assert "run-a" in capsys.readouterr().out
        assert main(["traces", "show", "run-b", "--db", str(recorded)]) == 0
        assert "node failed" in capsys.readouterr().out


def test_cli_serve_owns_the_file_until_sigterm_and_forwards(recorded: Path) -> None:
    import signal
    import subprocess
    import sys

    from workbench.traces import find_sink, open_store, tracer_for

    from .helpers import record_run

    root = Path(__file__).resolve().parents[2]
    collector = SinkServer(recorded.parent / "collector.duckdb", port=0, announce=False).start()
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workbench.traces.cli",
            "traces",
            "serve",
            "--db",
            str(recorded),
            "--port",
            "0",
            "--forward",
            collector.url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=root,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert "listening on http://127.0.0.1:" in line, child.stderr.read() if child.stderr else line
        info = find_sink(recorded)
        assert info is not None and info["pid"] == child.pid
        with tracer_for(recorded) as t:
            record_run(t, "via-serve", nodes=1)
        assert "via-serve" in set(open_store(recorded).runs()["run_id"])
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=30)
    assert child.returncode == 0
    assert find_sink(recorded) is None
    with TraceStore(recorded) as store:  # the file is free again and holds everything
        assert set(store.runs()["run_id"]) == {"run-a", "run-b", "via-serve"}
    collector.close()  # it got what the sink stored while serving, sent on before its exit
    with TraceStore(recorded.parent / "collector.duckdb") as forwarded:
        assert set(forwarded.runs()["run_id"]) == {"via-serve"}
        assert len(forwarded.spans("via-serve")) == 3
