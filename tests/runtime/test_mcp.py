"""MCP tools of agent nodes: a real MCP server (tests/runtime/mcp_server.py) over stdio,
driven by the scripted OpenAI-compatible server."""

from __future__ import annotations

import json
import re
import sys
import time

import pytest

from tests.runtime.scripted_openai import answer, calls, scripted
from workbench.app.export import flow_python
from workbench.cli import main
from workbench.errors import FlowError, NodeError, TrustError
from workbench.flow.agent_tools import McpServer
from workbench.flow.io import dumps
from workbench.flow.io import loads as load_text
from workbench.flow.validate import validate
from workbench.runtime import Executor
from workbench.runtime.mcp import expand_mcp, schema_type

SERVER = [sys.executable, "-m", "tests.runtime.mcp_server"]


def _flow(command):
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
      calc: {{mcp: {{command: {json.dumps(command)}, timeout: 20}}}}
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
    assert set(offered) == {"add", "fail"}
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
    assert set(expanded.nodes["worker"].config["tools"]) == {"add", "fail"}
    with pytest.raises(TrustError, match="tool 'add' is served by the MCP server"):
        Executor(expanded, model="default")
