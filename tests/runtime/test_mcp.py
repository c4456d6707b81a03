"""MCP tools of agent nodes: a real MCP server (tests/runtime/mcp_server.py) over stdio and
over streamable HTTP on loopback, driven by the scripted OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import time

import pytest

from tests.runtime.scripted_openai import answer, calls, scripted
from workbench.app.export import flow_python
from workbench.cli import main
from workbench.errors import FlowError, NodeError, TrustError
from workbench.flow.agent_tools import AgentTool, McpServer, McpSource
from workbench.flow.io import dumps
from workbench.flow.io import loads as load_text
from workbench.flow.validate import validate
from workbench.runtime import Executor
from workbench.runtime.mcp import McpSessions, arguments_of, expand_mcp, schema_type
from workbench.spans import MemoryTracer
from workbench.types import Int, Str

SERVER = [sys.executable, "-m", "tests.runtime.mcp_server"]
TOOLS = {"add", "fail", "scale", "trace_context", "die"}


def _flow(command, entry=None):
    entry = entry or f"{{mcp: {{command: {json.dumps(command)}, timeout: 20}}}}"
    return f"""
flow: mcp_agent
inputs: {{task: str}}
outputs: {{total: int}}
nodes:
  worker:
    kind: agent
    model: default
    prompt: "{{{{ task }}}}"
    max_steps: 5
    inputs: {{task: str}}
    outputs: {{total: int}}
    tools:
      calc: {entry}
wires:
  - task -> worker.task
  - worker.total -> total
rails:
  small: {{on: worker.add, check: add.a <= 100}}
