"""What the canvas inspector shows of a node: its editable fields and its kind's details.

Editable fields are text boxes (``FIELDS``); ``config_value`` turns a box's text into the
config value and refuses one that would make the node invalid for its kind. The rest
(an agent's tools, a router's routes, a vote's rule...) is shown read-only as lines of
text (``kind_details``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from workbench.flow import AgentTool, Flow, Node
from workbench.flow.agent_tools import McpServer
from workbench.flow.kinds import KINDS

__all__ = ["FIELDS", "config_value", "kind_details"]

# The config keys each kind edits in the inspector, in this order.
FIELDS: dict[str, tuple[str, ...]] = {
    "tool": ("tool",),
    "llm": ("model", "prompt", "system"),
    "agent": ("model", "prompt", "system", "max_steps"),
    "loop": ("max_iterations", "until"),
}
WHOLE_NUMBERS = ("max_steps", "max_iterations")
# Keys shown elsewhere in the inspector (or by kind_details) rather than as "other settings".
_SHOWN = {"tools", "routes", "default", "flow", "rule", "quorum", "tie", "no_winner"}


def config_value(node: Node, key: str, text: str, flow: Flow) -> Any:
    """The config value that the text ``text`` of field ``key`` stands for (``None``: remove the key).

    Raises ``ValueError`` (its message says why) for text that is not of the key's type, or
    an edit that gives the node a problem for its kind that it did not have before.
    """
    value: Any = text if text.strip() else None
    if value is not None and key in WHOLE_NUMBERS:
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError(f"{node.name}.{key} must be a whole number, got {text.strip()!r}") from None
    spec = KINDS.get(node.kind)
    if spec is None or spec.check is None:
        return value
    config = {k: v for k, v in node.config.items() if k != key}
    if value is not None:
        config[key] = value
    before = set(spec.check(node, flow))
    after = [p for p in spec.check(dataclasses.replace(node, config=config), flow) if p not in before]
    if after:
        raise ValueError(after[0])
    return value


def _ports(ports: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}: {t.describe()}" for k, t in ports.items()) or "nothing"


def _server(server: McpServer) -> str:
    if server.url is not None:
        return f"MCP server over HTTP at {server.url}"
    command = server.command
    shown = " ".join(str(c) for c in command) if isinstance(command, list) else repr(command)
    return f"MCP server (stdio): {shown}"


def _tool_lines(name: str, tool: object) -> list[str]:
    """One agent tool: where it comes from, whether a human approves its calls, its ports."""
    if isinstance(tool, McpServer):
        extra = f" · timeout {tool.timeout} s" if tool.timeout is not None else ""
        return [
            f"{name} · {_server(tool)}{extra}",
            "  its tools are known once the server runs (workbench check --trust lists them)",
        ]
    if not isinstance(tool, AgentTool):
        return [f"{name} · {tool!r}"]
    if tool.mcp is not None:
        source = f"tool {tool.mcp.tool} of {_server(tool.mcp.server)}"
    else:
        source = f"python function {tool.tool}"
    approve = "approve: yes, a human decides each call" if tool.approve is True else "approve: no"
    timeout = f" · timeout {tool.timeout} s" if tool.timeout is not None else ""
    lines = [f"{name} · {source}", f"  {approve}{timeout}"]
    if tool.description:
        lines.append(f"  {tool.description}")
    lines += [f"  in  {_ports(tool.inputs)}", f"  out {_ports(tool.outputs)}"]
    return lines


def kind_details(node: Node) -> list[str]:
    """Read-only lines about ``node`` beyond its ports and fields (empty when there is nothing)."""
    config = node.config
    lines: list[str] = []
    if node.kind == "agent":
        tools = config.get("tools")
        tools = tools if isinstance(tools, Mapping) else {}
        lines.append(f"tools ({len(tools)})")
        for name, tool in tools.items():
            lines += _tool_lines(str(name), tool)
    elif node.kind == "router":
        lines.append("routes (the first that holds)")
        routes = config.get("routes")
        for port, cond in (routes if isinstance(routes, Mapping) else {}).items():
            lines.append(f"  {port} when {cond}")
        lines.append(f"  otherwise {config.get('default') or 'nothing (the run fails)'}")
    elif node.kind == "vote":
        lines.append(f"rule: {config.get('rule', 'majority')}")
        if "quorum" in config:
            lines.append(f"quorum: {config['quorum']}")
        lines.append(f"tie: {config.get('tie', 'fail')}  no winner: {config.get('no_winner', 'fail')}")
    elif node.kind == "loop":
        lines.append("the body between item and next runs once per iteration,")
        lines.append("until 'until' holds on next or max_iterations is reached; then result")
    elif node.kind == "flow":
        inner = config.get("flow")
        if isinstance(inner, Flow):
            lines.append(f"sub-flow {inner.name}: {len(inner.nodes)} nodes, {len(inner.wires)} wires")
    other = [k for k in config if k not in _SHOWN and k not in FIELDS.get(node.kind, ())]
    if other:
        lines.append("other settings: " + ", ".join(f"{k}: {config[k]!r}" for k in other))
    if node.timeout is not None or node.retries:
        lines.append(f"timeout: {node.timeout} s, retries: {node.retries}")
    return lines
