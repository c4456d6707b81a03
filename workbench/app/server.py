"""``workbench serve``: one process with the app, the OTLP trace sink and a small REST API.

The process owns the trace database (DuckDB lets one process open the file), so it also
receives other processes' spans: the sink's own ASGI app (``workbench.traces.make_app``)
is mounted on Panel's Tornado server at ``/v1/traces``, ``/v1/query`` and ``/healthz``, and
announced in ``<db>.sink.json`` so ``workbench run`` elsewhere sends its spans here.

A browser session closed with a run still waiting in it (at a breakpoint, on an approval)
cancels that run (the run view listens for its session's end), so it ends as ``cancelled``.

REST: ``GET /api/flows``, ``POST /api/check`` (flow YAML in, ``workbench check --json``
out), ``GET /api/runs``. Binds 127.0.0.1; any other address needs ``--basic-auth`` (then the
REST API wants the login cookie or the bearer token printed at start, and the sink wants
that token too).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from workbench.errors import FlowSyntaxError, UsageError

__all__ = ["AUTH_ENV", "discover_flows", "serve"]

AUTH_ENV = "WORKBENCH_BASIC_AUTH"
# A closed tab's session is destroyed (and a run it left waiting cancelled) once it has had
# no connection for Bokeh's 15 s; looked for every 2 s rather than Bokeh's 17 s.
CHECK_UNUSED_SESSIONS_MS = 2000


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def discover_flows(args: list[str], cwd: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """Flows to offer, by name, and where read-only ones (examples) save to.

    No ``args``: the example flows plus ``*.flow.yaml`` in ``cwd`` (which win on a name clash).
    """
    from workbench.examples import flow_path, list_flows

    flows: dict[str, Path] = {}
    save_to: dict[str, Path] = {}
    if not args:
        for name in list_flows():
            flows[name] = flow_path(name)
            save_to[name] = cwd / f"{name}.flow.yaml"
        for path in sorted(cwd.glob("*.flow.yaml")):
            name = path.name.removesuffix(".flow.yaml")
            flows[name] = path
            save_to.pop(name, None)
        return flows, save_to
    for arg in args:
        path = Path(arg)
        if not path.exists():
            if arg in list_flows():
                flows[arg] = flow_path(arg)
                save_to[arg] = cwd / f"{arg}.flow.yaml"
                continue
            raise UsageError(f"no flow file '{arg}' (and no example flow of that name)")
        flows[path.name.removesuffix(".flow.yaml").removesuffix(".yaml")] = path.resolve()
    return flows, save_to


def _handlers(flows: dict[str, Path], writer: Any, sink_app: Any, token: str | None, base: Path) -> list[Any]:
    """Tornado routes of the REST API and the mounted sink."""
    import tornado.web

    class Base(tornado.web.RequestHandler):
        def check_xsrf_cookie(self) -> None:  # an API for scripts: no browser forms here
            return

        def prepare(self) -> None:
            if token is None:
                return
            given = self.request.headers.get("Authorization", "")
            if secrets.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return
            if self.get_secure_cookie("user"):
                return
            self.set_status(401)
            self.finish({"error": "log in first (or send Authorization: Bearer TOKEN)"})

        def send_json(self, data: Any, status: int = 200) -> None:
            self.set_status(status)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(data, default=str, ensure_ascii=False))

    class FlowsHandler(Base):
        def get(self) -> None:
            self.send_json([{"name": n, "path": str(p)} for n, p in flows.items()])

    class CheckHandler(Base):
        def post(self) -> None:
            from workbench.flow import loads
            from workbench.flow.verify import check_report

            try:
                flow = loads(self.request.body, source="<request>", base_dir=base)
            except FlowSyntaxError as exc:
                self.send_json({"ok": False, "errors": [str(exc)], "rails": []}, 400)
                return
            except UsageError as exc:
                self.send_json({"ok": False, "errors": [str(exc)], "rails": []}, 400)
                return
            report = check_report(flow)
            ok = not report["errors"] and not any(r["status"] == "conflict" for r in report["rails"])
            self.send_json({"ok": ok, **report})

    class RunsHandler(Base):
        def get(self) -> None:
            limit = self.get_argument("limit", "50")
            if not limit.isdigit():
                self.send_json({"error": "limit must be a positive integer"}, 400)
                return
            df = writer.store().runs(limit=int(limit))
            cols = ["run_id", "flow_name", "status", "start_ns", "end_ns", "duration_ms", "spans"]
            records = json.loads(df[cols].to_json(orient="records"))
            self.send_json(records)

    class SinkHandler(tornado.web.RequestHandler):
        """Hands the request to the sink's ASGI app (the same code as ``workbench traces serve``)."""

        def check_xsrf_cookie(self) -> None:
            return

        async def _asgi(self) -> None:
            req = self.request
            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": req.method,
                "scheme": req.protocol,
                "path": req.path,
                "raw_path": req.path.encode(),
                "query_string": (req.query or "").encode(),
                "root_path": "",
                "headers": [
                    (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in req.headers.get_all()
                ],
                "client": (req.remote_ip or "", 0),
                "server": (req.host_name, 0),
            }
            delivered = False

            async def receive() -> dict[str, Any]:
                nonlocal delivered
                if not delivered:
                    delivered = True
                    return {"type": "http.request", "body": req.body or b"", "more_body": False}
                return {"type": "http.disconnect"}

            async def send(msg: dict[str, Any]) -> None:
                if msg["type"] == "http.response.start":
                    self.set_status(msg["status"])
                    for key, value in msg.get("headers", []):
                        name = key.decode("latin-1")
                        if name.lower() != "content-length":
                            self.set_header(name, value.decode("latin-1"))
                elif msg["type"] == "http.response.body":
                    self.write(msg.get("body", b""))

            await sink_app(scope, receive, send)

        async def get(self) -> None:
            await self._asgi()

        async def post(self) -> None:
            await self._asgi()

    return [
        (r"/api/flows", FlowsHandler),
        (r"/api/check", CheckHandler),
        (r"/api/runs", RunsHandler),
        (r"/v1/traces", SinkHandler),
        (r"/v1/query", SinkHandler),
        (r"/healthz", SinkHandler),
    ]


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def serve(
    flow_args: list[str],
    *,
    port: int = 5006,
    address: str = "127.0.0.1",
    db: str | Path | None = None,
    basic_auth: str | None = None,
    cwd: Path | None = None,
) -> int:
    """Serve the app, the sink and the REST API until SIGINT/SIGTERM; returns the exit code."""
    basic_auth = basic_auth or os.environ.get(AUTH_ENV) or None
    loopback = _is_loopback(address)
    if not loopback and not basic_auth:
        raise UsageError(
            f"workbench serve binds {address}, which is not a loopback address: anyone who can "
            f"reach it could run flows. Give --basic-auth PASSWORD (or {AUTH_ENV}) or bind 127.0.0.1."
        )
    cwd = cwd or Path.cwd()
    flows, save_to = discover_flows(flow_args, cwd)

    import panel as pn

    from workbench.traces import TraceWriter, announce_sink, make_app, withdraw_sink
    from workbench.traces.db import default_db_path

    from .workbench_app import Workbench

    db_path = Path(db) if db is not None else default_db_path(cwd)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    port = port or _free_port(address)
    writer = TraceWriter(db_path)
    query_token = secrets.token_urlsafe(24)
    token = None if loopback else query_token
    sink_app = make_app(writer, token=token, query_token=query_token)
    host = f"[{address}]" if ":" in address else address
    url = f"http://{host}:{port}/"
    origins = [f"{host}:{port}"] + ([f"localhost:{port}"] if loopback else [])

    def app() -> Any:
        return Workbench(
            flows,
            save_to=save_to,
            tracer=lambda: (writer, False),
            store=writer.store,
            root=cwd,
        )

    pn.extension("tabulator", notifications=False)
    server = pn.serve(
        {"/": app},
        port=port,
        address=address,
        websocket_origin=origins,
        show=False,
        start=False,
        title="Agent Workbench",
        basic_auth=basic_auth,
        cookie_secret=secrets.token_hex(32) if basic_auth else None,
        extra_patterns=_handlers(flows, writer, sink_app, token, cwd),
        check_unused_sessions_milliseconds=CHECK_UNUSED_SESSIONS_MS,
    )
    announce_sink(db_path, url + "v1/traces", query_token, token_required=token is not None)
    loop = server.io_loop

    def stop(*_: Any) -> None:
        loop.add_callback_from_signal(loop.stop)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    print(f"workbench serving {url} (traces: {db_path}, OTLP: {url}v1/traces)", flush=True)
    if token is not None:
        print(f"API and sink bearer token: {token}", file=sys.stderr, flush=True)
    try:
        server.start()
        loop.start()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        withdraw_sink(db_path, url + "v1/traces")
        with contextlib.suppress(Exception):
            server.stop()
        writer.close()
    return 0
