"""The executor's ``before_node`` hook: awaited before each node with its inputs (breakpoints)."""

from __future__ import annotations

import asyncio
from typing import Any

import workbench
from workbench.flow import loads
from workbench.runtime import Executor
from workbench.spans import MemoryTracer

ROUTED = """\
flow: routed
version: 1
inputs: {value: str}
outputs: {yes: str, no: str}
nodes:
  route:
    kind: router
    routes: {yes: 'value == "yes"'}
    default: no
    inputs: {value: str}
    outputs: {yes: str, no: str}
wires:
  - value -> route.value
  - route.yes -> yes
  - route.no -> no
"""


def test_hook_sees_every_node_with_its_inputs_in_order() -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    async def before(name: str, inputs: dict[str, Any]) -> None:
        seen.append((name, inputs))

    flow = workbench.load("triage")
    result = asyncio.run(
        Executor(flow, before_node=before).arun({"ticket": "Invoice twice! a@b.example", "tier": "pro"})
    )
    assert result.status == "ok"
    names = [n for n, _ in seen]
    assert sorted(names) == sorted(flow.nodes) and names[0] == "redact" and names[-1] == "summarise"
    assert seen[0][1] == {"ticket": "Invoice twice! a@b.example"}
    assert "a@b.example" not in seen[1][1]["text"]  # what the node gets: redact's output


def test_a_paused_node_does_not_start_until_released() -> None:
    tracer = MemoryTracer()

    async def main() -> Any:
        release = asyncio.Event()
        paused: list[str] = []

        async def before(name: str, _inputs: dict[str, Any]) -> None:
            paused.append(name)
            await release.wait()

        # A router is an inline node: with the hook it runs as a task, so the wait is awaited.
        run = asyncio.ensure_future(
            Executor(loads(ROUTED), tracer=tracer, before_node=before).arun({"value": "yes"})
        )
        await asyncio.sleep(0.05)
        started = [s.name for s in tracer.spans if s.attributes.get("workbench.node.name") == "route"]
        assert paused == ["route"] and started == [] and not run.done()
        release.set()
        return await run

    result = asyncio.run(main())
    assert result.status == "ok" and result.outputs["yes"] == "yes"
    assert [s.attributes.get("workbench.node.name") for s in tracer.spans].count("route") == 1
