"""A tiny MCP server for the agent tests, run over stdio: ``python -m tests.runtime.mcp_server``.

It offers ``add(a, b)``, which returns the sum, and ``fail()``, which always raises.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("workbench-test")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def fail() -> str:
    """Always fails."""
    raise ToolError("the disk is on fire")


if __name__ == "__main__":
    server.run("stdio")
