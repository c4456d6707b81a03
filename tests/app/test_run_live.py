"""The run view's live output: llm nodes' text as the tiny model writes it, sent in batches."""

from __future__ import annotations

import asyncio
import html

import pytest

from workbench.app.document import FlowDocument
from workbench.app.run_view import FLUSH_S, LIVE_TEXT_NODES, LiveText, RunView, flush_seconds
from workbench.examples import flow_path
from workbench.flow import load
from workbench.runtime.streaming import NodeToken
from workbench.spans import MemoryTracer


def test_the_trader_run_shows_the_analysts_answer_as_it_was_written() -> None:
    tracer = MemoryTracer()
    view = RunView(FlowDocument(load(flow_path("trader"))), tracer=lambda: (tracer, False))
    view.widgets["news"].value = "BOLT shares jump; the stock trades at 12.50"
    view.widgets["cash"].value = 7.0
    updates: list[str] = []
    view.live_pane.param.watch(lambda e: updates.append(e.new), "object")
    asyncio.run(view._run())
    assert view.last_result.status == "ok", view.last_result.error
    (chat,) = tracer.by_name("chat")
    answer = chat.attributes["gen_ai.completion"]
    assert view.live.text() == f"live output:\nanalyst \u00b7 answer\n{answer}"
    assert view.live_pane.visible and updates[-1] == view.live_pane.object
    assert "&quot;side&quot;: &quot;" in updates[-1]  # the JSON shown as text, escaped
    (label, calls, pieces) = view.live.nodes["analyst"]
    assert (label, calls) == ("answer", 1) and len(pieces) > 10
    assert len(updates) < len(pieces)  # batched: far fewer page updates than tokens


def test_a_flow_without_llm_nodes_shows_no_live_output() -> None:
    view = RunView(FlowDocument(load(flow_path("triage"))), tracer=lambda: (MemoryTracer(), False))
    view.widgets["ticket"].value = "Invoice charged twice"
    asyncio.run(view._run())
    assert view.last_result.status == "ok" and not view.live_pane.visible and view.live.nodes == {}


def test_tokens_reach_the_page_only_at_a_flush_and_a_new_attempt_restarts_the_text() -> None:
    view = RunView(FlowDocument(load(flow_path("trader"))), tracer=lambda: (MemoryTracer(), False))
    updates: list[str] = []
    view.live_pane.param.watch(lambda e: updates.append(e.new), "object")
    view.live.heard(NodeToken("analyst", "", "answer"))
    for piece in ['{"qty"', ": 100", "}"]:
        view.live.heard(NodeToken("analyst", piece))
    assert updates == []  # heard, not sent
    view.flush()
    assert len(updates) == 1 and "{&quot;qty&quot;: 100}" in updates[0]
    view.live.heard(NodeToken("analyst", "", "attempt 2 (resample)"))
    view.live.heard(NodeToken("analyst", '{"qty": 0}'))
    view.flush()
    view.flush()  # nothing new: no update
    assert len(updates) == 2
    assert (
        view.live.text()
        == 'live output:\nanalyst \u00b7 attempt 2 (resample) \u00b7 model call 2\n{"qty": 0}'
    )


def test_only_the_latest_nodes_are_shown() -> None:
    live = LiveText()
    for i in range(LIVE_TEXT_NODES + 3):
        live.heard(NodeToken(f"n{i}", "", "answer"))
        live.heard(NodeToken(f"n{i}", f"text {i}"))
    live.heard(NodeToken("n0", "", "repair"))  # n0 starts again: the latest now
    text = live.text()
    assert (
        "\nn3 \u00b7" not in text
        and "\nn4 \u00b7" in text
        and "\nn0 \u00b7 repair \u00b7 model call 2" in text
    )
    assert text.endswith(f"({3} more nodes streamed; their answers are in the trace)")
    assert text.count("\u00b7 answer") == LIVE_TEXT_NODES - 1


def test_the_flush_interval_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_FLUSH_S", "0.05")
    assert flush_seconds() == 0.05
    monkeypatch.setenv("WORKBENCH_FLUSH_S", "")
    assert flush_seconds() == FLUSH_S
    view = RunView(FlowDocument(load(flow_path("triage"))), tracer=lambda: (MemoryTracer(), False))
    view.widgets["ticket"].value = "Invoice charged twice"
    for bad in ("soon", "0", "-1", "inf", "nan"):
        monkeypatch.setenv("WORKBENCH_FLUSH_S", bad)
        asyncio.run(view._run())
        shown = html.unescape(view.status.object)
        assert f"cannot run: WORKBENCH_FLUSH_S must be a number of seconds > 0, got '{bad}'" in shown
        assert view.run_button.disabled is False
