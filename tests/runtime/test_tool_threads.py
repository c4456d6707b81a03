"""Synchronous tools run on a bounded worker pool; ``inline: true`` keeps a tool on the event loop."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from workbench.errors import FlowValidationError, NodeTimeout, UsageError
from workbench.flow import Flow, Node, dumps, loads, problems
from workbench.runtime import Executor, execute
from workbench.runtime import threads as tool_threads


def nap(x: int) -> dict:
    time.sleep(0.5)
    return {"y": x}


def where(x: int) -> dict:
    return {"y": threading.current_thread().name}


def one_tool(fn, out: type = int, **extra) -> Flow:
    flow = Flow("one", inputs={"x": int}, outputs={"y": out})
    flow.add(Node.tool("t", fn, inputs={"x": int}, outputs={"y": out}, **extra))
    return flow.connect("x", "t.x").connect("t.y", "y")


def test_concurrent_runs_of_a_sleeping_sync_tool_overlap():
    executor = Executor(one_tool(nap))

    async def four() -> list:
        return await asyncio.gather(*(executor.arun({"x": i}) for i in range(4)))

    start = time.perf_counter()
    results = asyncio.run(four())
    elapsed = time.perf_counter() - start
    assert [r.outputs for r in results] == [{"y": i} for i in range(4)]
    # Serialised on the event loop these take 2 s; on the pool about 0.5 s.
    assert elapsed < 1.5, f"four concurrent runs of a 0.5 s tool took {elapsed:.2f} s"


def test_sync_tools_run_on_the_pool_and_inline_ones_on_the_loop():
    assert execute(one_tool(where, str), {"x": 1}).outputs["y"].startswith("workbench-tool")
    inline = one_tool(where, str)
    inline.nodes["t"].config["inline"] = True
    assert execute(inline, {"x": 1}).outputs["y"] == threading.current_thread().name
    inline.nodes["t"].retries = 1  # run as a task then, still on the loop's thread
    assert execute(inline, {"x": 1}).outputs["y"] == threading.current_thread().name


def test_inline_is_a_flow_file_key_that_saves_and_loads():
    text = """
flow: f
inputs: {x: int}
outputs: {y: int}
nodes:
  t: {kind: tool, tool: 'workbench.examples.support:redact', inline: true,
      inputs: {x: int}, outputs: {y: int}}
wires: [x -> t.x, t.y -> y]
"""
    flow = loads(text)
    assert flow.nodes["t"].config["inline"] is True and problems(flow) == []
    assert loads(dumps(flow)) == flow and "inline: true" in dumps(flow)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("inline: yes please", "inline must be true or false"),
        ("inline: true, timeout: 1", "an inline tool cannot have a timeout"),
        ("inline: true, blocking: true", "either inline"),
    ],
)
def test_bad_inline_settings_are_refused(keys, message):
    text = f"""
flow: f
inputs: {{x: int}}
outputs: {{y: int}}
nodes:
  t: {{kind: tool, tool: 'a:b', {keys}, inputs: {{x: int}}, outputs: {{y: int}}}}
wires: [x -> t.x, t.y -> y]
"""
    with pytest.raises(FlowValidationError, match=message):
        Executor(loads(text))


def test_a_hung_pooled_tool_times_out_and_hung_tools_stay_within_the_pool_bound():
    release = threading.Event()

    def hang(x: int) -> dict:
        release.wait(30)
        return {"y": x}

    bound = tool_threads.tool_pool()._max_workers
    executor = Executor(one_tool(hang, timeout=0.2))

    async def many() -> list:
        return await asyncio.gather(*(executor.arun({"x": i}) for i in range(bound + 3)))

    try:
        start = time.perf_counter()
        results = asyncio.run(many())
        elapsed = time.perf_counter() - start
        assert all(isinstance(r.error, NodeTimeout) for r in results)
        assert elapsed < 2, f"timeouts of 0.2 s took {elapsed:.2f} s"
        hung = [t for t in threading.enumerate() if t.name.startswith("workbench-tool")]
        assert 0 < len(hung) <= bound
    finally:
        release.set()


def test_the_pool_size_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("WORKBENCH_TOOL_THREADS", "3")
    assert tool_threads._size() == 3
    monkeypatch.setenv("WORKBENCH_TOOL_THREADS", "0")
    with pytest.raises(UsageError, match="WORKBENCH_TOOL_THREADS"):
        tool_threads._size()
    monkeypatch.delenv("WORKBENCH_TOOL_THREADS")
    assert 5 <= tool_threads._size() <= 32
