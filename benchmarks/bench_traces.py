"""Trace store benchmarks, side by side: DuckDB (ours) vs SQLite, and tracing overhead.

    .venv/bin/python benchmarks/bench_traces.py            # 1,000,000 spans (about 2 minutes)
    .venv/bin/python benchmarks/bench_traces.py --spans 200000 --json out.json

1. Ingest: pre-built spans of 10,000 runs (a root and 99 node spans each, every 10th an
   llm call with token counts and a rail event) go through ``TraceWriter.end_span``; the
   clock stops when ``flush()`` returns (all committed). Same spans into SQLite with the
   same columns, JSON text and redaction, ``executemany`` per 50,000-row transaction in
   WAL mode (SQLite's fast path; Phoenix's default store).
2. Queries over the result: p50/p95 per node, tokens/s per model, rail violation rates,
   slowest runs. SQLite has no percentile function: a window query ranks the rows.
3. Tracing overhead: a flow of 1,000 trivial tool nodes in a chain, run by the executor
   with the no-op tracer vs the DuckDB writer (median of repeated runs).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # so the chain flow can import `step` below

from workbench.spans import Span, SpanEvent, _BaseTracer, new_span_id, new_trace_id
from workbench.traces import TraceStore, TraceWriter
from workbench.traces.convert import dumps
from workbench.traces.schema import TABLES, VIEWS
from workbench.traces.writer import DEFAULT_REDACTOR

NODES = [f"node{i:02d}" for i in range(20)]


def make_spans(total: int) -> list[Span]:
    """``total`` ended spans shaped like executor output (100 per run)."""
    spans: list[Span] = []
    t = time.time_ns()
    runs = max(1, total // 100)
    for r in range(runs):
        trace = new_trace_id()
        root_id = new_span_id()
        start = t + r * 10_000_000
        spans.append(
            Span(
                "invoke_flow bench",
                trace,
                root_id,
                None,
                start,
                attributes={
                    "openinference.span.kind": "CHAIN",
                    "workbench.run.id": f"run{r:06d}",
                    "workbench.flow.name": "bench",
                    "workbench.flow.hash": "h",
                    "workbench.run.inputs": '{"x": 1}',
                    "workbench.run.outputs": '{"y": 2}',
                },
                end_ns=start + 5_000_000 + (r % 97) * 10_000,
                status="OK",
            )
        )
        for i in range(99):
            node = NODES[i % len(NODES)]
            s0 = start + i * 50_000
            attrs: dict[str, Any] = {
                "workbench.node.name": node,
                "workbench.node.kind": "tool",
                "workbench.node.attempt": 1,
            }
            events = []
            if i % 10 == 0:
                attrs.update(
                    {
                        "gen_ai.operation.name": "chat",
                        "gen_ai.request.model": f"m{i % 3}",
                        "gen_ai.usage.input_tokens": 100,
                        "gen_ai.usage.output_tokens": 20 + i % 7,
                        "openinference.span.kind": "LLM",
                    }
                )
                events.append(
                    SpanEvent(
                        "rail.check",
                        s0 + 1000,
                        {
                            "workbench.rail.name": f"rail{i % 4}",
                            "workbench.rail.port": f"{node}.out",
                            "workbench.rail.verdict": "fail" if (r + i) % 13 == 0 else "pass",
                            "workbench.rail.us": 4.2,
                        },
                    )
                )
            spans.append(
                Span(
                    f"execute_tool {node}",
                    trace,
                    new_span_id(),
                    root_id,
                    s0,
                    attributes=attrs,
                    events=events,
                    end_ns=s0 + 20_000 + (i * 7919 + r) % 40_000,
                    status="OK",
                )
            )
    return spans[:total]


def timed(fn: Callable[[], Any], repeat: int = 5) -> tuple[float, Any]:
    """Median wall seconds of ``repeat`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


# -- DuckDB ------------------------------------------------------------------------------
class TimedWriter(TraceWriter):
    """The writer with CPU seconds per stage counted (thread CPU time: load on a shared machine
    slows the wall clock far more than it changes these)."""

    cpu: dict[str, float]

    def _convert(self, items: list[object]) -> None:
        c = time.thread_time()
        super()._convert(items)
        self.cpu["convert"] += time.thread_time() - c

    def _commit(self, batch: Any) -> None:
        c = time.thread_time()
        super()._commit(batch)
        self.cpu["insert"] += time.thread_time() - c


def duckdb_ingest(path: Path, spans: list[Span], redact: bool) -> tuple[float, dict[str, float]]:
    """Spans/s through the writer, and CPU microseconds per span of each stage."""
    w = TimedWriter(path, redactor=DEFAULT_REDACTOR if redact else None)
    w.cpu = {"convert": 0.0, "insert": 0.0}
    t, c = time.perf_counter(), time.thread_time()
    for s in spans:
        w._export(s)  # end_span minus setting end/status, which the spans already carry
    produce = time.thread_time() - c
    w.flush()
    dt = time.perf_counter() - t
    assert w.stats.dropped == 0
    w.close()
    cpu = {"end_span": produce, **w.cpu}
    return len(spans) / dt, {k: v / len(spans) * 1e6 for k, v in cpu.items()}


def conversion_by_chunk(spans: list[Span], repeat: int) -> dict[int, float]:
    """Converter CPU (us/span, best of ``repeat``) for one writer batch of 122,880 spans,
    converted in one pass per column vs in cache-sized chunks (``convert._CHUNK``)."""
    import gc

    from workbench.traces import convert

    batch = spans[:122_880]
    origin = convert.Origin.from_resource({"service.name": "bench"})
    chunk, result = convert._CHUNK, {}

    def once() -> Any:
        return convert.build_batch(batch, origin, DEFAULT_REDACTOR)

    gc.disable()
    try:
        for size in (len(batch), chunk):
            convert._CHUNK = size
            result[size] = min(timed(once, 1)[0] for _ in range(repeat)) / len(batch) * 1e6
    finally:
        convert._CHUNK = chunk
        gc.enable()
    return result


DUCK_QUERIES = {
    "p50/p95 per node": "SELECT node, p50_ms, p95_ms FROM node_latency",
    "tokens/s per model": (
        "SELECT model, avg(tokens_per_s) AS tps, count(*) AS calls FROM model_calls GROUP BY model"
    ),
    "rail violation rates": "SELECT * FROM rail_violation_rates",
    "slowest runs": "SELECT * FROM slowest_runs LIMIT 10",
}


# -- SQLite (same columns, same conversion) ---------------------------------------------
def sqlite_schema(con: sqlite3.Connection) -> None:
    for name, cols in TABLES.items():
        con.execute(f"CREATE TABLE {name} ({', '.join(f'{c} {t}' for c, t in cols)})")


def sqlite_ingest(path: Path, spans: list[Span], redact: bool, batch: int = 50_000) -> tuple[float, float]:
    """Spans/s into SQLite, and CPU microseconds per span of SQLite's own part (executemany
    and commit: what its storage engine costs beside DuckDB's insert)."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    sqlite_schema(con)
    red = DEFAULT_REDACTOR.redact_attributes if redact else (lambda a: a)
    engine = 0.0
    t = time.perf_counter()
    for i in range(0, len(spans), batch):
        chunk = spans[i : i + batch]
        rows, rails, runs = [], [], []
        for s in chunk:
            a = red(s.attributes)
            rows.append(
                (
                    s.trace_id,
                    s.span_id,
                    s.parent_id,
                    s.name,
                    s.kind,
                    a.get("openinference.span.kind"),
                    a.get("workbench.node.name"),
                    a.get("gen_ai.request.model"),
                    a.get("gen_ai.usage.input_tokens"),
                    a.get("gen_ai.usage.output_tokens"),
                    s.start_ns,
                    s.end_ns,
                    s.end_ns - s.start_ns,
                    s.status,
                    s.status_message,
                    dumps(a),
                    "workbench",
                    "r0",
                )
            )
            for e in s.events:
                ea = red(e.attributes)
                rails.append(
                    (
                        s.trace_id,
                        s.span_id,
                        a.get("workbench.node.name"),
                        ea["workbench.rail.name"],
                        ea["workbench.rail.port"],
                        ea["workbench.rail.verdict"],
                        None,
                        ea["workbench.rail.us"],
                        e.time_ns,
                        None,
                    )
                )
            if s.parent_id is None:
                runs.append(
                    (
                        a["workbench.run.id"],
                        s.trace_id,
                        "bench",
                        "h",
                        "OK",
                        None,
                        s.start_ns,
                        s.end_ns,
                        a["workbench.run.inputs"],
                        a["workbench.run.outputs"],
                        os.getpid(),
                        "h",
                        "w",
                    )
                )
        c = time.thread_time()
        con.execute("BEGIN")
        con.executemany(f"INSERT INTO spans VALUES ({','.join('?' * 18)})", rows)
        con.executemany(f"INSERT INTO rail_verdicts VALUES ({','.join('?' * 10)})", rails)
        con.executemany(f"INSERT INTO runs VALUES ({','.join('?' * 13)})", runs)
        con.execute("COMMIT")
        engine += time.thread_time() - c
    dt = time.perf_counter() - t
    con.close()
    return len(spans) / dt, engine / len(spans) * 1e6


SQLITE_QUERIES = {
    "p50/p95 per node": """
        WITH ranked AS (
          SELECT node, duration_ns,
                 row_number() OVER (PARTITION BY node ORDER BY duration_ns) AS rn,
                 count(*) OVER (PARTITION BY node) AS n
          FROM spans WHERE node IS NOT NULL)
        SELECT node,
               max(CASE WHEN rn = CAST(0.50 * (n - 1) AS INTEGER) + 1 THEN duration_ns END) / 1e6 AS p50_ms,
               max(CASE WHEN rn = CAST(0.95 * (n - 1) AS INTEGER) + 1 THEN duration_ns END) / 1e6 AS p95_ms
        FROM ranked GROUP BY node""",
    "tokens/s per model": """
        SELECT model, avg(output_tokens / (duration_ns / 1e9)) AS tps, count(*) AS calls
        FROM spans WHERE model IS NOT NULL GROUP BY model""",
    "rail violation rates": """
        SELECT rail, port, count(*) AS checks, sum(verdict = 'fail') AS violations,
               sum(verdict = 'fail') * 1.0 / count(*) AS violation_rate, avg(us) AS mean_us
        FROM rail_verdicts GROUP BY rail, port""",
    "slowest runs": """
        SELECT run_id, flow_name, status, (end_ns - start_ns) / 1e6 AS duration_ms
        FROM runs ORDER BY end_ns - start_ns DESC LIMIT 10""",
}


# -- tracing overhead on the executor ------------------------------------------------------
def step(x: int) -> dict[str, int]:
    """The trivial tool of the chain flow."""
    return {"y": x + 1}


class KeepTracer(_BaseTracer):
    """Keeps the last 20,000 ended spans (about what the writer holds between its drains),
    freeing the oldest as each new one arrives, and does nothing else: the floor of any
    tracer that records (a span kept alive costs memory traffic that a discarded one does not)."""

    def __init__(self) -> None:
        self.kept: collections.deque[Span] = collections.deque(maxlen=20_000)

    def _export(self, span: Span) -> None:
        self.kept.append(span)


def executor_overhead(n_nodes: int, repeat: int, db: Path) -> dict[str, Any] | None:
    try:
        from workbench.flow import loads
        from workbench.runtime import Executor
        from workbench.spans import NoopTracer
    except ImportError:
        return None
    nodes = {
        f"n{i}": {
            "kind": "tool",
            "tool": "bench_traces:step",
            "inline": True,  # a trivial pure function: called on the loop, as the tracer cost is the point
            "inputs": {"x": "int"},
            "outputs": {"y": "int"},
        }
        for i in range(n_nodes)
    }
    wires = ["x -> n0.x"] + [f"n{i}.y -> n{i + 1}.x" for i in range(n_nodes - 1)] + [f"n{n_nodes - 1}.y -> y"]
    flow = loads(
        json.dumps(
            {
                "flow": "chain",
                "version": 1,
                "inputs": {"x": "int"},
                "outputs": {"y": "int"},
                "nodes": nodes,
                "wires": wires,
            }
        )
    )
    # The no-op runs alone first, before any writer thread exists: interleaved with the writer's
    # runs they also pay for whatever the writer does meanwhile (a polluted baseline).
    noop_ex = Executor(flow, tracer=NoopTracer(), trust=True)
    noop_ex.run({"x": 0})
    alone = []
    for _ in range(repeat):
        t = time.perf_counter()
        noop_ex.run({"x": 0})
        alone.append(time.perf_counter() - t)
    writer = TraceWriter(db)
    executors = {
        "noop": noop_ex,
        "keep": Executor(flow, tracer=KeepTracer(), trust=True),
        "duckdb": Executor(flow, tracer=writer, trust=True),
    }
    times: dict[str, list[float]] = {label: [] for label in executors}
    # Warm up into the steady state of a long sweep: a few of the writer's ``max_delay``
    # conversions, so stored spans are being recycled (a cold writer only accumulates).
    warm_until = time.perf_counter() + 3.0
    while time.perf_counter() < warm_until:
        for ex in executors.values():
            ex.run({"x": 0})
    for _ in range(repeat):  # interleaved, so load changes on a shared machine hit both alike
        for label, ex in executors.items():
            t = time.perf_counter()
            result = ex.run({"x": 0})
            times[label].append(time.perf_counter() - t)
            assert result.outputs == {"y": n_nodes}
    t = time.perf_counter()
    writer.flush()
    flush = time.perf_counter() - t
    writer.close()
    noop, duck = statistics.median(times["noop"]), statistics.median(times["duckdb"])
    keep = statistics.median(times["keep"])
    solo = statistics.median(alone)
    # Amortized: everything the writer did, including the final flush, spread over the runs.
    amortized = (sum(times["duckdb"]) + flush) / sum(times["noop"]) - 1
    return {
        "noop_ms": noop * 1e3,
        "duckdb_ms": duck * 1e3,
        "overhead_pct": (duck / noop - 1) * 100,
        "keep_ms": keep * 1e3,
        "keep_overhead_pct": (keep / noop - 1) * 100,
        "flush_after_ms": flush * 1e3,
        "noop_alone_ms": solo * 1e3,
        "overhead_vs_alone_pct": (duck / solo - 1) * 100,
        "amortized_vs_alone_pct": ((sum(times["duckdb"]) + flush) / (solo * repeat) - 1) * 100,
        "amortized_overhead_pct": amortized * 100,
        "runs": repeat,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "spans": args.spans,
    }
    print(f"# trace store benchmark: {args.spans:,} spans on {report['machine']}")
    spans = make_spans(args.spans)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        ingest = {}
        for redact in (True, False):
            tag = "redacted" if redact else "verbatim"
            ingest[f"duckdb {tag}"], cpu = duckdb_ingest(d / f"duck-{tag}.duckdb", spans, redact)
            report[f"cpu_us_per_span {tag}"] = cpu
            ingest[f"sqlite {tag}"], lite_engine = sqlite_ingest(d / f"lite-{tag}.sqlite", spans, redact)
            report[f"sqlite_engine_cpu_us_per_span {tag}"] = lite_engine
            print(
                f"ingest ({tag} attributes): DuckDB writer {ingest[f'duckdb {tag}']:>10,.0f} spans/s   "
                f"SQLite {ingest[f'sqlite {tag}']:>10,.0f} spans/s   ratio "
                f"{ingest[f'duckdb {tag}'] / ingest[f'sqlite {tag}']:.1f}x"
            )
            ceiling = 1e6 / (cpu["end_span"] + cpu["convert"])
            print(
                f"  CPU per span: end_span {cpu['end_span']:.2f} us + convert {cpu['convert']:.2f} us "
                f"(both hold the GIL) | insert {cpu['insert']:.2f} us (DuckDB, off the GIL) -> "
                f"ceiling on two idle cores ~{ceiling:,.0f} spans/s"
            )
            print(
                f"  storage engines alone (CPU per span): SQLite executemany+commit {lite_engine:.2f} us, "
                f"DuckDB insert {cpu['insert']:.2f} us -> {lite_engine / cpu['insert']:.1f}x"
            )
        report["ingest_spans_per_s"] = ingest
        chunks = conversion_by_chunk(spans, args.repeat)
        report["convert_us_per_span_by_chunk"] = chunks
        print(
            "conversion of one 122,880-span batch (redacted, CPU): "
            + ", ".join(f"chunks of {size:,}: {us:.2f} us/span" for size, us in chunks.items())
        )
        queries = {}
        store = TraceStore(d / "duck-redacted.duckdb")
        lite = sqlite3.connect(d / "lite-redacted.sqlite")
        for name in DUCK_QUERIES:
            tq, duck_rows = timed(lambda n=name: store.arrow(DUCK_QUERIES[n]).to_pylist(), args.repeat)
            ts, lite_rows = timed(lambda n=name: lite.execute(SQLITE_QUERIES[n]).fetchall(), args.repeat)
            assert len(duck_rows) == len(lite_rows), name
            queries[name] = {"duckdb_ms": tq * 1e3, "sqlite_ms": ts * 1e3, "ratio": ts / tq}
            print(
                f"query {name:<22} DuckDB {tq * 1e3:8.1f} ms   SQLite {ts * 1e3:8.1f} ms   "
                f"ratio {ts / tq:6.1f}x"
            )
        report["queries"] = queries
        store.close()
        lite.close()
        assert not set(VIEWS) - {"node_latency", "model_calls", "rail_violation_rates", "slowest_runs"}
        overhead = executor_overhead(1000, args.repeat * 6, d / "exec.duckdb")
        if overhead is None:
            print("executor overhead: workbench.runtime not available")
        else:
            print(
                f"executor, 1,000-node chain, median of {overhead['runs']} runs: no-op tracer "
                f"{overhead['noop_ms']:.1f} ms, DuckDB writer {overhead['duckdb_ms']:.1f} ms -> overhead "
                f"{overhead['overhead_pct']:+.1f}%; amortized with the final flush "
                f"({overhead['flush_after_ms']:.1f} ms) {overhead['amortized_overhead_pct']:+.1f}%"
            )
            print(
                f"  a tracer that only keeps each span (recording's floor) {overhead['keep_ms']:.1f} ms: "
                f"{overhead['keep_overhead_pct']:+.1f}% over no-op; the writer beyond keeping: "
                f"{(overhead['duckdb_ms'] / overhead['keep_ms'] - 1) * 100:+.1f}%"
            )
            print(
                f"  against no-op runs alone (no writer thread alive) {overhead['noop_alone_ms']:.1f} ms: "
                f"overhead {overhead['overhead_vs_alone_pct']:+.1f}%, amortized "
                f"{overhead['amortized_vs_alone_pct']:+.1f}%"
            )
            report["executor_1000_nodes"] = overhead
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
