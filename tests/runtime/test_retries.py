"""``retries:`` against a real OpenAI-compatible HTTP server on loopback that fails first.

The server is a few lines of ``http.server``: it answers each POST from a script of
(status, headers, body), then a valid chat completion. Back-off is shortened through the
executor's ``retry_backoff`` / ``retry_max_wait`` so the tests stay fast.
"""

from __future__ import annotations

import email.utils
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from workbench.errors import ModelUnavailable, NodeTimeout, UsageError
from workbench.flow import Flow, Node
from workbench.models.openai_client import ModelHTTPError, parse_retry_after
from workbench.runtime import Executor, execute
from workbench.spans import MemoryTracer

Reply = tuple[int, dict[str, str], dict]


def completion(text: str) -> Reply:
    body = {
        "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2},
    }
    return 200, {}, body


class ScriptedServer:
    """An OpenAI-compatible server on 127.0.0.1 answering POSTs from ``script`` in order."""

    def __init__(self, script: list[Reply]) -> None:
        self.script = list(script)
        self.requests: list[float] = []  # arrival times
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                outer.requests.append(time.monotonic())
                status, headers, body = outer.script.pop(0) if len(outer.script) > 1 else outer.script[0]
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def overloaded_once() -> Iterator[ScriptedServer]:
    busy = (503, {"Retry-After": "1"}, {"error": {"message": "server overloaded"}})
    with ScriptedServer([busy, completion('"hello"')]) as server:
        yield server


def ask_flow(retries: int) -> Flow:
    flow = Flow("ask", inputs={"q": str}, outputs={"a": str})
    flow.add(Node.llm("ask", "{{ q }}", inputs={"q": str}, outputs={"a": str}, retries=retries))
    return flow.connect("q", "ask.q").connect("ask.a", "a")


def model(server: ScriptedServer) -> dict:
    return {"openai": {"base_url": server.url, "model": "m", "timeout": 5}}


def test_a_503_with_retry_after_is_retried_and_the_trace_counts_attempts(overloaded_once):
    tracer = MemoryTracer()
    waits = {"retry_backoff": 0.001, "retry_max_wait": 0.2}
    executor = Executor(ask_flow(retries=3), tracer=tracer, model=model(overloaded_once), **waits)
    result = executor.run({"q": "hi"})
    assert result.status == "ok", result.error
    assert result.outputs == {"a": "hello"}
    (node,) = [s for s in tracer.spans if s.attributes.get("workbench.node.name") == "ask"]
    assert node.attributes["workbench.node.attempts"] == 2
    (event,) = [e for e in node.events if e.name == "retry"]  # the other: the answer, for replays
    assert event.attributes["workbench.node.attempt"] == 1
    assert "HTTP 503: server overloaded" in event.attributes["error"]
    # Retry-After: 1 asked for a second, capped by retry_max_wait; the back-off alone is ~1 ms.
    assert event.attributes["workbench.retry.wait_s"] == 0.2
    first, second = overloaded_once.requests
    assert second - first >= 0.19


def test_without_retries_the_503_fails_the_run_and_says_when_to_come_back(overloaded_once):
    result = execute(ask_flow(retries=0), {"q": "hi"}, model=model(overloaded_once))
    assert result.status == "failed"
    assert isinstance(result.error, ModelHTTPError)
    assert result.error.status == 503 and result.error.retry_after == 1.0 and result.error.transient
    assert len(overloaded_once.requests) == 1


def test_an_error_that_will_not_pass_is_not_retried():
    missing = (404, {}, {"error": {"message": "no model m"}})
    with ScriptedServer([missing]) as server:
        tracer = MemoryTracer()
        flow = ask_flow(retries=3)
        result = execute(flow, {"q": "hi"}, model=model(server), tracer=tracer, retry_backoff=0)
    assert isinstance(result.error, ModelHTTPError) and not result.error.transient
    assert len(server.requests) == 1
    (node,) = [s for s in tracer.spans if s.attributes.get("workbench.node.name") == "ask"]
    assert node.attributes["workbench.node.attempts"] == 1 and node.events == []


def test_a_refused_connection_is_retried_with_growing_waits_then_fails():
    with ScriptedServer([completion('"x"')]) as server:
        url = server.url  # the port is free again once the server is closed
    tracer = MemoryTracer()
    spec = {"openai": {"base_url": url, "model": "m", "timeout": 5}}
    result = execute(ask_flow(retries=2), {"q": "hi"}, model=spec, tracer=tracer, retry_backoff=0.01)
    assert isinstance(result.error, ModelUnavailable) and "cannot connect" in str(result.error)
    (node,) = [s for s in tracer.spans if s.attributes.get("workbench.node.name") == "ask"]
    assert node.attributes["workbench.node.attempts"] == 3
    waits = [e.attributes["workbench.retry.wait_s"] for e in node.events]
    assert [e.attributes["workbench.node.attempt"] for e in node.events] == [1, 2]
    # 0.01 s doubling, each plus up to 0.01 s of jitter
    assert 0.01 <= waits[0] <= 0.02 and 0.02 <= waits[1] <= 0.03


def test_a_timed_out_attempt_is_retried_and_named_in_the_error():
    calls = []

    async def slow_then_fast(x: int) -> dict:
        import asyncio

        calls.append(x)
        await asyncio.sleep(1 if len(calls) == 1 else 0)
        return {"y": x}

    flow = Flow("f", inputs={"x": int}, outputs={"y": int})
    flow.add(Node.tool("n", slow_then_fast, inputs={"x": int}, outputs={"y": int}, timeout=0.05, retries=1))
    flow.connect("x", "n.x").connect("n.y", "y")
    tracer = MemoryTracer()
    assert execute(flow, {"x": 4}, tracer=tracer, retry_backoff=0).outputs == {"y": 4}
    assert tracer.spans[0].events[0].attributes["error"] == "timed out after 0.05 s"
    calls.clear()
    flow.nodes["n"].retries = 0
    result = execute(flow, {"x": 4})
    assert isinstance(result.error, NodeTimeout) and str(result.error).endswith("timed out after 0.05 s")


def test_retry_after_in_seconds_or_as_an_http_date():
    now = time.time()
    assert parse_retry_after("7") == 7.0
    later, earlier = (email.utils.formatdate(now + d, usegmt=True) for d in (30, -30))
    assert parse_retry_after(later, now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after(earlier, now=now) == 0.0
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    assert parse_retry_after("nan") is None


@pytest.mark.parametrize("option", ["retry_backoff", "retry_max_wait"])
@pytest.mark.parametrize("value", [-1, "1", float("inf"), True])
def test_bad_retry_options_are_usage_errors(option, value):
    with pytest.raises(UsageError, match=option):
        Executor(ask_flow(retries=1), **{option: value})
