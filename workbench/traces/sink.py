"""The trace sink: the process that owns the trace file and receives OTLP/HTTP.

``make_app`` is a Starlette ASGI app with ``POST /v1/traces`` (OTLP protobuf or JSON, the
standard OTLP/HTTP path, so any OpenTelemetry exporter can send), ``POST /v1/query`` (SQL
for the CLI and notebooks of other processes, which cannot open the locked file; SELECT
only, always behind a token) and ``GET /healthz``. ``serve_sink`` runs it in the foreground
(``workbench traces serve``), ``SinkServer`` on a background thread; any ASGI server can mount it.

Discovery: a running sink writes ``<db>.sink.json`` (mode 0600) next to the database with
its pid, URL and query token, and removes it on exit; ``tracer_for`` reads it.

Security: binds 127.0.0.1 by default; binding any other address requires a token, which
every request must then carry (``Authorization: Bearer ...``); bodies over ``max_body``
bytes (also after gzip) get 413; a malformed payload gets 400 with the reason and none of
it is stored (the whole request is decoded and validated before anything is queued).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.ipc as ipc

from workbench.errors import UsageError
from workbench.netsafety import bearer_matches, read_body, refuse_open_bind
from workbench.processes import pid_alive

from .db import default_db_path
from .otlp import OTLPDecodeError, decode_json, decode_protobuf
from .writer import TraceWriter

__all__ = [
    "DEFAULT_MAX_BODY",
    "SinkServer",
    "announce_sink",
    "make_app",
    "read_sink_file",
    "serve_sink",
    "sink_file",
    "withdraw_sink",
]

DEFAULT_MAX_BODY = 16 * 1024 * 1024
DEFAULT_PORT = 4318  # the OTLP/HTTP port every OpenTelemetry exporter tries by default


def sink_file(db_path: str | Path) -> Path:
    """Where a sink for ``db_path`` announces itself."""
    p = Path(db_path).expanduser().absolute()
    return p.with_name(p.name + ".sink.json")


def read_sink_file(db_path: str | Path) -> dict[str, Any] | None:
    """The announcement of a live sink for ``db_path``, or None (missing, unreadable or stale)."""
    path = sink_file(db_path)
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not isinstance(info.get("url"), str):
        return None
    if not pid_alive(info.get("pid"), info.get("host")):
        return None
    return info


def announce_sink(db_path: str | Path, url: str, query_token: str, *, token_required: bool = False) -> Path:
    """Tell other processes that this process owns ``db_path`` and receives OTLP at ``url``.

    Writes ``<db>.sink.json`` atomically, readable by this user only (it holds the query
    token). ``SinkServer`` calls this once it listens, as must any server mounting ``make_app``;
    ``withdraw_sink`` on exit.
    """
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "url": url,
        "query_token": query_token,
        "token_required": token_required,
        "started_ns": time.time_ns(),
    }
    target = sink_file(db_path)
    tmp = target.with_name(target.name + f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(info, fh)
    os.replace(tmp, target)
    return target


def withdraw_sink(db_path: str | Path, url: str) -> None:
    """Remove the announcement, if it is still this process's for ``url``."""
    with contextlib.suppress(OSError, ValueError):
        info = json.loads(sink_file(db_path).read_text())
        if info.get("pid") == os.getpid() and info.get("url") == url:
            sink_file(db_path).unlink()


def _error(status: int, reason: str) -> Any:
    from starlette.responses import JSONResponse

    return JSONResponse({"code": status, "message": reason}, status_code=status)


def _gunzip(body: bytes, limit: int) -> bytes | None:
    # A bounded inflate: a small "zip bomb" must not become gigabytes in memory.
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = inflater.decompress(body, limit + 1)
    if len(out) > limit or inflater.unconsumed_tail:
        return None
    return out


