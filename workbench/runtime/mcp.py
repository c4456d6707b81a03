"""MCP tools for agent nodes: an ``mcp:`` entry expanded into typed tools, and their calls.

An ``mcp:`` entry of an agent's ``tools:`` names a stdio MCP server. Starting it runs a
program, so only a trusted flow may have one (``TrustError`` otherwise). ``expand_mcp``
(at plan time) starts each server once, lists its tools and maps each tool's JSON Schema
``inputSchema`` to workbench types, so that argument checks and rails ``on: NODE.TOOL``
work as for declared tools. Each run of the node starts the servers again
(``McpSessions``) and sends the calls through ``tools/call``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import tempfile
import threading
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any, TextIO

from workbench.errors import FlowError, NodeError, TrustError, UsageError
from workbench.flow.agent_tools import AgentTool, McpServer, McpSource, mcp_servers
from workbench.flow.model import Flow, Node
from workbench.types import Bool, Enum, Float, Int, List, Str, Type

__all__ = ["START_TIMEOUT", "McpSessions", "expand_mcp", "schema_type"]

START_TIMEOUT = 30.0  # seconds for a server to start and answer initialize / tools/list


def schema_type(schema: Any, where: str) -> Type:
    """The workbench type of one JSON Schema property (``where`` names it in errors)."""
    if not isinstance(schema, Mapping):
        raise FlowError(f"{where}: the schema {schema!r} is not a JSON Schema object")
    if "enum" in schema:
        values = schema["enum"]
        if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
            return Enum(*values)
        raise FlowError(f"{where}: only enums of strings are supported, got {values!r}")
    kind = schema.get("type")
    if kind == "string":
        return Str(max_len=schema.get("maxLength"), pattern=schema.get("pattern"))
    if kind == "integer":
        return Int(ge=schema.get("minimum"), le=schema.get("maximum"))
    if kind == "number":
        return Float(ge=schema.get("minimum"), le=schema.get("maximum"))
    if kind == "boolean":
        return Bool()
    if kind == "array":
        return List(schema_type(schema.get("items"), f"{where} items"), max_items=schema.get("maxItems"))
    raise FlowError(
        f"{where}: the schema {dict(schema)!r} has no type workbench maps (string, integer, number, "
        "boolean, a string enum or an array of those)"
    )


def arguments_of(schema: Any, where: str) -> dict[str, Type]:
    """The input ports of a tool from its ``inputSchema`` (an object of required properties)."""
    if not isinstance(schema, Mapping) or schema.get("type", "object") != "object":
        raise FlowError(f"{where}: the inputSchema must be an object schema, got {schema!r}")
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    inputs = {}
    for name, prop in properties.items():
        at = f"{where}: property '{name}'"
        if name not in required:
            raise FlowError(f"{at} is optional; workbench tools take required arguments only")
        if not isinstance(name, str) or not name.isidentifier():
            raise FlowError(f"{at}: the name is not an identifier")
        inputs[name] = schema_type(prop, at)
    return inputs


def _parameters(server: McpServer) -> Any:
    from mcp import StdioServerParameters

    program, *args = server.command
    return StdioServerParameters(command=program, args=args)


def _client(server: McpServer, errlog: TextIO) -> Any:
    """A client of ``server``; the server's stderr goes to ``errlog`` (sys.stderr may be no file)."""
    from mcp import Client
    from mcp.client.stdio import stdio_client

    return Client(stdio_client(_parameters(server), errlog=errlog), read_timeout_seconds=START_TIMEOUT)


def _errlog() -> TextIO:
    """A temporary file for a server's stderr."""
    return tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")


def _tail(errlog: TextIO) -> str:
    """The end of what a server wrote to stderr, for an error message."""
    errlog.flush()
    errlog.seek(0)
    text = errlog.read()[-600:].strip()
    return f"; its stderr ends with: {text}" if text else ""


async def _list_tools(server: McpServer, errlog: TextIO) -> list[Any]:
    async with _client(server, errlog) as client:
        return list((await client.list_tools()).tools)


def _in_thread(server: McpServer, where: str) -> list[Any]:
    """The server's tools, listed on a fresh event loop (plan time may be inside a running one)."""
    box: dict[str, Any] = {}
    with _errlog() as errlog:

        def work() -> None:
            try:
                box["tools"] = asyncio.run(asyncio.wait_for(_list_tools(server, errlog), START_TIMEOUT))
            except BaseException as exc:  # handed to the caller's thread
                box["error"] = exc

        thread = threading.Thread(target=work, name="workbench-mcp-list", daemon=True)
        thread.start()
        thread.join(START_TIMEOUT + 5)
        if "tools" in box:
            return list(box["tools"])
        cause = box.get("error")
        reason = f"{type(cause).__name__}: {cause}" if cause is not None else "no answer"
        raise FlowError(
            f"{where}: the MCP server {server.command!r} did not start and list its tools within "
            f"{START_TIMEOUT:g} s ({reason}{_tail(errlog)})"
        )