"""


def _run(command, replies):
    flow = load_text(_flow(command))
    with scripted(replies) as server:
        result = Executor(flow, model=server.model, trust=True).run({"task": "add"})
    return result, server


def test_an_agent_calls_the_tools_of_a_real_mcp_server():
    replies = [
        calls(("add", {"a": 2, "b": 3})),
        calls(("fail", {})),
        calls(("add", {"a": 500, "b": 1})),  # the rail on worker.add refuses it
        answer("5"),
    ]
    result, server = _run(SERVER, replies)
    assert result.status == "ok", result.error
    assert result.outputs == {"total": 5}
    offered = {t["function"]["name"]: t["function"] for t in server.requests[0]["tools"]}
    assert set(offered) == TOOLS
    assert offered["add"]["parameters"]["properties"] == {"a": {"type": "integer"}, "b": {"type": "integer"}}
    assert offered["add"]["description"] == "Add two integers."
    assert json.loads(server.tool_messages(1)[0]["content"]) == {"result": 5}
    assert (
        server.tool_messages(2)[0]["content"]
        == "error: tool 'fail' failed: Error executing tool fail: the disk is on fire"
    )
    refused = server.tool_messages(3)[0]["content"]
    assert refused.startswith("refused, the call did not run") and "small" in refused


def test_bad_arguments_are_refused_before_the_server_sees_them():
    result, server = _run(SERVER, [calls(("add", {"a": "two", "b": 3})), answer("0")])
    assert result.status == "ok", result.error
    assert server.tool_messages(1)[0]["content"].startswith("error: the arguments do not fit")


def test_an_untrusted_flow_may_not_start_an_mcp_server():
    flow = load_text(_flow(SERVER))
    with pytest.raises(TrustError, match="starts the MCP server"):
        Executor(flow, model="default")


def test_check_says_a_rail_on_an_mcp_tool_needs_the_server():
    with pytest.raises(FlowError, match="known only once the server runs"):
        validate(load_text(_flow(SERVER)))


def test_a_server_that_exits_at_once_is_a_clear_error_fast():
    start = time.perf_counter()
    with pytest.raises(FlowError, match="did not start and list its tools") as caught:
        _run([sys.executable, "-c", "import sys; sys.exit('no config file')"], [answer("0")])
    assert "its stderr ends with: no config file" in str(caught.value)
    assert time.perf_counter() - start < 15


def test_a_server_that_dies_at_the_node_run_fails_the_node(tmp_path):
    # Lists its tools the first time (plan time), exits at once the second time (the node run).
    marker = tmp_path / "started"
    script = (
        "import pathlib, runpy, sys\n"
        f"m = pathlib.Path({str(marker)!r})\n"
        "if m.exists(): sys.exit(3)\n"
        "m.touch()\n"
        "runpy.run_module('tests.runtime.mcp_server', run_name='__main__')\n"
    )
    start = time.perf_counter()
    result, _ = _run([sys.executable, "-c", script], [calls(("add", {"a": 1, "b": 2})), answer("3")])
    assert result.status == "failed"
    assert isinstance(result.error, NodeError)
    assert "MCP server of tool entry 'calc'" in str(result.error)
    assert time.perf_counter() - start < 15


def test_json_schemas_map_to_workbench_types_or_say_what_is_not_supported():
    typ = schema_type({"type": "string", "maxLength": 5, "pattern": "[a-z]+"}, "p")
    assert typ.validate("abc", "p") == "abc"
    assert schema_type({"type": "integer", "minimum": 1, "maximum": 3}, "p").to_json_schema() == {
        "type": "integer",
        "minimum": 1,
        "maximum": 3,
    }
    assert schema_type({"type": "array", "items": {"enum": ["x", "y"]}}, "p").validate(["x"], "p") == ["x"]
    with pytest.raises(FlowError, match=r"tool 'q' .*has no type workbench maps"):
        schema_type({"type": "object"}, "tool 'q' property 'x'")


def test_an_mcp_entry_round_trips_through_the_flow_file():
    flow = load_text(_flow(SERVER))
    assert flow.nodes["worker"].config["tools"] == {"calc": McpServer(SERVER, 20)}
    again = load_text(dumps(flow))
    assert again.nodes["worker"].config["tools"] == {"calc": McpServer(SERVER, 20)}
    scope: dict[str, object] = {}
    exec(flow_python(flow), scope)  # the app's Python export rebuilds the entry too
    assert scope["flow"].nodes["worker"].config["tools"] == {"calc": McpServer(SERVER, 20)}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{mcp: {command: [python], cwd: /}}", "unknown mcp key 'cwd'"),
        ("{mcp: {command: [python]}, approve: true}", "must be exactly {mcp:"),
        ("{mcp: {command: python}}", "mcp command must be a non-empty list of strings"),
        ("{mcp: {command: [python], timeout: 0}}", "mcp timeout must be a positive number"),
        ("{mcp: {url: 'ftp://127.0.0.1/mcp'}}", "mcp url must be an http:// or https:// address"),
        ("{mcp: {url: 'http://127.0.0.1/mcp', command: [python]}}", "exactly one of command"),
        ("{mcp: {timeout: 3}}", "must be exactly {mcp: {command:"),
    ],
)
def test_bad_mcp_entries_are_refused_clearly(entry, message):
    text = _flow(SERVER).replace(f"{{mcp: {{command: {json.dumps(SERVER)}, timeout: 20}}}}", entry)
    with pytest.raises(FlowError, match=re.escape(message)):
        validate(load_text(text))


def test_check_with_trust_lists_the_tools_and_checks_the_rail(tmp_path, capsys):
    path = tmp_path / "mcp.flow.yaml"
    path.write_text(_flow(SERVER))
    assert main(["check", str(path), "--json"]) == 1
    assert "known only once the server runs" in capsys.readouterr().out
    assert main(["check", str(path), "--json", "--trust"]) == 0
    report = json.loads(capsys.readouterr().out)
    (rail,) = report["rails"]
    assert (rail["name"], rail["port"], rail["status"]) == ("small", "worker.add", "enforced")


def test_an_expanded_flow_still_needs_trust_to_run():
    expanded = expand_mcp(load_text(_flow(SERVER)), trust=True)
    assert set(expanded.nodes["worker"].config["tools"]) == TOOLS
    with pytest.raises(TrustError, match="tool 'add' is served by the MCP server"):
        Executor(expanded, model="default")


# -- streamable HTTP -------------------------------------------------------------------------


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def http_server():
    """The test server over streamable HTTP on loopback: ``(url, process)``."""
    port = _free_port()
    process = subprocess.Popen(
        [*SERVER, "http", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, "the MCP server did not start"
            time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/mcp", process
    finally:
        process.kill()
        process.wait()


def _http_flow(url):
    rail = "  small: {on: worker.add, check: add.a <= 100}"
    gentle = "  gentle: {on: worker.scale, check: scale.factor <= 3}"
    return _flow(None, f"{{mcp: {{url: '{url}', timeout: 20}}}}").replace(rail, f"{rail}\n{gentle}")


def test_an_agent_calls_a_real_mcp_server_over_streamable_http(http_server):
    url, _ = http_server
    tracer = MemoryTracer()
    replies = [
        calls(("add", {"a": 2, "b": 3}), ("scale", {"x": 3})),  # scale's factor: the server's default, 2
        calls(("scale", {"x": 1, "factor": 5})),  # refused by the rail on the defaulted argument
        calls(("trace_context", {})),
        answer("6"),
    ]
    with scripted(replies) as server:
        result = Executor(load_text(_http_flow(url)), model=server.model, trust=True, tracer=tracer).run(
            {"task": "go"}
        )
    assert result.status == "ok", result.error
    assert result.outputs == {"total": 6}
    offered = {t["function"]["name"]: t["function"]["parameters"] for t in server.requests[0]["tools"]}
    assert set(offered) == TOOLS
    assert offered["scale"]["properties"] == {
        "x": {"type": "integer"},
        "factor": {"type": "integer", "default": 2},
    }
    assert offered["scale"]["required"] == ["x"]  # note (optional, default null) is not offered
    added, scaled = server.tool_messages(1)
    assert json.loads(added["content"]) == {"result": 5}
    assert json.loads(scaled["content"]) == {"value": 6, "note": None}
    refused = server.tool_messages(2)[0]["content"]
    assert refused.startswith("refused, the call did not run") and "gentle" in refused
    # The request's _meta carried the trace context of the call: this run's trace, and a span
    # recorded under the call's execute_tool span (the MCP SDK's client span, or that span).
    context = json.loads(server.tool_messages(3)[0]["content"])
    _, trace_id, parent_id, flags = context["traceparent"].split("-")
    (call_span,) = tracer.by_name("execute_tool trace_context")
    assert (trace_id, flags) == (call_span.trace_id, "01")
    spans = {s.span_id: s for s in tracer.spans}
    assert parent_id == call_span.span_id or spans[parent_id].parent_id == call_span.span_id


def test_an_http_server_that_dies_mid_call_fails_the_node_fast(http_server):
    url, process = http_server
    start = time.perf_counter()
    replies = [calls(("add", {"a": 1, "b": 2})), calls(("die", {})), answer("3")]
    with scripted(replies) as server:
        result = Executor(load_text(_http_flow(url)), model=server.model, trust=True).run({"task": "go"})
    assert result.status == "failed"
    assert isinstance(result.error, NodeError)
    message = str(result.error)
    assert f"MCP server of tool entry 'calc' (at {url}) failed" in message
    assert "disconnected" in message or "Connection" in message, message
    assert process.wait(5) == 7
    assert time.perf_counter() - start < 15


def test_an_http_server_gone_before_the_node_runs_is_a_clear_error(http_server):
    url, process = http_server
    expanded = expand_mcp(load_text(_http_flow(url)), trust=True)  # listed while it was up
    process.kill()
    process.wait()
    start = time.perf_counter()
    with scripted([answer("0")]) as server:
        result = Executor(expanded, model=server.model, trust=True).run({"task": "go"})
    assert result.status == "failed"
    assert f"the MCP server of tool entry 'calc' (at {url}) could not be reached" in str(result.error)
    assert "ConnectError" in str(result.error)
    assert time.perf_counter() - start < 15


def test_an_unreachable_url_is_a_clear_error_at_plan_time():
    url = f"http://127.0.0.1:{_free_port()}/mcp"
    start = time.perf_counter()
    with pytest.raises(
        FlowError, match=re.escape(f"MCP server at {url} could not be reached to list its tools")
    ):
        expand_mcp(load_text(_http_flow(url)), trust=True)
    assert time.perf_counter() - start < 15


def test_an_untrusted_flow_may_not_connect_to_an_mcp_url():
    with pytest.raises(TrustError, match=re.escape("connects to the MCP server at http://127.0.0.1:9/mcp")):
        Executor(load_text(_http_flow("http://127.0.0.1:9/mcp")), model="default")


def test_a_url_entry_round_trips_through_the_flow_file():
    flow = load_text(_http_flow("http://127.0.0.1:9/mcp"))
    entry = McpServer(url="http://127.0.0.1:9/mcp", timeout=20)
    assert flow.nodes["worker"].config["tools"] == {"calc": entry}
    assert load_text(dumps(flow)).nodes["worker"].config["tools"] == {"calc": entry}
    scope: dict[str, object] = {}
    exec(flow_python(flow), scope)
    assert scope["flow"].nodes["worker"].config["tools"] == {"calc": entry}


def test_optional_and_defaulted_arguments_map_to_workbench_types():
    schema = {
        "type": "object",
        "properties": {
            "path": {"type": "string"},
            "limit": {"type": "integer", "minimum": 1, "default": 10},
            "mode": {"enum": ["fast", "safe"], "default": "safe"},
            "label": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
            "depth": {"type": ["integer", "null"]},
            "tags": {"type": "object", "default": {}},  # no workbench type: left out
            "bad": {"type": "integer", "default": "ten"},  # a default that does not fit: left out
            "owner": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "required": ["path", "owner"],
    }
    inputs, defaults = arguments_of(schema, "tool 'ls'")
    assert list(inputs) == ["path", "limit", "mode", "owner"]
    assert inputs["limit"] == Int(ge=1)
    assert inputs["owner"] == Str()  # required and nullable: a value must be sent
    assert defaults == {"limit": 10, "mode": "safe"}
    with pytest.raises(FlowError, match=r"tool 'ls': property 'x': .*has no type workbench maps"):
        arguments_of(
            {"type": "object", "properties": {"x": {"type": "object"}}, "required": ["x"]}, "tool 'ls'"
        )


def test_a_server_that_accepts_but_never_answers_is_an_error_not_a_hang(monkeypatch):
    monkeypatch.setattr("workbench.runtime.mcp.START_TIMEOUT", 1.0)
    with socket.socket() as silent:  # accepts connections (the kernel's backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/mcp"
        start = time.perf_counter()
        with pytest.raises(FlowError, match=r"could not be reached to list its tools within 1 s"):
            expand_mcp(load_text(_http_flow(url)), trust=True)
        assert time.perf_counter() - start < 10
        # The same at the node's run (the servers are connected again for each run).
        tool = AgentTool("mcp:calc.add", mcp=McpSource("calc", McpServer(url=url), "add"))

        async def connect():
            async with McpSessions("worker", [tool]):
                pass

        start = time.perf_counter()
        with pytest.raises(NodeError, match=r"\(at http://.*\) could not be reached: no answer in time"):
            asyncio.run(connect())
        assert time.perf_counter() - start < 10
