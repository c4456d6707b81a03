"""MCP tools for agent nodes: an ``mcp:`` entry expanded into typed tools, and their calls.

An ``mcp:`` entry of an agent's ``tools:`` names an MCP server: ``command:`` starts one
over stdio, ``url:`` reaches one over streamable HTTP. Either runs tools that could do
anything (and a URL in a flow file could point anywhere), so only a trusted flow may have
one (``TrustError`` otherwise). ``expand_mcp`` (at plan time) connects to each server once,
lists its tools and maps each tool's JSON Schema ``inputSchema`` to workbench types, so
that argument checks and rails ``on: NODE.TOOL`` work as for declared tools. Each run of
the node connects again (``McpSessions``) and sends the calls through ``tools/call``.

Arguments: a required property must map to a workbench type (else the flow is refused,
naming it); a property with a default is offered as optional and a call that leaves it
out gets the default; an optional property without a usable default (``None``, or a type
workbench does not map) is not offered, so the server applies its own behaviour.

Each request carries the W3C trace context of the tool call's ``execute_tool`` span in its
``_meta`` (``traceparent``, as the MCP SDK's OpenTelemetry support also sets it). A server
that dies, or cannot be reached, fails the node with its reason (and the end of a stdio
server's stderr) within ``START_TIMEOUT`` or the tool's ``timeout``, never a hang.
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

from workbench.errors import FlowError, NodeError, TrustError, UsageError, ValueValidationError
from workbench.flow.agent_tools import AgentTool, McpServer, McpSource, mcp_servers
from workbench.flow.model import Flow, Node
from workbench.otel import traceparent
from workbench.types import Bool, Enum, Float, Int, List, Str, Type

__all__ = ["START_TIMEOUT", "McpSessions", "expand_mcp", "schema_type"]

START_TIMEOUT = 30.0  # seconds for a server to start (or answer) initialize / tools/list


def _not_null(schema: Mapping[str, Any]) -> Any:
    """``T`` for a nullable ``T`` (``anyOf: [T, {type: null}]`` or ``type: [t, "null"]``)."""
    options = schema.get("anyOf")
    if isinstance(options, list):
        rest = [o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")]
        if len(rest) == 1 and len(rest) < len(options):
            return rest[0]
    kind = schema.get("type")
    if isinstance(kind, list) and "null" in kind and len(kind) == 2:
        return {**schema, "type": next(k for k in kind if k != "null")}
    return schema


def schema_type(schema: Any, where: str) -> Type:
    """The workbench type of one JSON Schema property (``where`` names it in errors).

    A nullable type maps to the type (a model's call sends a value, never null).
    """
    if not isinstance(schema, Mapping):
        raise FlowError(f"{where}: the schema {schema!r} is not a JSON Schema object")
    schema = _not_null(schema)
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


def arguments_of(schema: Any, where: str) -> tuple[dict[str, Type], dict[str, Any]]:
    """The input ports of a tool from its ``inputSchema``, and the defaults of optional ones.

    Required properties must map; an optional one is kept when it has a default that fits
    its type, and left out otherwise (the model cannot send it; the server does without).
    """
    if not isinstance(schema, Mapping) or schema.get("type", "object") != "object":
        raise FlowError(f"{where}: the inputSchema must be an object schema, got {schema!r}")
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    inputs: dict[str, Type] = {}
    defaults: dict[str, Any] = {}
    for name, prop in properties.items():
        at = f"{where}: property '{name}'"
        if name in required:
            if not isinstance(name, str) or not name.isidentifier():
                raise FlowError(f"{at}: the name is not an identifier")
            inputs[name] = schema_type(prop, at)
            continue
        default = prop.get("default") if isinstance(prop, Mapping) else None
        if default is None or not isinstance(name, str) or not name.isidentifier():
            continue  # optional, no value workbench could send for "absent": not offered
        try:
            typ = schema_type(prop, at)
            defaults[name] = typ.validate(default, at)
        except (FlowError, ValueValidationError):
            continue
        inputs[name] = typ
    return inputs, defaults


def _parameters(server: McpServer) -> Any:
    from mcp import StdioServerParameters

    program, *args = server.command
    return StdioServerParameters(command=program, args=args)


def _client(server: McpServer, errlog: TextIO) -> Any:
    """A client of ``server``; a stdio server's stderr goes to ``errlog`` (sys.stderr may be no file)."""
    from mcp import Client

    if server.url is not None:
        return Client(server.url, read_timeout_seconds=START_TIMEOUT)
    from mcp.client.stdio import stdio_client

    return Client(stdio_client(_parameters(server), errlog=errlog), read_timeout_seconds=START_TIMEOUT)


def _reason(exc: BaseException) -> str:
    """What went wrong, with the task groups of the SDK's transports unwrapped."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(dict.fromkeys(_reason(e) for e in exc.exceptions))
    if isinstance(exc, TimeoutError) and not str(exc):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}"


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
        reason = _reason(cause) if cause is not None else "no answer"
        what = "could not be reached to list" if server.url is not None else "did not start and list"
        raise FlowError(
            f"{where}: the MCP server {server.describe()} {what} its tools within "
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
            inputs, defaults = arguments_of(listed.input_schema, f"{at} inputSchema")
            tools[name] = AgentTool(
                f"mcp:{entry}.{name}",
                listed.description,
                inputs,
                {},
                False,
                spec.timeout,
                mcp=McpSource(entry, spec, name, tuple(defaults.items())),
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
        uses = (
            f"connects to the MCP server {server.describe()}"
            if server.url
            else (f"starts the MCP server {server.describe()}, a program")
        )
        raise TrustError(
            f"flow '{flow.name}' node '{name}': tool entry '{entry}' {uses} whose tools could do "
            "anything, so an untrusted flow may not use it. If you trust this flow, pass --trust "
            "on the command line or trust=True in Python"
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
    """The MCP servers of one agent node run, connected on entry and closed on exit.

    Each server's client lives on its own exit stack: when a server dies mid-run, the SDK's
    transport fails its task group, which cancels the node's work and comes out when that
    stack closes; ``__aexit__`` turns it into a ``NodeError`` naming the entry and the reason.
    """

    def __init__(self, node: str, tools: list[AgentTool]) -> None:
        self.node = node
        self.servers = {t.mcp.entry: t.mcp.server for t in tools if t.mcp is not None}
        self.clients: dict[str, Any] = {}
        self.errlogs: dict[str, TextIO] = {}
        self.stacks: dict[str, AsyncExitStack] = {}

    async def __aenter__(self) -> McpSessions:
        try:
            for entry, server in self.servers.items():
                errlog = self.errlogs[entry] = _errlog()
                stack = self.stacks[entry] = AsyncExitStack()
                try:
                    async with asyncio.timeout(START_TIMEOUT):
                        self.clients[entry] = await stack.enter_async_context(_client(server, errlog))
                except Exception as exc:
                    what = "could not be reached" if server.url is not None else "did not start"
                    raise NodeError(
                        self.node,
                        f"the MCP server of tool entry '{entry}' ({server.describe()}) {what}: "
                        f"{_reason(exc)}{_tail(errlog)}",
                    ) from exc
        except BaseException:
            await self._close(report=False)  # the reason it did not start is the one to tell
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._close()

    async def _close(self, *, report: bool = True) -> None:
        """Close every client; with ``report``, the first server that failed meanwhile fails the node."""
        failed: NodeError | None = None
        for entry, stack in reversed(self.stacks.items()):
            try:
                await stack.aclose()
            except Exception as exc:
                if failed is None:
                    failed = NodeError(
                        self.node,
                        f"the MCP server of tool entry '{entry}' ({self.servers[entry].describe()}) "
                        f"failed: {_reason(exc)}{_tail(self.errlogs[entry])}",
                    )
                    failed.__cause__ = exc
        for errlog in self.errlogs.values():
            errlog.close()
        self.stacks.clear()
        if failed is not None and report:
            raise failed

    async def call(self, source: McpSource, arguments: dict[str, Any], timeout: float) -> tuple[str, str]:
        """``(status, tool message)`` of one ``tools/call``; a dead server is a ``NodeError``."""
        client = self.clients[source.entry]
        parent = traceparent()  # the SDK replaces it with its own span's when OpenTelemetry records
        meta = {"traceparent": parent} if parent is not None else None
        try:
            result = await asyncio.wait_for(client.call_tool(source.tool, arguments, meta=meta), timeout)
        except TimeoutError:
            return "timeout", f"error: tool '{source.tool}' did not finish within {timeout:g} s"
        except Exception as exc:
            raise NodeError(
                self.node,
                f"the MCP server of tool entry '{source.entry}' ({source.server.describe()}) failed "
                f"on a call of '{source.tool}': {_reason(exc)}" + _tail(self.errlogs[source.entry]),
            ) from exc
        texts = [block.text for block in result.content if getattr(block, "type", None) == "text"]
        if result.is_error:
            return "error", f"error: tool '{source.tool}' failed: {' '.join(texts) or 'no message'}"
        if result.structured_content is not None:
            return "ok", _json(result.structured_content)
        return "ok", _json({"content": texts})


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)