def make_app(
    writer: TraceWriter,
    *,
    token: str | None = None,
    query_token: str | None = None,
    max_body: int = DEFAULT_MAX_BODY,
) -> Any:
    """The sink's ASGI app, writing through ``writer``.

    ``token``: required on every request when set. ``query_token``: required on
    ``/v1/query`` (defaults to ``token``; with neither, the query endpoint is off).
    """
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    query_token = query_token or token
    if query_token is not None:
        # /v1/query runs any SELECT, and DuckDB's table functions read files (read_text,
        # read_csv, glob...): the database gives up file system access for good before the
        # first query. The trace file itself stays attached and writable.
        cursor = writer.reader()
        cursor.execute("SET enable_external_access = false")
        cursor.close()

    def authorized(request: Any, needed: str | None) -> bool:
        if needed is None:
            return True
        return bearer_matches(request.headers.get("authorization"), needed)

    async def traces(request: Any) -> Any:
        if not authorized(request, token):
            return _error(401, "missing or wrong bearer token")
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in ("application/x-protobuf", "application/protobuf", "application/json"):
            return _error(
                415, f"unsupported content type {ctype!r}: use application/x-protobuf or application/json"
            )
        body = await read_body(request, max_body)
        if body is None:
            return _error(413, f"request body larger than {max_body} bytes")
        encoding = request.headers.get("content-encoding", "identity").lower()
        if encoding == "gzip":
            try:
                body = _gunzip(body, max_body)
            except zlib.error as exc:
                return _error(400, f"invalid gzip body: {exc}")
            if body is None:
                return _error(413, f"decompressed body larger than {max_body} bytes")
        elif encoding not in ("identity", ""):
            return _error(415, f"unsupported content encoding {encoding!r}")
        decode = decode_json if ctype == "application/json" else decode_protobuf
        try:
            groups = await run_in_threadpool(decode, body)  # a 16 MiB body must not stall the loop
        except OTLPDecodeError as exc:
            return _error(400, str(exc))
        # Queueing may wait for room (back-pressure): off the event loop.
        accepted = await run_in_threadpool(
            lambda: all([writer.submit(spans, origin) for origin, spans in groups])
        )
        if not accepted:
            return Response(
                b"trace writer is overloaded or cannot write; spans were counted as dropped",
                status_code=503,
                headers={"Retry-After": "1"},
            )
        if ctype == "application/json":
            return JSONResponse({})
        return Response(b"", media_type="application/x-protobuf")

    async def query(request: Any) -> Any:
        if query_token is None:
            return _error(404, "the query endpoint is disabled on this sink")
        if not authorized(request, query_token):
            return _error(401, "missing or wrong bearer token")
        body = await read_body(request, 1024 * 1024)
        if body is None:
            return _error(413, "query body larger than 1048576 bytes")
        try:
            doc = json.loads(body or b"")
        except ValueError:
            doc = None
        sql = doc.get("sql") if isinstance(doc, dict) else None
        params = (doc.get("params") or []) if isinstance(doc, dict) else None
        # Checked explicitly, never by assert: `python -O` strips asserts.
        if not isinstance(sql, str) or not isinstance(params, list):
            return _error(400, 'expected JSON {"sql": "...", "params": [...]}')
        try:
            statements = duckdb.extract_statements(sql)
        except duckdb.Error as exc:
            return _error(400, str(exc).splitlines()[0])
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            return _error(403, "only a single SELECT statement may be run through the sink")

        def run() -> bytes:
            writer.flush(5.0)
            cursor = writer.reader()
            try:
                table = cursor.execute(sql, params or None).to_arrow_table()
            finally:
                cursor.close()
            sink = pa.BufferOutputStream()
            with ipc.new_stream(sink, table.schema) as stream:
                stream.write_table(table)
            return bytes(sink.getvalue().to_pybytes())

        try:
            data = await run_in_threadpool(run)
        except duckdb.Error as exc:
            return _error(400, str(exc).splitlines()[0])
        return Response(data, media_type="application/vnd.apache.arrow.stream")

    async def health(request: Any) -> Any:
        return JSONResponse({"ok": True, "db": str(writer.path), "stats": writer.stats.as_dict()})

    return Starlette(
        routes=[
            Route("/v1/traces", traces, methods=["POST"]),
            Route("/v1/query", query, methods=["POST"]),
            Route("/healthz", health, methods=["GET"]),
        ]
    )


class SinkServer:
    """A trace sink on a background thread: owns the file, serves OTLP/HTTP, announces itself.

    ``port=0`` picks a free port (see ``url``). Use as a context manager or call
    ``start()`` / ``close()``. ``writer_opts`` go to ``TraceWriter`` (key, redactor...).
    """

    def __init__(
        self,
        db_path: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        announce: bool = True,
        **writer_opts: Any,
    ) -> None:
        refuse_open_bind(
            host,
            token,
            service="the trace sink",
            remedy="a --token (or WORKBENCH_SINK_TOKEN)",
            exposure="write or read traces",
        )
        self.db_path = Path(db_path) if db_path is not None else default_db_path()
        self.host, self.port, self.token = host, port, token
        self.query_token = token or secrets.token_urlsafe(24)
        self.max_body = max_body
        self.announce = announce
        self._writer_opts = writer_opts
        self.writer: TraceWriter | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The OTLP endpoint, ``http://host:port/v1/traces``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1/traces"

    def start(self) -> SinkServer:
        """Open the file, bind, start serving; returns once requests are accepted."""
        import uvicorn

        self.writer = TraceWriter(self.db_path, **self._writer_opts)
        try:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError as exc:
            self.writer.close()
            raise UsageError(f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from None
        self.port = sock.getsockname()[1]
        app = make_app(self.writer, token=self.token, query_token=self.query_token, max_body=self.max_body)
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # the owner of the process decides

        def serve() -> None:
            asyncio.run(self._server.serve(sockets=[sock]))

        self._thread = threading.Thread(target=serve, name="workbench-trace-sink", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.close()
                raise UsageError(f"the trace sink did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        if self.announce:
            self._announce()
        return self

    def _announce(self) -> None:
        announce_sink(self.db_path, self.url, self.query_token, token_required=bool(self.token))

    def close(self) -> None:
        """Stop serving, remove the announcement, flush and close the file (idempotent)."""
        if self.announce:
            withdraw_sink(self.db_path, self.url)
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        if self.writer is not None:
            self.writer.close()

    def __enter__(self) -> SinkServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_sink(
    db_path: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    token: str | None = None,
    **opts: Any,
) -> None:
    """Run a trace sink in the foreground until SIGINT/SIGTERM (``workbench traces serve``)."""
    stop = threading.Event()
    server = SinkServer(db_path, host=host, port=port, token=token, **opts).start()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    print(f"trace sink for {server.db_path} listening on {server.url}", flush=True)
    try:
        stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.close()
