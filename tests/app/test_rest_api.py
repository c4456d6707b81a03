"""The REST API and the mounted trace sink of a live ``workbench serve`` (httpx, loopback)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from workbench.examples import flow_path

from .conftest import ROOT, Served


def test_flows_lists_examples_and_cwd_files(server: Served) -> None:
    flows = httpx.get(server.url + "/api/flows").json()
    names = {f["name"]: f["path"] for f in flows}
    assert {"trader", "triage", "evil"} <= set(names)
    assert Path(names["evil"]) == server.cwd / "evil.flow.yaml"


def test_check_matches_the_cli_json(server: Served) -> None:
    text = flow_path("trader").read_text(encoding="utf-8")
    got = httpx.post(server.url + "/api/check", content=text).json()
    cli = subprocess.run(
        [sys.executable, "-m", "workbench", "check", str(flow_path("trader")), "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert got == json.loads(cli.stdout)
    assert {r["name"]: r["status"] for r in got["rails"]}["cap"] == "proved"


def test_check_reports_unreadable_yaml_with_its_position(server: Served) -> None:
    response = httpx.post(server.url + "/api/check", content="flow: [unclosed\n")
    assert response.status_code == 400
    body = response.json()
    assert body["ok"] is False and body["rails"] == []
    assert "<request>:" in body["errors"][0]


def test_check_reports_a_conflict(server: Served) -> None:
    text = flow_path("triage").read_text(encoding="utf-8")
    text += "  low: {on: prioritise.priority, check: 'priority < 0'}\n"
    body = httpx.post(server.url + "/api/check", content=text).json()
    assert body["ok"] is False
    assert {r["name"]: r["status"] for r in body["rails"]}["low"] in ("conflict", "vacuous")


def test_run_elsewhere_sends_spans_to_the_server(server: Served, tmp_path: Path) -> None:
    """The server owns the file; a `workbench run` in its cwd finds the sink and sends spans."""
    before = len(httpx.get(server.url + "/api/runs").json())
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "workbench",
            "run",
            "triage",
            "-i",
            "ticket=Refund please",
            "-i",
            "tier=pro",
            "--db",
            str(server.db),
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=server.cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    run_id = json.loads(run.stdout)["run_id"]
    for _ in range(50):
        runs = httpx.get(server.url + "/api/runs").json()
        if any(r["run_id"] == run_id and r["status"] == "ok" for r in runs):
            break
        import time

        time.sleep(0.2)
    assert len(runs) == before + 1
    mine = next(r for r in runs if r["run_id"] == run_id)
    assert mine["flow_name"] == "triage" and mine["spans"] >= 5


def test_sink_refuses_garbage(server: Served) -> None:
    response = httpx.post(
        server.url + "/v1/traces", content=b"not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert httpx.get(server.url + "/healthz").json()["ok"] is True


def test_runs_rejects_a_bad_limit(server: Served) -> None:
    assert httpx.get(server.url + "/api/runs?limit=x").status_code == 400


def test_non_loopback_address_needs_basic_auth(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "workbench",
            "serve",
            "--address",
            "0.0.0.0",
            "--db",
            str(tmp_path / "t.duckdb"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**{k: v for k, v in os.environ.items() if k != "WORKBENCH_BASIC_AUTH"}, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert result.returncode == 2
    assert "not a loopback address" in result.stderr and "--basic-auth" in result.stderr
    assert not (tmp_path / "t.duckdb").exists()


async def _upgrade(url: str, origin: str) -> str:
    """Open the app's websocket as a browser on ``origin`` would; its first message, or why not."""
    from tornado.httpclient import HTTPClientError, HTTPRequest
    from tornado.websocket import websocket_connect

    page = httpx.get(url + "/", timeout=30).text  # a session, and the token its socket needs
    match = re.search(r'"token":\s*"([^"]+)"', page)
    assert match, "no session token in the page"
    request = HTTPRequest(url.replace("http://", "ws://") + "/ws", headers={"Origin": origin})
    try:
        socket = await websocket_connect(request, subprotocols=["bokeh", match.group(1)])
    except HTTPClientError as exc:
        return f"refused: HTTP {exc.code}"
    try:
        first = await asyncio.wait_for(socket.read_message(), 30)
    finally:
        socket.close()
    return "accepted" if first is not None else "closed"


def test_websocket_from_another_origin_is_refused(server: Served) -> None:
    assert asyncio.run(_upgrade(server.url, "http://evil.example")) == "refused: HTTP 403"
    assert asyncio.run(_upgrade(server.url, "http://evil.example:" + server.url.rsplit(":", 1)[1])) == (
        "refused: HTTP 403"
    )
    # The server's own origin, by address and as localhost (loopback), is accepted.
    assert asyncio.run(_upgrade(server.url, server.url)) == "accepted"
    assert asyncio.run(_upgrade(server.url, server.url.replace("127.0.0.1", "localhost"))) == "accepted"
