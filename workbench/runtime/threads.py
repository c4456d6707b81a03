"""The worker threads that synchronous tools run on, so one slow tool does not stop the loop.

One pool per process, made on first use and bounded: ``WORKBENCH_TOOL_THREADS`` threads,
else ``min(32, cores + 4)`` (the standard library's default). Bounded because a thread
cannot be stopped from outside: a tool that runs past its node's ``timeout`` fails the
node at once but keeps its thread until the function returns (and the interpreter waits
for it at exit, as for any pool thread), and a bound is what keeps hung tools from growing
threads without end (calls beyond it wait for a free thread, still under their own timeouts).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from workbench.errors import UsageError

__all__ = ["run_in_pool", "tool_pool"]

_lock = threading.Lock()
_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_pid = 0


def _size() -> int:
    text = os.environ.get("WORKBENCH_TOOL_THREADS", "").strip()
    if not text:
        return min(32, (os.cpu_count() or 1) + 4)
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"WORKBENCH_TOOL_THREADS must be a positive integer, got {text!r}")
    return int(text)


def tool_pool() -> concurrent.futures.ThreadPoolExecutor:
    """The process's pool for synchronous tools (a new one in a forked child)."""
    global _pool, _pool_pid
    pid = os.getpid()
    if _pool is None or _pool_pid != pid:  # a forked child has none of its parent's threads
        with _lock:
            if _pool is None or _pool_pid != pid:
                _pool = concurrent.futures.ThreadPoolExecutor(_size(), thread_name_prefix="workbench-tool")
                _pool_pid = pid
    return _pool


async def run_in_pool(fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> Any:
    """``fn(**kwargs)`` on a pool thread, in a copy of the caller's context (as ``asyncio.to_thread``)."""
    call = functools.partial(contextvars.copy_context().run, fn, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(tool_pool(), call)
