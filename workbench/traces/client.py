"""``SinkClient``: the ``Tracer`` for a process that does not own the trace file.

It batches ended spans and POSTs them as OTLP/protobuf to the sink that owns the file
(a background thread; the run never waits on the network). A run's root span is also sent
the moment it starts, as an open span (end time 0), so the sink records the run as
``running`` and can show it as ``incomplete`` if this process dies.

When the sink goes away mid-run the run goes on: the client retries briefly, then, if it
knows the database path, opens the file itself (the sink's exit released the lock) and
hands everything still pending to a local ``TraceWriter``. Only when that fails too are
spans dropped, counted in ``stats`` and warned about.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import http.client
import logging
import os
import socket
import threading
import urllib.parse
import warnings
import weakref
from dataclasses import replace
from pathlib import Path
from typing import Any

from workbench.spans import Span, _BaseTracer

from .convert import RUN_ID
from .db import TraceStoreError
from .otlp import encode_protobuf
from .writer import TraceWriter, WriterStats

__all__ = ["SinkClient"]

log = logging.getLogger("workbench.traces")


class _Flush:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class _SinkBusy(Exception):
    """The sink answered 429/502/503/504: worth sending again after a wait."""

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(f"HTTP {status}")


def _unreached(exc: BaseException) -> str:
    """Why a send failed, for ``stats.problems``."""
    return f"busy ({exc})" if isinstance(exc, _SinkBusy) else f"unreachable ({exc})"


class SinkClient(_BaseTracer):
    """A ``Tracer`` sending OTLP/HTTP to a trace sink (context manager).

    ``url``: the sink's ``/v1/traces``; ``token``: bearer token when the sink wants one;
    ``db_path``: the sink's database, for taking over the file if the sink goes away
    (``None``: no takeover); ``writer_opts``: passed to that fallback ``TraceWriter``.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        db_path: str | Path | None = None,
        service: str = "workbench",
        batch_size: int = 1000,
        interval: float = 0.1,
        max_queue: int = 100_000,
        timeout: float = 5.0,
        retries: int = 3,
        **writer_opts: Any,
    ) -> None:
        self.url = url
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise TraceStoreError(f"trace sink URL {url!r} is not an http(s) URL")
        self._parsed, self._host = parsed, parsed.hostname
        self._headers = {"Content-Type": "application/x-protobuf"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self.db_path = Path(db_path) if db_path is not None else None
        self._writer_opts = writer_opts
        self._resource = {
            "service.name": service,
            "process.pid": os.getpid(),
            "host.name": socket.gethostname(),
        }
        self._batch_size, self._interval, self._max_queue = batch_size, interval, max_queue
        self._timeout, self._retries = timeout, retries
        self.stats = WriterStats()
        self.fallback: TraceWriter | None = None
        self._conn: http.client.HTTPConnection | None = None
        self._queue: collections.deque[object] = collections.deque()
        self._wake = threading.Event()
        self._closed = False
        self._warned = False
        self._thread = threading.Thread(target=self._run, name="workbench-trace-client", daemon=True)
        self._thread.start()
        ref = weakref.ref(self)

        def close_at_exit() -> None:
            c = ref()
            if c is not None:
                c.close()

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
        """Open a span; a run's root span is announced to the sink at once (as an open span)."""
        span = super().start_span(name, parent=parent, kind=kind, attributes=attributes)
        if parent is None and RUN_ID in span.attributes:
            self._queue.append(replace(span, attributes=dict(span.attributes), events=[]))
        return span

    def _export(self, span: Span) -> None:
        if self._closed:
            self._drop(1, "span ended after the trace client closed")
        elif len(self._queue) >= self._max_queue:
            self._drop(1, "queue full (the sink is not keeping up)")
        else:
            self._queue.append(span)
            if len(self._queue) >= self._batch_size:
                self._wake.set()

    def record(self, span: Span) -> None:
        """Send an already-ended span as it is, its times kept (profiler events, imports)."""
        self._export(span)

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every span ended before this call is delivered (or dropped and counted)."""
        if not self._thread.is_alive():
            return not self._queue
        marker = _Flush()
        self._queue.append(marker)
        self._wake.set()
        return marker.done.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Deliver what is pending, stop the thread (idempotent)."""
        if self._closed:
            return
        self.flush(timeout)
        self._closed = True
        self._wake.set()
        self._thread.join(timeout)
        with contextlib.suppress(Exception):
            atexit.unregister(self._atexit)
        if self._conn is not None:
            self._conn.close()
        if self.fallback is not None:
            self.fallback.close()
        if self.stats.dropped:
            log.warning("trace client for %s dropped %d spans in total", self.url, self.stats.dropped)

    def __enter__(self) -> SinkClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- delivery --------------------------------------------------------------------
    def _drop(self, n: int, reason: str) -> None:
        self.stats.dropped += n
        if not self._warned:
            self._warned = True
            message = f"trace client dropped spans ({reason})"
            log.warning(message)
            warnings.warn(message, RuntimeWarning, stacklevel=3)

    def _problem(self, message: str) -> None:
        self.stats.problems.append(message)
        log.warning("%s", message)

    def _run(self) -> None:
        q = self._queue
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            while q:
                items = [q.popleft() for _ in range(min(len(q), self._batch_size))]
                markers = [i for i in items if type(i) is _Flush]
                spans: list[Span] = [i for i in items if type(i) is Span]
                if spans:
                    try:
                        self._deliver(spans)
                    except Exception as exc:  # e.g. opentelemetry-proto missing: report, never hang
                        self._problem(f"cannot send spans to {self.url}: {exc!r}")
                        self._drop(len(spans), "the trace client failed")
                for m in markers:
                    m.done.set()
            if self._closed and not q:
                return

    def _deliver(self, spans: list[Span]) -> None:
        if self.fallback is not None:
            self._to_fallback(spans)
            return
        import tenacity  # on first use: it imports tornado where that is installed (~0.1 s)

        from workbench.runtime.retry import outcome_error

        body = encode_protobuf([(self._resource, spans)])
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(max(1, self._retries)),
            wait=tenacity.wait_exponential(multiplier=0.1, max=2.0) + tenacity.wait_random(0, 0.1),
            retry=tenacity.retry_if_exception_type((OSError, http.client.HTTPException, _SinkBusy)),
            after=lambda state: self._problem(
                f"trace sink {self.url} {_unreached(outcome_error(state))}; attempt {state.attempt_number}"
            ),
            reraise=True,
        )
        try:
            status, text = retrying(self._post_accepted, body)
        except (OSError, http.client.HTTPException, _SinkBusy):
            if self._take_over():
                self._to_fallback(spans)
            else:
                self._drop(len(spans), f"trace sink {self.url} unreachable")
            return
        if status < 300:
            self.stats.written += len(spans)
            self.stats.batches += 1
            return
        # A 4xx will not get better by retrying: this client sent something the sink refuses.
        self._problem(f"trace sink {self.url} refused {len(spans)} spans: HTTP {status} {text[:200]}")
        self._drop(len(spans), f"sink refused them with HTTP {status}")

    def _post_accepted(self, body: bytes) -> tuple[int, str]:
        """``_post``, raising ``_SinkBusy`` for the answers worth sending again."""
        status, text = self._post(body)
        if status in (429, 502, 503, 504):
            raise _SinkBusy(status)
        return status, text

    def _post(self, body: bytes) -> tuple[int, str]:
        if self._conn is None:
            cls = (
                http.client.HTTPSConnection if self._parsed.scheme == "https" else http.client.HTTPConnection
            )
            self._conn = cls(self._host, self._parsed.port, timeout=self._timeout)
        try:
            self._conn.request("POST", self._parsed.path or "/v1/traces", body, self._headers)
            response = self._conn.getresponse()
            return response.status, response.read().decode(errors="replace")
        except BaseException:
            self._conn.close()
            self._conn = None
            raise

    def _take_over(self) -> bool:
        """The sink is gone: write the file ourselves, if we know it and it is free."""
        if self.db_path is None:
            return False
        try:
            self.fallback = TraceWriter(self.db_path, **self._writer_opts)
        except TraceStoreError as exc:
            self._problem(f"trace sink {self.url} is gone and {self.db_path} cannot be taken over: {exc}")
            return False
        self._problem(f"trace sink {self.url} is gone; writing {self.db_path} directly from now on")
        return True

    def _to_fallback(self, spans: list[Span]) -> None:
        fallback = self.fallback
        if fallback is None:  # called only once a writer took over
            raise TraceStoreError(f"trace client for {self.url} has no file to fall back to")
        for s in spans:
            if s.end_ns:
                fallback._export(s)
            elif s.parent_id is None:  # an open root span: the run start the sink never saw
                fallback.submit([s], fallback._origin)
        self.stats.written += len(spans)
        fallback.flush()