def _expand_node(node: Node, servers: Mapping[str, McpServer], flow_name: str) -> Node:
    tools: dict[str, Any] = {}
    for entry, spec in node.config["tools"].items():
        if not isinstance(spec, McpServer):
            tools[entry] = spec
            continue
        where = f"flow '{flow_name}' node '{node.name}' mcp entry '{entry}'"
        for listed in _in_thread(spec, where):
            name = listed.name
            at = f"{where}: tool '{name}'"
            if not isinstance(name, str) or not name.isidentifier():
                raise FlowError(f"{at}: the name is not an identifier, so no rail could name it")
            if name in tools or name in servers or name in node.inputs or name in node.outputs:
                raise FlowError(f"{at} has the name of another tool or port of the node")
            tools[name] = AgentTool(
                f"mcp:{entry}.{name}",
                listed.description,
                arguments_of(listed.input_schema, f"{at} inputSchema"),
                {},
                False,
                spec.timeout,
                mcp=McpSource(entry, spec, name),
            )
    return dataclasses.replace(node, config={**node.config, "tools": tools})


def expand_mcp(flow: Flow, *, trust: bool) -> Flow:
    """``flow`` with each ``mcp:`` entry replaced by its server's tools (a copy; the same if none).

    Starts each server once to list its tools, so an untrusted flow with an entry is refused.
    """
    nodes = {name: mcp_servers(node) for name, node in flow.nodes.items()}
    if not any(nodes.values()):
        return flow
    if not trust:
        name, servers = next((n, s) for n, s in nodes.items() if s)
        entry, server = next(iter(servers.items()))
        raise TrustError(
            f"flow '{flow.name}' node '{name}': tool entry '{entry}' starts the MCP server "
            f"{server.command!r}, a program that could do anything, so an untrusted flow may not use "
            "it. If you trust this flow, pass --trust on the command line or trust=True in Python"
        )
    try:
        import mcp  # noqa: F401  (the optional extra)
    except ImportError as exc:
        raise UsageError(
            f"flow '{flow.name}' has MCP tools, which need the MCP SDK: pip install 'agent-workbench[mcp]'"
        ) from exc
    expanded = {
        name: _expand_node(node, nodes[name], flow.name) if nodes[name] else node
        for name, node in flow.nodes.items()
    }
    return dataclasses.replace(flow, nodes=expanded)


class McpSessions:
    """The MCP servers of one agent node run, started on entry and stopped on exit."""

    def __init__(self, node: str, tools: list[AgentTool]) -> None:
        self.node = node
        self.servers = {t.mcp.entry: t.mcp.server for t in tools if t.mcp is not None}
        self.clients: dict[str, Any] = {}
        self.errlogs: dict[str, TextIO] = {}
        self.stack = AsyncExitStack()

    async def __aenter__(self) -> McpSessions:
        try:
            for entry, server in self.servers.items():
                errlog = self.stack.enter_context(_errlog())
                self.errlogs[entry] = errlog
                try:
                    self.clients[entry] = await self.stack.enter_async_context(_client(server, errlog))
                except Exception as exc:
                    raise NodeError(
                        self.node,
                        f"the MCP server of tool entry '{entry}' ({server.command!r}) did not start: "
                        f"{type(exc).__name__}: {exc}{_tail(errlog)}",
                    ) from exc
        except BaseException:
            await self.stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stack.aclose()

    async def call(self, source: McpSource, arguments: dict[str, Any], timeout: float) -> tuple[str, str]:
        """``(status, tool message)`` of one ``tools/call``; a dead server is a ``NodeError``."""
        client = self.clients[source.entry]
        try:
            result = await asyncio.wait_for(client.call_tool(source.tool, arguments), timeout)
        except TimeoutError:
            return "timeout", f"error: tool '{source.tool}' did not finish within {timeout:g} s"
        except Exception as exc:
            raise NodeError(
                self.node,
                f"the MCP server of tool entry '{source.entry}' ({source.server.command!r}) failed "
                f"on a call of '{source.tool}': {type(exc).__name__}: {exc}"
                + _tail(self.errlogs[source.entry]),
            ) from exc
        texts = [block.text for block in result.content if getattr(block, "type", None) == "text"]
        if result.is_error:
            return "error", f"error: tool '{source.tool}' failed: {' '.join(texts) or 'no message'}"
        if result.structured_content is not None:
            return "ok", _json(result.structured_content)
        return "ok", _json({"content": texts})


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)
