"""``TraceWriter``: the ``Tracer`` that owns the DuckDB file and writes Arrow batches.

Producers (the executor, the OTLP receiver) only append to a bounded in-memory queue; one
background thread drains it, converts the spans to Arrow tables and inserts each batch in
one transaction (so a crash loses at most the batch in flight, never a committed one).

Nothing is dropped silently. A full queue first pushes back: the producer waits up to
``block_timeout`` seconds for room. Only if the writer cannot keep up even then (or the
disk refuses writes) are spans dropped; every drop is counted in ``stats``, written to the
``drops`` table as soon as the file accepts writes again, and warned about once.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import logging
import os
import queue
import socket
import threading
import time
import warnings
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import duckdb

from workbench.processes import pid_alive
from workbench.spans import Span, _BaseTracer

from .convert import Batch, ForeignSpans, Origin, build_batch, run_start, spans_insert
from .db import TraceStoreError, default_db_path, open_database, resolve_key
from .redact import Redactor, RegexRedactor
from .schema import migrate
from .store import TraceStore

__all__ = ["DEFAULT_REDACTOR", "TraceWriter", "WriterStats"]

log = logging.getLogger("workbench.traces")

DEFAULT_REDACTOR: Redactor = RegexRedactor()
_UNSET: Any = object()


class _Flush:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class WriterStats:
    """Counters of one writer (read them any time; they only grow)."""

    def __init__(self) -> None:
        self.written = 0
        self.batches = 0
        self.dropped = 0
        self.forwarded = 0  # spans sent on to the ``forward`` collector
        self.forward_failed = 0  # spans stored here but not forwarded (the collector refused or was away)
        self.problems: collections.deque[str] = collections.deque(maxlen=20)

    def as_dict(self) -> dict[str, Any]:
        """The counters as a plain dict (``problems`` newest last)."""
        return {
            "written": self.written,
            "batches": self.batches,
            "dropped": self.dropped,
            "forwarded": self.forwarded,
            "forward_failed": self.forward_failed,
            "problems": list(self.problems),
        }


class TraceWriter(_BaseTracer):
    """A ``Tracer`` that stores spans in the DuckDB trace file it owns (context manager).

    ``db_path``: the file (default ``.workbench/traces.duckdb``); ``key``/``key_file``:
    encrypt at rest (else ``WORKBENCH_TRACES_KEY``/``_FILE``); ``redactor``: applied before
    storing (default regex redaction, ``None`` to store text verbatim); ``max_queue``:
    spans held in memory before producers are pushed back; ``block_timeout``: how long a
    producer waits for room before a span is dropped (and counted). ``interval``/``max_delay``:
    while spans keep arriving the writer waits (so it does not compete with the producer
    for the GIL) until a batch of ``batch_size`` is full, the producer pauses for
    ``interval`` seconds, ``flush()`` is called, or the oldest span waited ``max_delay``. A run's
    ``running`` row (its start) is committed within about ``interval``, the starts of that
    window in one transaction. ``forward``: an OTLP/HTTP ``/v1/traces`` URL that every committed
    batch is also sent to, as stored (redacted), from a thread of its own (``forward_headers``
    go with each request); a collector that refuses or is away costs the run nothing: the
    spans stay here and are counted in ``stats.forward_failed``.
    """

    def __init__(
        self,
        db_path: str | Path | None = None,
        *,
        key: str | None = None,
        key_file: str | Path | None = None,
        redactor: Redactor | None = _UNSET,
        max_queue: int = 250_000,
        batch_size: int = 122_880,
        interval: float = 0.05,
        max_delay: float = 1.0,
        block_timeout: float = 5.0,
        service: str = "workbench",
        threads: int | None = None,
        forward: str | None = None,
        forward_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.path = Path(db_path) if db_path is not None else default_db_path()
        self._con = open_database(self.path, key=resolve_key(key, key_file))
        # DuckDB's own threads compete with the producer and the converter for the cores:
        # on 2 cores an insert with 1 thread measured ~2x faster than with 2.
        self._con.execute(f"SET threads = {int(threads or max(1, (os.cpu_count() or 2) // 2))}")
        try:
            migrate(self._con)
        except (duckdb.Error, RuntimeError) as exc:
            self._con.close()
            raise TraceStoreError(f"cannot prepare trace database {self.path}: {exc}") from None
        self.redactor = DEFAULT_REDACTOR if redactor is _UNSET else redactor
        self.stats = WriterStats()
        self._origin = Origin.from_resource(
            {"service.name": service, "process.pid": os.getpid(), "host.name": socket.gethostname()}
        )
        self._max_queue = max(1, max_queue)
        self._batch_size = max(1, batch_size)
        self._interval = interval
        self._max_delay = max_delay
        self._urgent = False
        self._block_timeout = block_timeout
        self._queue: collections.deque[object] = collections.deque()
        self._starts: collections.deque[tuple[float, object]] = collections.deque()  # (queued at, RunStart)
        # Stored spans wait here to be freed by the producer, one per span it ends (see _export).
        self._grave: collections.deque[object] = collections.deque()
        self._grave_seen, self._grave_since = 0, 0.0  # its size when last looked at, and when
        self._wake = threading.Event()
        self._lock = threading.Lock()  # guards the drop counters and the connection's users
        self._pending_drops = 0
        self._warned = False
        self._failing = False
        self._closing = False
        self._closed = False
        self._last_reap = 0.0
        self.reap_incomplete()
        self._ready: queue.Queue[tuple[Batch | None, list[_Flush]] | None] = queue.Queue(maxsize=2)
        self._thread = threading.Thread(target=self._run, name="workbench-trace-convert", daemon=True)
        self._inserter = threading.Thread(target=self._run_insert, name="workbench-trace-insert", daemon=True)
        self.forward = forward
        self._forward_headers = dict(forward_headers or {})
        self._forwarding: queue.Queue[list[str] | None] | None = None
        if forward:
            self._forwarding = queue.Queue(maxsize=64)
            self._forwarder = threading.Thread(
                target=self._run_forward, name="workbench-trace-forward", daemon=True
            )
            self._forwarder.start()
        self._thread.start()
        self._inserter.start()
        # Flush on exit: a weak reference so an abandoned writer can still be collected.
        ref = weakref.ref(self)

        def close_at_exit() -> None:
            w = ref()
            if w is not None:
                w.close()

        self._atexit = close_at_exit
        atexit.register(self._atexit)

    # -- Tracer protocol -------------------------------------------------------------
    def start_span(
        self,
        name: str,
        *,
        parent: Span | None = None,
        kind: str = "INTERNAL",
        attributes: dict[str, Any] | None = None,
    ) -> Span:
        """Open a span; a run's root span (``workbench.run.id``, no parent) is recorded at once."""
        span = super().start_span(name, parent=parent, kind=kind, attributes=attributes)
        if parent is None and attributes:
            rs = run_start(span)
            if rs is not None:
                # Never dropped and committed within ``interval``: it is how a crash mid-run
                # shows. Its own queue, so writing it does not also convert the spans queued
                # before it (the previous run's) while this run is busy; the starts of short
                # runs in one ``interval`` share a transaction (each costs DuckDB ~1-4 ms).
                if self._closing:
                    self._drop(1, "span ended after the trace writer closed")
                else:
                    self._starts.append((time.monotonic(), rs))
        return span

    def _export(self, span: Span) -> None:
        # The hot path of every end_span: one append; the checks of _put only when needed.
        q = self._queue
        if len(q) < self._max_queue and not self._closing:
            q.append(span)
            if len(q) >= self._batch_size:
                self._wake.set()
        else:
            self._put(span)
        # Free one already-stored span for each new one. Freed here, its memory is what the
        # producer's next allocations reuse; freed in bulk by the writer thread, whole
        # allocator arenas went back to the OS and every run paid for fresh memory (a run of
        # 1,000 trivial nodes: +13-25% against +5% this way).
        if self._grave:
            try:  # noqa: SIM105 - contextlib.suppress costs more than the rest of this method
                self._grave.popleft()
            except IndexError:  # the writer thread emptied it meanwhile
                pass

    def record(self, span: Span) -> None:
        """Store an already-ended span as it is, its times kept (profiler events, imports)."""
        self._put(span)

    def submit(self, spans: list[Span], origin: Origin) -> bool:
        """Queue ended spans received from elsewhere; False when dropped (already counted)."""
        return self._put(ForeignSpans(spans, origin), weight=len(spans))

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every span ended before this call is committed; False on timeout."""
        if self._closed or not self._thread.is_alive():
            return not self._queue and not self._starts
        marker = _Flush()
        self._queue.append(marker)
        self._urgent = True
        self._wake.set()
        return marker.done.wait(timeout)

    def close(self, timeout: float = 60.0) -> None:
        """Flush, stop the writer thread and close the file (idempotent)."""
        if self._closed:
            return
        self._closing = True
        self.flush(timeout)
        self._closed = True
        self._wake.set()
        self._thread.join(timeout)
        self._inserter.join(timeout)
        self._grave.clear()
        if self._forwarding is not None:  # what was committed is still sent, within the timeout
            self._forwarding.put(None)
            self._forwarder.join(timeout)
        with contextlib.suppress(Exception):
            atexit.unregister(self._atexit)
        with self._lock:
            if self._pending_drops:
                with contextlib.suppress(duckdb.Error):
                    self._insert(Batch({}, None, 0))
            with contextlib.suppress(duckdb.Error):
                self._con.close()
        if self.stats.dropped:
            log.warning(
                "trace writer for %s dropped %d spans in total (see the drops table)",
                self.path,
                self.stats.dropped,
            )

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def store(self) -> TraceStore:
        """A ``TraceStore`` reading this writer's file in this process (after a flush)."""
        self.flush()
        return TraceStore(connection=self.reader(), path=self.path)

    def reader(self) -> duckdb.DuckDBPyConnection:
        """A new cursor on this writer's database for reads in this process (close it after)."""
        if self._closed:
            raise TraceStoreError(f"the trace writer for {self.path} is closed")
        return self._cursor()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            cursor = self._con.cursor()
        cursor.execute("USE wb")
        return cursor

    def reap_incomplete(self) -> int:
        """Mark runs whose writing process is gone as ``incomplete``; returns how many."""
        with self._lock:
            rows = self._con.execute("SELECT run_id, pid, host FROM runs WHERE status = 'running'").fetchall()
            dead = [r[0] for r in rows if not pid_alive(r[1], r[2])]
            if dead:
                self._con.execute(
                    "UPDATE runs SET status = 'incomplete' WHERE run_id IN (SELECT unnest(?::VARCHAR[]))",
                    [dead],
                )
        self._last_reap = time.monotonic()
        return len(dead)

    # -- queue -----------------------------------------------------------------------
    def _put(self, item: object, *, bounded: bool = True, weight: int = 1) -> bool:
        q = self._queue
        if self._closing:
            self._drop(weight, "span ended after the trace writer closed")
            return False
        if bounded and len(q) >= self._max_queue and not self._make_room():
            self._drop(weight, "queue full" if not self._failing else "trace file not writable")
            return False
        q.append(item)
        if len(q) >= self._batch_size:
            self._wake.set()
        return True

    def _make_room(self) -> bool:
        """Back-pressure: wait (bounded) for the writer to drain; never when it is failing."""
        if self._failing or not self._thread.is_alive():
            return False
        self._wake.set()
        deadline = time.monotonic() + self._block_timeout
        while len(self._queue) >= self._max_queue:
            if time.monotonic() > deadline or self._failing:
                return False
            time.sleep(0.0005)
        return True

    def _drop(self, n: int, reason: str) -> None:
        with self._lock:
            self.stats.dropped += n
            self._pending_drops += n
            self._drop_reason = reason
        if not self._warned:
            self._warned = True
            message = (
                f"trace writer for {self.path} dropped spans ({reason}); they are counted in the drops table"
            )
            log.warning(message)
            warnings.warn(message, RuntimeWarning, stacklevel=3)

    # -- writer threads --------------------------------------------------------------
    # Two stages: the converter builds Arrow batches (Python, holds the GIL) while the
    # inserter runs DuckDB (releases the GIL), so the two overlap on two cores.
    def _run(self) -> None:
        q = self._queue
        full = min(self._batch_size, self._max_queue)
        starts = self._starts
        seen, seen_at, since = 0, 0.0, 0.0
        try:
            while True:
                self._wake.wait(self._interval)
                self._wake.clear()
                self._bury()
                if starts and time.monotonic() - starts[0][0] >= self._interval * 0.9:
                    self._convert_starts()
                # Stay off the producer's back while it is busy (the GIL is shared): let the
                # batch grow while spans keep arriving, and write when the producer pauses,
                # a batch is full, a flush asks, or the oldest span waited ``max_delay``.
                n = len(q)
                if n and n < full and not self._urgent and not self._closed:
                    now = time.monotonic()
                    if seen == 0:
                        since = now
                    # A pause is a whole ``interval`` without a new span (an early wake-up, by a
                    # run start, says nothing about the producer).
                    if (n != seen or now - seen_at < self._interval) and now - since < self._max_delay:
                        if n != seen:
                            seen, seen_at = n, now
                        continue
                seen = 0
                self._urgent = False
                if starts:  # those put before a flush marker must be committed before it
                    self._convert_starts()
                while q:
                    n = min(len(q), self._batch_size)
                    items = [q.popleft() for _ in range(n)]
                    self._convert(items)
                if self._closed and not q and not starts:
                    return
        finally:
            self._ready.put(None)

    def _run_insert(self) -> None:
        while True:
            job = self._ready.get()
            if job is None:
                return
            batch, markers = job
            if batch is not None:
                self._commit(batch)
            for m in markers:
                m.done.set()
            if time.monotonic() - self._last_reap > 10.0:
                with contextlib.suppress(Exception):
                    self.reap_incomplete()

    def _convert(self, items: list[object]) -> None:
        markers = [i for i in items if type(i) is _Flush]
        if markers:
            items = [i for i in items if type(i) is not _Flush]
        batch = None
        if items:
            try:
                batch = build_batch(items, self._origin, self.redactor)
            except Exception as exc:  # one unencodable span must not cost the whole batch
                good = self._isolate(items, exc)
                if good:
                    with contextlib.suppress(Exception):
                        batch = build_batch(good, self._origin, self.redactor)
        self._ready.put((batch, markers))
        # Only local spans wait to be freed by the producer (only _export frees): foreign
        # spans and run starts go now. Bounded: what the producer did not take goes now too.
        grave = self._grave
        grave.extend([i for i in items if type(i) is Span])
        self._trim_grave(len(grave) - self._batch_size)
        self._grave_seen, self._grave_since = len(grave), time.monotonic()

    def _convert_starts(self) -> None:
        """Convert every queued run start (one transaction for the lot)."""
        starts = self._starts
        self._convert([starts.popleft()[1] for _ in range(len(starts))])

    def _bury(self) -> None:
        """Free stored spans nobody is freeing: a slice per wake while producers stay idle
        (``_export`` frees them otherwise), and at once beyond one batch (bounded memory)."""
        size, now = len(self._grave), time.monotonic()
        if size < self._grave_seen or not size:  # producers are taking them (or none are left)
            self._grave_seen, self._grave_since = size, now
        elif now - self._grave_since >= self._interval:  # none taken for a whole interval
            self._trim_grave(min(size, 8192))
            self._grave_seen, self._grave_since = len(self._grave), now

    def _trim_grave(self, n: int) -> None:
        """Free up to ``n`` of the oldest stored spans (producers may be taking some too)."""
        grave = self._grave
        try:
            for _ in range(n):
                grave.popleft()
        except IndexError:
            pass

    def _isolate(self, items: list[object], exc: Exception) -> list[object]:
        """The items that convert on their own; the others are dropped, counted and reported."""
        good, bad = [], 0
        for item in items:
            try:
                build_batch([item], self._origin, self.redactor)
            except Exception:
                bad += len(item.spans) if type(item) is ForeignSpans else 1
            else:
                good.append(item)
        self._problem(f"dropped {bad} spans that could not be stored: {exc!r}")
        self._drop(bad, "a span could not be converted")
        return good

    def _commit(self, batch: Batch) -> None:
        import tenacity  # on first use: it imports tornado where that is installed (~0.1 s)

        from workbench.runtime.retry import outcome_error

        def failed(state: tenacity.RetryCallState) -> None:
            error = (str(outcome_error(state)).splitlines() or [""])[0]
            self._problem(f"writing {batch.spans} spans to {self.path} failed: {error}")
            self._failing = True

        # Retry a first failure (a transient error); once failing, try each batch only once
        # so a run on a full disk is not slowed down by back-off sleeps.
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(1 if self._failing else 3),
            wait=tenacity.wait_exponential(multiplier=0.05, max=0.5) + tenacity.wait_random(0, 0.05),
            after=failed,
            reraise=True,
        )
        try:
            retrying(self._insert_locked, batch)
        except Exception:
            self._drop(batch.spans, "trace file not writable")
            return
        self._failing = False
        self.stats.written += batch.spans
        self.stats.batches += 1
        if self._forwarding is not None and "spans" in batch.tables:
            # span_id is a non-null string column (the schema says so; its type does not)
            span_ids = cast(list[str], batch.tables["spans"].column("span_id").to_pylist())
            self._queue_forward(span_ids)

    def _insert_locked(self, batch: Batch) -> None:
        with self._lock:
            self._insert(batch)

    def _insert(self, batch: Batch) -> None:
        """One transaction per batch; call with ``_lock`` held."""
        con = self._con
        con.execute("BEGIN TRANSACTION")
        try:
            for name, table in batch.tables.items():
                if name == "runs":
                    continue
                con.register("_wb_batch", table)
                if name == "spans":
                    # duration, the lifted columns and the batch-wide constants are computed
                    # here, by DuckDB, off the GIL: less Python work per span in the converter.
                    constants = batch.span_constants
                    con.execute(spans_insert("_wb_batch", list(constants)), list(constants.values()))
                else:
                    # Resources repeat across batches: the first copy stays.
                    conflict = " ON CONFLICT DO NOTHING" if name == "resources" else ""
                    con.execute(f"INSERT INTO {name} SELECT * FROM _wb_batch{conflict}")
                con.unregister("_wb_batch")
            if batch.run_starts is not None:
                con.register("_wb_batch", batch.run_starts)
                con.execute("INSERT INTO runs SELECT * FROM _wb_batch ON CONFLICT DO NOTHING")
                con.unregister("_wb_batch")
            if "runs" in batch.tables:
                con.register("_wb_batch", batch.tables["runs"])
                con.execute("INSERT OR REPLACE INTO runs SELECT * FROM _wb_batch")
                con.unregister("_wb_batch")
            pending = self._pending_drops
            if pending:
                con.execute(
                    "INSERT INTO drops VALUES (?, ?, ?, ?)",
                    [time.time_ns(), os.getpid(), pending, getattr(self, "_drop_reason", "")],
                )
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise
        self._pending_drops -= pending

    # -- forwarding --------------------------------------------------------------------
    def _queue_forward(self, span_ids: list[str]) -> None:
        assert self._forwarding is not None  # only called when forwarding
        try:
            self._forwarding.put_nowait(span_ids)
        except queue.Full:
            self.stats.forward_failed += len(span_ids)
            self._problem(f"not forwarding {len(span_ids)} spans to {self.forward}: 64 batches behind")

    def _run_forward(self) -> None:
        """Send each committed batch on, rebuilt from the file (so exactly what was stored)."""
        forwarding, forward = self._forwarding, self.forward
        if forwarding is None or forward is None:  # started only when both are set
            return
        while (span_ids := forwarding.get()) is not None:
            try:
                with contextlib.closing(self._cursor()) as cursor:
                    TraceStore(connection=cursor, path=self.path).forward_otlp(
                        forward, span_ids=span_ids, headers=self._forward_headers, retries=2
                    )
                self.stats.forwarded += len(span_ids)
            except Exception as exc:
                self.stats.forward_failed += len(span_ids)
                self._problem(f"forwarding {len(span_ids)} spans to {forward} failed: {exc}")

    def _problem(self, message: str) -> None:
        self.stats.problems.append(message)
        log.warning("%s", message)
