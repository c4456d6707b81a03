"""Breakpoints in the run view: the run pauses before a node, shows its inputs, Step/Continue."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from workbench.app.document import FlowDocument
from workbench.app.run_view import RunView
from workbench.examples import flow_path
from workbench.flow import load
from workbench.spans import MemoryTracer


def test_breakpoint_pauses_before_the_node_and_step_then_continue_finish_the_run() -> None:
    marks: list[tuple[str, str | None]] = []
    view = RunView(
        FlowDocument(load(flow_path("triage"))),
        tracer=lambda: (MemoryTracer(), False),
        on_node=lambda n, s: marks.append((n, s)),
    )
    assert view.breakpoints.options == list(load(flow_path("triage")).nodes)
    view.widgets["ticket"].value = "Invoice charged twice, urgent! a@b.example"
    view.widgets["tier"].value = "enterprise"
    view.breakpoints.value = ["classify"]

    async def until(predicate: Callable[[], bool]) -> None:
        for _ in range(200):
            if predicate():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("timed out")

    async def main() -> None:
        run = asyncio.ensure_future(view._run())
        await until(lambda: "paused before classify" in view.paused.object)
        assert "a@b.example" not in view.paused.object and "Invoice charged twice" in view.paused.object
        assert ("classify", "paused") in marks and not view.step_button.disabled
        assert ("classify", "running") not in marks  # it has not started
        view.resume(step=True)  # pause again before the next node
        await until(lambda: "paused before prioritise" in view.paused.object)
        view.resume()  # no more breakpoints: run to the end
        await run

    asyncio.run(main())
    assert view.last_result.status == "ok" and view.step_button.disabled
    assert view.paused.object == ""
    assert [n for n, s in marks if s == "done"] == ["redact", "classify", "prioritise", "summarise"]
