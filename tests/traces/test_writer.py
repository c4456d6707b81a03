"""The writer: schema, runs lifecycle, tables filled from spans and events, drops, redaction."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import duckdb
import pytest

from workbench.spans import Tracer
from workbench.traces import TraceStore, TraceWriter, tracer_for
from workbench.traces.redact import RegexRedactor
from workbench.traces.schema import MIGRATIONS, SCHEMA_VERSION, TABLES, VIEWS, current_version, migrate

from .helpers import record_run


def test_writer_is_a_tracer_and_creates_the_schema(db: Path) -> None:
    with TraceWriter(db) as w:
        assert isinstance(w, Tracer)
    con = duckdb.connect(str(db), read_only=True)
    names = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert set(TABLES) | set(VIEWS) | {"schema_version"} <= names
    assert current_version(con) == SCHEMA_VERSION == len(MIGRATIONS)
    con.close()


def test_migrate_is_idempotent_and_refuses_newer_files(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "m.duckdb"))
    assert migrate(con) == 0
    assert migrate(con) == SCHEMA_VERSION
    con.execute("INSERT INTO schema_version VALUES (?, 0)", [SCHEMA_VERSION + 1])
    with pytest.raises(RuntimeError, match="newer than this workbench"):
        migrate(con)


def test_run_lifecycle_tables_and_views(db: Path) -> None:
    with TraceWriter(db) as w:
        root = record_run(w, "run-1", nodes=3, end=False)
        store = w.store()
        assert store.runs()["status"].tolist() == ["running"]
        root.attributes["workbench.run.outputs"] = '{"approved": {"qty": 1}}'
        w.end_span(root)
        record_run(w, "run-2", nodes=2, fail=True)
        store = w.store()
        runs = store.runs().set_index("run_id")
        assert runs.loc["run-1", "status"] == "OK"
        assert runs.loc["run-2", "status"] == "ERROR"
        assert runs.loc["run-1", "spans"] == 1 + 3 * 2
        assert runs.loc["run-1", "flow_name"] == "trader"
        assert runs.loc["run-1", "outputs"] == '{"approved": {"qty": 1}}'
        assert runs.loc["run-1", "duration_ms"] > 0

        spans = store.spans("run-1")
        assert spans["name"].iloc[0] == "invoke_agent trader"
        assert spans["offset_ms"].iloc[0] == 0
        assert set(spans["node"].dropna()) == {"node0", "node1", "node2"}
        assert spans.loc[spans["node"] == "node0", "output_tokens"].iloc[0] == 4

        steps = store.decode_steps("run-1")
        assert len(steps) == 3 * 4 and steps["rails"].unique().tolist() == ["budget"]
        assert steps["token"].tolist()[:4] == ["t0", "t1", "t2", "t3"]
        rails = store.rail_verdicts("run-1")
        assert len(rails) == 6  # one event and one GUARDRAIL span per node
        assert set(rails["rail"]) == {"restricted", "budget"}
        assert len(store.events("run-1")) == 3  # the rail events; decode steps have their own table

        rates = store.rail_violation_rates().set_index(["rail", "port"])
        assert rates.loc[("restricted", "node0.order"), "violation_rate"] == 1.0
        assert rates.loc[("budget", "node0.order"), "violations"] == 0
        latency = store.node_latency().set_index("node")
        assert latency.loc["node0", "calls"] == 2 and latency.loc["node1", "errors"] == 1
        assert latency["p95_ms"].ge(latency["p50_ms"]).all()
        calls = store.model_calls()
        assert (calls["tokens_per_s"] > 0).all() and len(calls) == 5
        assert store.slowest_runs()["run_id"].tolist()[0] in {"run-1", "run-2"}
        assert store.drops().empty


def test_run_start_and_end_in_one_batch_and_a_reopened_file(db: Path) -> None:
    with TraceWriter(db, interval=5.0) as w:  # everything below lands in one batch
        record_run(w, "r", nodes=1)
    with TraceWriter(db) as w:  # a second owner appends to the same file
        record_run(w, "s", nodes=1)
    with TraceStore(db) as store:
        assert dict(zip(store.runs()["run_id"], store.runs()["status"])) == {"r": "OK", "s": "OK"}
        assert store.resolve_run("latest") == "s"


def test_odd_attribute_values_are_stored_as_json(db: Path) -> None:
    class Thing:
        def __str__(self) -> str:
            return "a thing"

    with TraceWriter(db) as w:
        s = w.start_span(
            "odd",
            attributes={
                "nan": math.nan,
                "b": b"\x00\x01",
                "obj": Thing(),
                "t": (1, 2),
                "nested": {"x": [1, {"y": None}]},
                3: "int key",
            },
        )
        w.end_span(s)
        df = w.store().query(
            "SELECT attributes->>'$.obj' AS obj, attributes->'$.t' AS t, "
            "attributes->'$.nan' AS nan FROM spans"
        )
    assert df.iloc[0].tolist() == ["a thing", "[1,2]", "null"]


def test_redaction_happens_before_storage(db: Path) -> None:
    secret = "jane.roe@example.org"
    with TraceWriter(db) as w:
        s = w.start_span(
            "run",
            attributes={
                "workbench.run.id": "r",
                "workbench.run.inputs": f'{{"mail": "{secret}", "card": "4111 1111 1111 1111"}}',
            },
        )
        w.add_event(s, "note", {"text": f"call +1 415 555 2671 or {secret}"})
        w.end_span(s, status="ERROR", message=f"failed for {secret}")
        store = w.store()
        runs = store.runs()
        assert "[REDACTED:email]" in runs["inputs"][0] and "[REDACTED:card]" in runs["inputs"][0]
        assert secret not in store.query("SELECT attributes FROM spans")["attributes"][0]
        assert store.query("SELECT status_message FROM spans")["status_message"][0] == (
            "failed for [REDACTED:email]"
        )
        assert "[REDACTED:phone]" in store.events()["attributes"][0]
    assert secret.encode() not in db.read_bytes()


def test_a_custom_redactor_plugs_in_and_none_disables(tmp_path: Path) -> None:
    only_acme = RegexRedactor({"ticker": r"\bACME\b"}, validators={})
    with TraceWriter(tmp_path / "a.duckdb", redactor=only_acme) as w:
        w.end_span(w.start_span("x", attributes={"q": "ACME at a@b.io"}))
        assert (
            w.store().query("SELECT attributes->>'$.q' q FROM spans")["q"][0] == "[REDACTED:ticker] at a@b.io"
        )
    with TraceWriter(tmp_path / "b.duckdb", redactor=None) as w:
        w.end_span(w.start_span("x", attributes={"q": "a@b.io"}))
        assert w.store().query("SELECT attributes->>'$.q' q FROM spans")["q"][0] == "a@b.io"


def test_back_pressure_keeps_every_span(db: Path) -> None:
    with TraceWriter(db, max_queue=50, batch_size=50, block_timeout=30) as w:
        root = w.start_span("r")
        for _ in range(2000):
            w.end_span(w.start_span("n", parent=root))
        w.end_span(root)
        w.flush()
        assert w.stats.dropped == 0
        assert w.store().query("SELECT count(*) n FROM spans")["n"][0] == 2001


def test_a_full_queue_drops_are_counted_stored_and_warned(db: Path) -> None:
    produced = 20_000
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        w = TraceWriter(db, max_queue=10, batch_size=10, block_timeout=0)
        spans = [w.start_span("n") for _ in range(produced)]
        for s in spans:
            w.end_span(s)
        w.close()
    assert w.stats.dropped > 0
    assert any("dropped spans" in str(c.message) for c in caught)
    with TraceStore(db) as store:
        stored = store.query("SELECT count(*) n FROM spans")["n"][0]
        assert store.drops()["dropped"].sum() == w.stats.dropped
    assert stored + w.stats.dropped == produced


def test_spans_after_close_are_counted_not_lost_silently(db: Path) -> None:
    w = TraceWriter(db)
    s = w.start_span("late")
    w.close()
    w.close()  # idempotent
    with pytest.warns(RuntimeWarning, match="dropped"):
        w.end_span(s)
    assert w.stats.dropped == 1


def test_tracer_for_defaults_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WORKBENCH_SINK", raising=False)
    with tracer_for() as t:
        assert isinstance(t, TraceWriter)
        record_run(t, "cwd-run", nodes=1)
    assert (tmp_path / ".workbench" / "traces.duckdb").exists()
    with TraceStore() as store:
        assert store.runs()["run_id"].tolist() == ["cwd-run"]


def test_one_unstorable_span_costs_only_itself(db: Path) -> None:
    with TraceWriter(db, interval=5.0) as w:  # all in one batch
        w.end_span(w.start_span("fine"))
        bad = w.start_span("far future")
        bad.start_ns = 2**70  # no BIGINT holds it
        w.record(bad)
        odd = w.start_span(
            "odd tokens", attributes={"gen_ai.usage.output_tokens": "9" * 30, "workbench.node.name": 7}
        )
        w.end_span(odd)
        w.end_span(w.start_span("also fine"))
        with pytest.warns(RuntimeWarning, match="dropped"):
            w.flush()
        names = set(w.store().query("SELECT name FROM spans")["name"])
    assert names == {"fine", "odd tokens", "also fine"}
    assert w.stats.dropped == 1 and any("could not be stored" in p for p in w.stats.problems)


def _storage_version(path: Path) -> str:
    con = duckdb.connect(":memory:")
    con.execute(f"ATTACH '{path}' AS f (READ_ONLY)")
    tags = con.execute("SELECT tags FROM duckdb_databases() WHERE database_name = 'f'").fetchone()[0]
    con.close()
    return tags["storage_version"]


def test_new_files_use_the_newer_storage_format_and_old_files_are_not_upgraded(tmp_path: Path) -> None:
    with TraceWriter(tmp_path / "new.duckdb") as w:
        record_run(w)
    assert _storage_version(tmp_path / "new.duckdb").startswith("v1.5")
    old = tmp_path / "old.duckdb"
    duckdb.connect(str(old)).close()  # DuckDB's default format
    before = _storage_version(old)
    with TraceWriter(old) as w:
        record_run(w)
    assert _storage_version(old) == before and not before.startswith("v1.5")
    assert TraceStore(old).runs()["status"].tolist() == ["OK"]


def test_lifted_columns_come_from_the_stored_attributes(db: Path) -> None:
    cases = [
        {"workbench.node.name": "n", "openinference.span.kind": "LLM", "gen_ai.request.model": "m"},
        {"workbench.node.name": 5, "gen_ai.response.model": "r", "gen_ai.usage.input_tokens": 7},
        {"gen_ai.request.model": "", "gen_ai.response.model": "r", "gen_ai.usage.output_tokens": 2**70},
        {"workbench.node.name": True, "gen_ai.usage.input_tokens": "12"},
        {},
    ]
    with TraceWriter(db) as w:
        for i, attrs in enumerate(cases):
            w.end_span(w.start_span(f"s{i}", attributes=attrs))
        rows = w.store().query(
            "SELECT span_kind, node, model, input_tokens, output_tokens FROM spans ORDER BY name"
        )
    assert rows.astype(object).where(rows.notna(), None).values.tolist() == [
        ["LLM", "n", "m", None, None],
        [None, "5", "r", 7, None],
        [None, None, "r", None, None],
        [None, "true", None, 12, None],
        [None, None, None, None, None],
    ]


def test_stored_spans_are_freed_by_the_producer_or_when_it_goes_idle(db: Path) -> None:
    import time

    # interval 0.5: the writer sleeps that long between looks, so the state after flush() holds
    with TraceWriter(db, interval=0.5, batch_size=1_000) as w:
        for i in range(5_000):
            w.end_span(w.start_span(f"s{i}"))
        w.flush()
        assert 0 < len(w._grave) <= 1_000  # stored spans wait at most one batch to be freed
        held = len(w._grave)
        w.end_span(w.start_span("one more"))  # each new span frees an old one
        assert len(w._grave) == held - 1
        deadline = time.monotonic() + 5
        while w._grave and time.monotonic() < deadline:  # an idle producer: the writer frees them
            time.sleep(0.01)
        assert not w._grave
        assert w.store().query("SELECT count(*) AS n FROM spans")["n"][0] == 5_001


def test_foreign_spans_are_not_held_and_a_lost_race_on_the_grave_is_harmless(db: Path) -> None:
    import collections

    from workbench.spans import MemoryTracer
    from workbench.traces.convert import Origin

    mem = MemoryTracer()
    record_run(mem, "elsewhere", nodes=2)
    origin = Origin.from_resource({"service.name": "other"})

    class Raced(collections.deque):  # another thread emptied it between the check and the pop
        def popleft(self) -> object:
            raise IndexError("pop from an empty deque")

    with TraceWriter(db, batch_size=100) as w:
        for _ in range(50):
            assert w.submit(list(mem.spans), origin)
        w.flush()
        assert not w._grave  # only local spans wait there (only end_span frees them)
        w._grave = Raced([object()])
        w.end_span(w.start_span("still fine"))  # must not raise
        w._grave = collections.deque()
        assert w.flush()
        assert w.store().query("SELECT count(*) AS n FROM spans")["n"][0] == 50 * len(mem.spans) + 1


def test_the_writer_never_turns_the_garbage_collector_off(db: Path) -> None:
    """gc is process-wide: a writer thread pausing it would change every user thread's behaviour."""
    import gc
    import threading
    import time

    from workbench.flow import Flow, Node
    from workbench.runtime import Executor

    def step(x: int) -> dict[str, int]:
        seen.add(gc.isenabled())  # what user code in a tool sees
        return {"y": x + 1}

    seen: set[bool] = set()
    flow = Flow("many_spans", inputs={"x": int}, outputs={"y": int})
    for i in range(500):
        flow.add(Node.tool(f"n{i}", step, inputs={"x": int}, outputs={"y": int}))
        flow.nodes[f"n{i}"].config["inline"] = True
        flow.connect("x" if i == 0 else f"n{i - 1}.y", f"n{i}.x")
    flow.connect("n499.y", "y")
    done = threading.Event()
    sampled: list[bool] = []

    def sample() -> None:  # another user thread, watching throughout the run
        while not done.is_set():
            sampled.append(gc.isenabled())
            time.sleep(0.0001)  # let the others have the GIL

    watcher = threading.Thread(target=sample)
    assert gc.isenabled()
    with TraceWriter(db, batch_size=2000, interval=0.001) as w:
        watcher.start()
        executor = Executor(flow, tracer=w)
        for _ in range(30):  # 15,000 node spans, converted in batches of 2,000 while it runs
            assert executor.run({"x": 0}).outputs == {"y": 500}
        w.flush()
        done.set()
        watcher.join()
        assert w.stats.batches >= 5
    assert seen == {True}
    assert len(sampled) > 100 and all(sampled), f"gc was off in {sampled.count(False)} samples"
