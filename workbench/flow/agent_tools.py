"""The tools an ``agent`` node offers its model: ``AgentTool`` and the checks of its entries.

In a flow file an agent's ``tools:`` maps a tool name to its function and typed ports::

    tools:
      quote: {tool: "pkg.mod:fn", description: "...", inputs: {ticker: str}, outputs: {price: float}}
      buy:   {tool: "pkg.mod:fn", inputs: {qty: {int: {ge: 1}}}, outputs: {filled: int}, approve: true}

An entry ``{mcp: {command: [...], timeout: 30}}`` or ``{mcp: {url: "http://.../mcp"}}`` (an
``McpServer``) stands for every tool of an MCP server (over stdio or streamable HTTP); a
trusted run expands it (``workbench.runtime.mcp``) into one ``AgentTool`` per server tool,
named as the server names it.

A rail ``on: NODE.TOOL`` sees the call's arguments as a record named after the tool.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from workbench.types import Record, Type, as_type

if TYPE_CHECKING:
    from workbench.flow.model import Node

__all__ = [
    "MCP_KEYS",
    "TOOL_KEYS",
    "AgentTool",
    "McpServer",
    "McpSource",
    "agent_tool",
    "arguments_type",
    "mcp_servers",
    "tool_parameters",
    "tool_problems",
    "with_defaults",
]

TOOL_KEYS = ("tool", "description", "inputs", "outputs", "approve", "timeout")
MCP_KEYS = ("command", "url", "timeout")


@dataclass(eq=True)
class McpServer:
    """An ``mcp:`` entry of an agent's tools: an MCP server whose tools the agent gets.

    ``command`` is the argument list that starts a stdio server, ``url`` the endpoint of a
    streamable HTTP one (exactly one of the two); ``timeout`` bounds each call.
    """

    command: Any = None
    timeout: Any = None
    url: Any = None

    def describe(self) -> str:
        """The server in an error message: its command, or where it is."""
        return f"at {self.url}" if self.url is not None else repr(self.command)

    def to_data(self) -> dict[str, Any]:
        """The flow-file mapping of this entry."""
        spec: dict[str, Any] = {"url": self.url} if self.url is not None else {"command": self.command}
        if self.timeout is not None:
            spec["timeout"] = self.timeout
        return {"mcp": spec}


@dataclass(frozen=True)
class McpSource:
    """Where an expanded tool came from: the ``mcp:`` entry, its server and the server's tool name.

    ``defaults`` holds the server's defaults of arguments the model may leave out.
    """

    entry: str
    server: McpServer
    tool: str
    defaults: tuple[tuple[str, Any], ...] = ()


@dataclass(eq=True)
class AgentTool:
    """One tool of an agent node. ``fn`` (never saved) carries a callable handed over in Python."""

    tool: Any  # "module:function", checked by ``tool_problems``
    description: Any = None
    inputs: dict[str, Type] = field(default_factory=dict)
    outputs: dict[str, Type] = field(default_factory=dict)
    approve: Any = False
    timeout: Any = None
    fn: Callable[..., Any] | None = field(default=None, compare=False, repr=False)
    mcp: McpSource | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.inputs = {str(k): as_type(v) for k, v in self.inputs.items()}
        self.outputs = {str(k): as_type(v) for k, v in self.outputs.items()}

    @classmethod
    def of(
        cls,
        fn: str | Callable[..., Any],
        *,
        inputs: Mapping[str, Any],
        outputs: Mapping[str, Any],
        **extra: Any,
    ) -> AgentTool:
        """A tool calling ``fn`` (a callable or ``"module:function"``), for Python-built flows."""
        ref = fn if isinstance(fn, str) else f"{fn.__module__}:{fn.__qualname__}"
        return cls(
            ref, inputs=dict(inputs), outputs=dict(outputs), fn=None if isinstance(fn, str) else fn, **extra
        )

    def to_data(self, type_spec: Callable[[Type], Any]) -> dict[str, Any]:
        """The flow-file mapping of this tool (``type_spec`` writes each port type)."""
        out: dict[str, Any] = {"tool": self.tool}
        if self.description is not None:
            out["description"] = self.description
        out["inputs"] = {k: type_spec(t) for k, t in self.inputs.items()}
        out["outputs"] = {k: type_spec(t) for k, t in self.outputs.items()}
        if self.approve is not False:
            out["approve"] = self.approve
        if self.timeout is not None:
            out["timeout"] = self.timeout
        return out


def agent_tool(node: Node, name: str) -> AgentTool | None:
    """The tool ``name`` of agent node ``node``, or ``None``."""
    if node.kind != "agent":
        return None
    tools = node.config.get("tools")
    tool = tools.get(name) if isinstance(tools, Mapping) else None
    return tool if isinstance(tool, AgentTool) else None


def mcp_servers(node: Node) -> dict[str, McpServer]:
    """The ``mcp:`` entries of an agent node not expanded yet, by entry name."""
    tools = node.config.get("tools") if node.kind == "agent" else None
    if not isinstance(tools, Mapping):
        return {}
    return {name: spec for name, spec in tools.items() if isinstance(spec, McpServer)}


def arguments_type(tool: AgentTool) -> Record | None:
    """The record a call's arguments must fit (``None`` for a tool without inputs)."""
    return Record(None, tool.inputs) if tool.inputs else None


