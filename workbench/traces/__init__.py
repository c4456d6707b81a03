"""Traces in DuckDB: OpenTelemetry-shaped spans, a local central sink, fast queries.

Writing::

    from workbench.traces import tracer_for
    with tracer_for() as tracer:          # .workbench/traces.duckdb, or the sink that owns it
        root = tracer.start_span("run trader", attributes={"workbench.run.id": run_id, ...})
        ...
        tracer.end_span(root)

Reading::

    from workbench.traces import TraceStore
    TraceStore().runs()                    # DataFrames; TraceStore.remote(url, token) via a sink

Modules: ``schema`` (tables, views, migrations), ``db`` (opening, locks, encryption),
``writer`` (the owning ``Tracer``), ``client`` (the ``Tracer`` that sends to a sink),
``sink`` (the OTLP/HTTP receiver), ``otlp`` (encodings), ``store`` (queries, export),
``redact`` (personal data), ``cli`` (``workbench traces ...``).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from workbench.spans import Tracer

from .client import SinkClient
from .db import EncryptionUnavailable, TraceLockedError, TraceStoreError, default_db_path
from .redact import Redactor, RegexRedactor
from .sink import SinkServer, announce_sink, make_app, read_sink_file, serve_sink, sink_file, withdraw_sink
from .store import TraceStore
from .writer import TraceWriter

__all__ = [
    "EncryptionUnavailable",
    "Redactor",
    "RegexRedactor",
    "SinkClient",
    "SinkServer",
    "TraceLockedError",
    "TraceSink",
    "TraceStore",
    "TraceStoreError",
    "TraceWriter",
    "announce_sink",
    "default_db_path",
    "find_sink",
    "make_app",
    "open_store",
    "serve_sink",
    "sink_file",
    "tracer_for",
    "withdraw_sink",
]

SINK_ENV = "WORKBENCH_SINK"
SINK_TOKEN_ENV = "WORKBENCH_SINK_TOKEN"


@runtime_checkable
class TraceSink(Tracer, Protocol):
    """A ``Tracer`` that holds resources: ``close()`` flushes and releases them."""

    def close(self) -> None:
        """Flush and release the file or connection."""
        ...


def _healthy(url: str, timeout: float = 1.0) -> bool:
    base = url.split("/v1/")[0].rstrip("/")
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=timeout) as response:
            return bool(json.loads(response.read()).get("ok"))
    except (urllib.error.URLError, OSError, ValueError):
        return False


def find_sink(db_path: str | Path | None = None) -> dict[str, Any] | None:
    """The live sink that owns ``db_path`` (``url``, ``query_token``, ``pid``...), or None."""
    info = read_sink_file(Path(db_path) if db_path is not None else default_db_path())
    if info is None or not _healthy(info["url"]):
        return None
    return info


def tracer_for(db_path: str | Path | None = None, **opts: Any) -> TraceWriter | SinkClient:
    """The right tracer for this process, as a context manager with ``close()``.

    ``WORKBENCH_SINK=URL`` (token: ``WORKBENCH_SINK_TOKEN``) sends there. Else, if a sink
    owns ``db_path`` (default ``.workbench/traces.duckdb``), spans go to it over OTLP/HTTP;
    else this process opens the file and writes it. ``opts`` go to ``TraceWriter`` (``key``,
    ``redactor``, ``max_queue``...) or ``SinkClient`` (``service``). A file held by another
    process with no sink raises ``TraceLockedError`` naming that process.
    """
    path = Path(db_path) if db_path is not None else default_db_path()
    client_keys = {"service", "batch_size", "interval", "max_queue", "timeout", "retries"}
    url = os.environ.get(SINK_ENV)
    if url:
        return SinkClient(
            url, token=os.environ.get(SINK_TOKEN_ENV), **{k: v for k, v in opts.items() if k in client_keys}
        )
    info = find_sink(path)
    if info is not None:
        token = info.get("query_token") if info.get("token_required") else None
        client_opts = {k: v for k, v in opts.items() if k in client_keys}
        writer_opts = {k: v for k, v in opts.items() if k not in client_keys}
        return SinkClient(info["url"], token=token, db_path=path, **client_opts, **writer_opts)
    return TraceWriter(path, **opts)


def open_store(db_path: str | Path | None = None, **opts: Any) -> TraceStore:
    """A ``TraceStore`` for ``db_path``: through its sink when one owns it, else the file read-only."""
    path = Path(db_path) if db_path is not None else default_db_path()
    info = find_sink(path)
    if info is not None:
        return TraceStore.remote(info["url"], info.get("query_token"))
    return TraceStore(path, **opts)
