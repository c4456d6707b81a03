"""``TraceStore``: the read side of the trace database (SQL, DataFrames, exports).

A store reads either the file directly (read-only; possible only while no process
writes it), an open writer's connection in this process (``TraceWriter.store()``), or a
running sink over HTTP (``TraceStore.remote(url, token)``), since DuckDB lets no other
process read a file one process is writing. Every method goes through ``arrow()``, so the
three behave the same.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from workbench.processes import pid_alive
from workbench.spans import Span, SpanEvent

from .convert import DECODE_STEP_EVENT, _opt_int
from .db import TraceStoreError, default_db_path, open_database, resolve_key
from .schema import SCHEMA_VERSION, TABLES, current_version

if TYPE_CHECKING:  # pandas is needed only by whoever asks for a DataFrame
    import pandas as pd

    from workbench.runtime.replay import ModelAnswers

__all__ = ["TraceStore", "mark_incomplete"]

_RUN_FILTER = " WHERE trace_id IN (SELECT trace_id FROM runs WHERE run_id IN (SELECT unnest(?::VARCHAR[])))"
_SPAN_FILTER = " WHERE span_id IN (SELECT unnest(?::VARCHAR[]))"


class TraceStore:
    """Queries over a trace database; every result is a pandas DataFrame (or Arrow table).

    ``TraceStore(path)`` opens the file read-only (``key``/``key_file`` for an encrypted
    one); ``TraceStore.remote(url, token)`` asks a running sink instead.
    """

    def __init__(
        self,
        db_path: str | Path | None = None,
        *,
        key: str | None = None,
        key_file: str | Path | None = None,
        connection: duckdb.DuckDBPyConnection | None = None,
        path: str | Path | None = None,
    ) -> None:
        self.path = Path(path or db_path or default_db_path())
        self._remote: tuple[str, str | None] | None = None
        if connection is None:
            connection = open_database(self.path, key=resolve_key(key, key_file), read_only=True)
            version = current_version(connection)
            if version != SCHEMA_VERSION:
                connection.close()
                raise TraceStoreError(
                    f"trace database {self.path} has schema version {version}, this workbench reads "
                    f"{SCHEMA_VERSION}: open it once for writing (any `workbench run`) to migrate it"
                )
        self._con: duckdb.DuckDBPyConnection | None = connection

    @classmethod
    def remote(cls, url: str, token: str | None = None) -> TraceStore:
        """A store answered by a running sink at ``url`` (its base URL or ``.../v1/traces``)."""
        store = cls.__new__(cls)
        base = url.split("/v1/")[0].rstrip("/")
        store.path = Path(base)
        store._con = None
        store._remote = (base + "/v1/query", token)
        return store

    def close(self) -> None:
        """Release the file (a store from ``writer.store()`` only closes its cursor)."""
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> TraceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- SQL ---------------------------------------------------------------------------
    def arrow(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        """Run ``sql`` (with ``?`` parameters) and return an Arrow table."""
        if self._remote is not None:
            return _remote_query(self._remote[0], self._remote[1], sql, list(params or []))
        if self._con is None:
            raise TraceStoreError("this trace store is closed")
        try:
            return self._con.execute(sql, list(params) if params else None).to_arrow_table()
        except duckdb.Error as exc:
            raise TraceStoreError(f"query failed: {str(exc).splitlines()[0]}") from None

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Run ``sql`` and return a DataFrame (tables and views: see ``docs/traces.md``)."""
        return self.arrow(sql, params).to_pandas()

    # -- the usual questions -----------------------------------------------------------
    def runs(self, limit: int | None = 100, *, flow: str | None = None) -> pd.DataFrame:
        """Runs, newest first, with ``duration_ms`` and ``spans`` (span count).

        A ``running`` run whose process is gone reads ``incomplete``.
        """
        where = " WHERE r.flow_name = ?" if flow else ""
        sql = (
            "SELECT r.run_id, r.flow_name, r.status, r.start_ns, r.end_ns, "
            "(r.end_ns - r.start_ns) / 1e6 AS duration_ms, "
            "(SELECT count(*) FROM spans s WHERE s.trace_id = r.trace_id) AS spans, "
            "r.trace_id, r.flow_hash, r.inputs, r.outputs, r.status_message, r.pid, r.host, r.service "
            f"FROM runs r{where} ORDER BY r.start_ns DESC" + (f" LIMIT {int(limit)}" if limit else "")
        )
        df = self.query(sql, [flow] if flow else None)
        mark_incomplete(df)
        return df

    def resolve_run(self, run_id: str) -> str:
        """The full run id for ``run_id`` or a unique prefix of it (``latest`` for the newest)."""
        if run_id == "latest":
            rows = self.arrow("SELECT run_id FROM runs ORDER BY start_ns DESC LIMIT 1").to_pylist()
        else:
            rows = self.arrow(
                "SELECT run_id FROM runs WHERE starts_with(run_id, ?) LIMIT 2", [run_id]
            ).to_pylist()
        if not rows:
            raise TraceStoreError(f"no run {run_id!r} in the trace database")
        if len(rows) > 1:
            raise TraceStoreError(f"run id prefix {run_id!r} is ambiguous: give more characters")
        return str(rows[0]["run_id"])

    def spans(self, run_id: str | None = None, *, trace_id: str | None = None) -> pd.DataFrame:
        """Spans of one run (or trace) in start order, with ``duration_ms`` and ``offset_ms``."""
        if run_id is not None:
            trace = self.arrow("SELECT trace_id FROM runs WHERE run_id = ?", [self.resolve_run(run_id)])
            trace_id = trace.column(0)[0].as_py()
        if trace_id is None:
            raise TraceStoreError("spans() needs a run_id or a trace_id")
        return self.query(
            "SELECT *, duration_ns / 1e6 AS duration_ms, "
            "(start_ns - min(start_ns) OVER ()) / 1e6 AS offset_ms "
            "FROM spans WHERE trace_id = ? ORDER BY start_ns, span_id",
            [trace_id],
        )

    def model_answers(self, run_id: str, *, live: bool = False) -> ModelAnswers:
        """Every model answer run ``run_id`` recorded (its ``workbench.model.answer`` events), per
        node in call order, with the run's flow name and inputs: what ``replay=`` takes.

        ``live``: the replay asks the real model where the recording has no answer.
        """
        # imported here: reading traces needs no runtime (`workbench traces` starts faster)
        from workbench.runtime.replay import ANSWER_EVENT, ModelAnswers, RecordedAnswer

        rid = self.resolve_run(run_id)
        sql = "SELECT trace_id, flow_name, inputs FROM runs WHERE run_id = ?"
        (run,) = self.arrow(sql, [rid]).to_pylist()
        answers: dict[str, list[RecordedAnswer]] = {}
        for row in self.arrow(
            "SELECT attributes FROM span_events WHERE trace_id = ? AND name = ? ORDER BY time_ns, seq",
            [run["trace_id"], ANSWER_EVENT],
        ).to_pylist():
            attributes = json.loads(row["attributes"] or "{}")
            key = str(attributes.get("workbench.node.key"))
            answers.setdefault(key, []).append(RecordedAnswer.from_event(attributes))
        inputs = json.loads(run["inputs"]) if run["inputs"] else {}
        return ModelAnswers(answers, run_id=rid, flow=run["flow_name"], inputs=inputs, live=live)

    def _per_run(self, table: str, run_id: str | None, order: str) -> pd.DataFrame:
        if run_id is None:
            return self.query(f"SELECT * FROM {table} ORDER BY {order}")
        return self.query(
            f"SELECT * FROM {table}{_RUN_FILTER} ORDER BY {order}", [[self.resolve_run(run_id)]]
        )

    def events(self, run_id: str | None = None) -> pd.DataFrame:
        """Span events (other than rail checks' and decode steps' own tables)."""
        return self._per_run("span_events", run_id, "time_ns")

    def rail_verdicts(self, run_id: str | None = None) -> pd.DataFrame:
        """Rail checks: rail, port, verdict (pass|fail), microseconds."""
        return self._per_run("rail_verdicts", run_id, "time_ns")

    def decode_steps(self, run_id: str | None = None) -> pd.DataFrame:
        """Per-token decode steps: token, logprob, allowed-token count (after the rails, and
        ``schema_allowed`` before them), rails that narrowed it, tokens they ``removed``."""
        return self._per_run("decode_steps", run_id, "span_id, step")

    def node_latency(self) -> pd.DataFrame:
        """p50/p95/p99 latency per node name (milliseconds)."""
        return self.query("SELECT * FROM node_latency ORDER BY p95_ms DESC")

    def model_calls(self) -> pd.DataFrame:
        """Model calls with token counts and tokens/s."""
        return self.query("SELECT * FROM model_calls")

    def rail_violation_rates(self) -> pd.DataFrame:
        """Checks, violations and violation rate per rail and port."""
        return self.query("SELECT * FROM rail_violation_rates ORDER BY violation_rate DESC")

    def slowest_runs(self, limit: int = 10) -> pd.DataFrame:
        """The slowest finished runs."""
        return self.query(f"SELECT * FROM slowest_runs LIMIT {int(limit)}")

    def drops(self) -> pd.DataFrame:
        """Spans that writers could not store, by time and reason (empty is good)."""
        return self.query("SELECT * FROM drops ORDER BY time_ns")

    # -- export ------------------------------------------------------------------------
    def export_parquet(self, out_dir: str | Path, run_ids: Sequence[str] | None = None) -> list[Path]:
        """One Parquet file per table in ``out_dir`` (all runs, or only ``run_ids``)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        ids = [self.resolve_run(r) for r in run_ids] if run_ids else None
        written = []
        for table in TABLES:
            if table in ("drops", "resources"):
                sql, params = f"SELECT * FROM {table}", None
            elif table == "runs":
                sql = "SELECT * FROM runs" + (" WHERE run_id IN (SELECT unnest(?::VARCHAR[]))" if ids else "")
                params = [ids] if ids else None
            else:
                sql = f"SELECT * FROM {table}" + (_RUN_FILTER if ids else "")
                params = [ids] if ids else None
            target = out / f"{table}.parquet"
            pq.write_table(self.arrow(sql, params), target)
            written.append(target)
        return written

    def load_spans(
        self, run_ids: Sequence[str] | None = None, *, span_ids: Sequence[str] | None = None
    ) -> list[tuple[dict[str, Any], list[Span]]]:
        """Stored spans rebuilt as ``Span`` objects (events and decode steps included), by resource.

        ``run_ids``: only these runs' traces; ``span_ids``: only these spans (what a writer
        forwards after each batch); neither: everything.
        """
        ids = [self.resolve_run(r) for r in run_ids] if run_ids else None
        flt, params = (_RUN_FILTER, [ids]) if ids else ("", None)
        if span_ids is not None:
            flt, params = _SPAN_FILTER, [list(span_ids)]
        events: dict[str, list[SpanEvent]] = {}
        for row in self.arrow(
            f"SELECT span_id, name, time_ns, attributes FROM span_events{flt} ORDER BY span_id, seq", params
        ).to_pylist():
            events.setdefault(row["span_id"], []).append(
                SpanEvent(row["name"], row["time_ns"], json.loads(row["attributes"] or "{}"))
            )
        for row in self.arrow(f"SELECT * FROM decode_steps{flt} ORDER BY span_id, step", params).to_pylist():
            attrs = {
                f"workbench.decode.{k}": row[k]
                for k in ("step", "token", "token_id", "logprob", "allowed", "rails", "schema_allowed")
                if row[k] is not None
            }
            if row["removed"] is not None:
                attrs["workbench.decode.removed"] = json.loads(row["removed"])
            events.setdefault(row["span_id"], []).append(SpanEvent(DECODE_STEP_EVENT, row["time_ns"], attrs))
        resources = {
            r["resource_id"]: json.loads(r["attributes"] or "{}")
            for r in self.arrow("SELECT * FROM resources").to_pylist()
        }
        groups: dict[str | None, list[Span]] = {}
        for row in self.arrow(f"SELECT * FROM spans{flt} ORDER BY start_ns", params).to_pylist():
            evs = sorted(events.get(row["span_id"], []), key=lambda e: e.time_ns)
            groups.setdefault(row["resource_id"], []).append(
                Span(
                    name=row["name"],
                    trace_id=row["trace_id"],
                    span_id=row["span_id"],
                    parent_id=row["parent_id"],
                    start_ns=row["start_ns"],
                    kind=row["kind"],
                    attributes=json.loads(row["attributes"] or "{}"),
                    events=evs,
                    end_ns=row["end_ns"],
                    status=row["status"],
                    status_message=row["status_message"],
                )
            )
        return [(resources.get(rid, {}) if rid else {}, spans) for rid, spans in groups.items()]

    def export_otlp_json(self, path: str | Path, run_ids: Sequence[str] | None = None) -> Path:
        """Write the spans as one OTLP/JSON export request (readable by collectors and viewers)."""
        from .otlp import encode_json

        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(encode_json(self.load_spans(run_ids))))
        return target

    def forward_otlp(
        self,
        url: str,
        run_ids: Sequence[str] | None = None,
        *,
        span_ids: Sequence[str] | None = None,
        headers: dict[str, str] | None = None,
        batch: int = 2000,
        timeout: float = 10.0,
        retries: int = 0,
    ) -> int:
        """POST the spans (``load_spans``' selection) as OTLP/protobuf to a collector's
        ``/v1/traces``, each request tried ``1 + retries`` times; returns spans sent."""
        import tenacity  # on first use: it imports tornado where that is installed (~0.1 s)

        from .otlp import encode_protobuf

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(retries + 1),
            wait=tenacity.wait_exponential(multiplier=0.2, max=5.0) + tenacity.wait_random(0, 0.2),
            retry=tenacity.retry_if_exception_type(TraceStoreError),
            reraise=True,
        )
        sent = 0
        for resource, spans in self.load_spans(run_ids, span_ids=span_ids):
            for i in range(0, len(spans), batch):
                chunk = spans[i : i + batch]
                body = encode_protobuf([(resource, chunk)])
                retrying(post_otlp, url, body, headers=headers, timeout=timeout)
                sent += len(chunk)
        return sent


def post_otlp(url: str, body: bytes, *, headers: dict[str, str] | None = None, timeout: float = 10.0) -> None:
    """POST one OTLP/protobuf request; ``TraceStoreError`` with the collector's answer on failure."""
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/x-protobuf", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise TraceStoreError(
            f"collector {url} refused the spans: HTTP {exc.code} {exc.read()[:200]!r}"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        raise TraceStoreError(f"cannot reach collector {url}: {getattr(exc, 'reason', exc)}") from None


def _remote_query(url: str, token: str | None, sql: str, params: list[Any]) -> pa.Table:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps({"sql": sql, "params": params}).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return ipc.open_stream(response.read()).read_all()
    except urllib.error.HTTPError as exc:
        raise TraceStoreError(f"trace sink at {url}: {exc.read().decode(errors='replace')[:500]}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise TraceStoreError(
            f"cannot reach the trace sink at {url}: {getattr(exc, 'reason', exc)}"
        ) from None


def mark_incomplete(runs: pd.DataFrame) -> None:
    """In a frame of runs (``status``, ``pid``, ``host``), a ``running`` run whose process is
    gone reads ``incomplete`` (changed in place)."""
    if not len(runs):
        return
    dead = [
        status == "running"
        and not pid_alive(_opt_int(pid), host)  # a pid of NaN/pandas.NA is None: unknown, alive
        for status, pid, host in zip(runs["status"], runs["pid"], runs["host"])
    ]
    runs.loc[dead, "status"] = "incomplete"
