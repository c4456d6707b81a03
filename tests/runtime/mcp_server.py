"""A tiny MCP server for the agent tests: ``python -m tests.runtime.mcp_server`` serves it over
stdio, ``python -m tests.runtime.mcp_server http PORT`` over streamable HTTP at
``http://127.0.0.1:PORT/mcp``.

Tools: ``add(a, b)`` returns the sum; ``fail()`` always raises; ``scale(x, factor=2,
note=None)`` has a defaulted and an optional argument; ``trace_context()`` returns the W3C
trace context the request carried in ``_meta``; ``die()`` ends the server's process at once.
"""

from __future__ import annotations

import os
import sys

from mcp.server.mcpserver import Context, MCPServer
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


@server.tool()
def scale(x: int, factor: int = 2, note: str | None = None) -> dict[str, object]:
    """Multiply ``x`` by ``factor``; ``note`` is echoed back."""
    return {"value": x * factor, "note": note}


@server.tool()
def trace_context(ctx: Context) -> dict[str, object]:
    """The trace context fields of this request's ``_meta``."""
    meta = ctx.request_context.meta or {}
    return {"traceparent": meta.get("traceparent"), "tracestate": meta.get("tracestate")}


@server.tool()
def die() -> str:
    """Ends the server process without answering."""
    os._exit(7)


if __name__ == "__main__":
    if sys.argv[1:2] == ["http"]:
        import uvicorn

        uvicorn.run(
            server.streamable_http_app(), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning"
        )
    else:
        server.run("stdio")