def tool_parameters(tool: AgentTool) -> dict[str, Any]:
    """The JSON Schema of a tool's arguments as offered to a model (bounds and defaults included).

    An argument with a default (an MCP tool's) is not required: a call that leaves it out
    gets the default (``with_defaults``) before the type and the rails see it.
    """
    arguments = arguments_type(tool)
    if arguments is None:
        return {"type": "object", "properties": {}, "additionalProperties": False}
    schema = arguments.to_json_schema()
    defaults = dict(tool.mcp.defaults) if tool.mcp is not None else {}
    if defaults:
        schema["required"] = [name for name in schema["required"] if name not in defaults]
        for name, value in defaults.items():
            schema["properties"][name] = {**schema["properties"][name], "default": value}
    return schema


def with_defaults(tool: AgentTool, arguments: Mapping[str, Any]) -> Mapping[str, Any]:
    """A call's arguments with the tool's defaults for those it leaves out."""
    if tool.mcp is None or not tool.mcp.defaults:
        return arguments
    return {**dict(tool.mcp.defaults), **arguments}


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < float("inf")


def tool_problems(node: Node) -> list[str]:
    """Every problem with an agent node's ``tools:`` entries."""
    tools = node.config.get("tools")
    where = f"node '{node.name}'"
    if not isinstance(tools, Mapping) or not tools:
        return [
            f"{where}: an agent needs 'tools', a mapping of tool name to {{tool: 'module:function', ...}}"
        ]
    found = []
    for name, tool in tools.items():
        at = f"{where}: tool '{name}'"
        if not isinstance(name, str) or not name.isidentifier():
            found.append(f"{where}: tool name {name!r} is not an identifier")
            continue
        if name in node.inputs or name in node.outputs:
            found.append(f"{at} has the name of one of the node's ports; rename one of them")
        if isinstance(tool, McpServer):
            found += _server_problems(tool, at)
            continue
        if not isinstance(tool, AgentTool):
            found.append(
                f"{at} must be a mapping with 'tool: module:function' or 'mcp: {{command: [...]}}' "
                "(an AgentTool or McpServer in Python)"
            )
            continue
        ref = tool.tool
        if tool.mcp is None and (not isinstance(ref, str) or ref.count(":") != 1 or not all(ref.split(":"))):
            found.append(f"{at}: tool must be 'module:function', got {ref!r}")
        if tool.description is not None and not isinstance(tool.description, str):
            found.append(f"{at}: description must be a string")
        if not isinstance(tool.approve, bool):
            found.append(f"{at}: approve must be true or false")
        if tool.timeout is not None and not _positive(tool.timeout):
            found.append(f"{at}: timeout must be a positive number of seconds")
        if not tool.outputs and tool.mcp is None:
            found.append(f"{at} needs at least one output port (the tool returns a mapping of them)")
    return found


def _server_problems(server: McpServer, at: str) -> list[str]:
    command, url = server.command, server.url
    found = []
    if (command is None) == (url is None):
        found.append(f"{at}: an mcp entry needs exactly one of command (a stdio server) and url (HTTP)")
    elif url is not None:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            found.append(f"{at}: mcp url must be an http:// or https:// address, got {url!r}")
    elif not isinstance(command, list) or not command or not all(isinstance(a, str) and a for a in command):
        found.append(f"{at}: mcp command must be a non-empty list of strings (the program and its arguments)")
    if server.timeout is not None and not _positive(server.timeout):
        found.append(f"{at}: mcp timeout must be a positive number of seconds")
    return found
