"""Agent runs in the run view: pending approvals (approve, edit, deny), live tool calls, cancel,
the status line counting denied and refused calls, the progress line during a model load.

The view is driven in-process (its buttons' handlers called as a click would) against the
real agent runtime and a scripted OpenAI-compatible server on loopback.
"""

from __future__ import annotations

import asyncio
import html
import json
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.app.agent_flows import FINAL, NEWS, desk_text
from tests.runtime.scripted_openai import answer, calls, scripted
from workbench.app.document import FlowDocument
from workbench.app.run_view import RunView
from workbench.examples import desk
from workbench.flow import loads
from workbench.models import openai_client, registry
from workbench.spans import MemoryTracer


@pytest.fixture(autouse=True)
def _empty_ledger():
    desk.LEDGER.clear()
    yield
    desk.LEDGER.clear()


def _view(server: Any, marks: list[tuple[str, str | None]]) -> RunView:
    view = RunView(
        FlowDocument(loads(desk_text(server.url))),
        tracer=lambda: (MemoryTracer(), False),
        on_node=lambda n, s: marks.append((n, s)),
    )
    view.widgets["news"].value = NEWS
    view.widgets["cash"].value = 1000.0
    return view


async def until(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


def drive(view: RunView, script: Callable[[asyncio.Future[Any]], Awaitable[None]]) -> None:
    """Start a run of ``view`` and play ``script`` against it while it goes on."""

    async def main() -> None:
        run = asyncio.ensure_future(view._run())
        await script(run)
        await asyncio.wait_for(run, 10)

    asyncio.run(main())


def test_a_pending_call_shows_its_exact_arguments_and_runs_once_approved() -> None:
    marks: list[tuple[str, str | None]] = []
    replies = [
        calls(("quote", {"ticker": "BOLT"}), ids=["q1"]),
        calls(("buy", {"ticker": "BOLT", "qty": 8, "price": 12.5}), ids=["b1"]),
        answer(FINAL),
    ]
    with scripted(replies) as server:
        view = _view(server, marks)

        async def script(_run: Any) -> None:
            await until(lambda: bool(view.approvals.cards))
            (card,) = view.approvals.cards
            assert (card.node, card.tool, card.call_id) == ("desk", "buy", "b1")
            shown = json.dumps({"ticker": "BOLT", "qty": 8, "price": 12.5}, indent=2)
            assert card.arguments.object.count("&quot;qty&quot;: 8") == 1  # escaped text, not markup
            assert json.loads(card.editor.value) == json.loads(shown)
            assert desk.LEDGER == []  # nothing runs before the decision
            assert ("desk", "paused") in marks  # the agent glows purple meanwhile
            assert "desk.quote" in view.calls_pane.object and "waiting for approval" in view.calls_pane.object
            card.buttons[0].clicks += 1  # Approve

        drive(view, script)
    assert view.last_result.status == "ok", view.last_result.error
    assert desk.LEDGER == [{"ticker": "BOLT", "qty": 8, "price": 12.5}]
    assert view.approvals.cards == [] and len(view.approvals.column) == 0
    log = view.calls.text()
    assert 'desk.quote({"ticker": "BOLT"})  [q1]\n  -> ok: {"price": 12.5}' in log
    assert 'desk.buy({"ticker": "BOLT", "qty": 8, "price": 12.5})  [b1]\n  -> ok: {"filled": 8}' in log
    assert "tool calls:" in view.calls_pane.object
    assert marks[-1] == ("desk", "done")
    # Every call ran as the model asked: a plain green success.
    assert ": ok in " in view.status.object and "wb-ok" in view.status.object
    assert "denied" not in view.status.object and ">outputs:\n" in view.outputs.object


def test_an_edit_is_rechecked_by_the_runtime_and_its_refusal_shown_then_a_denial() -> None:
    marks: list[tuple[str, str | None]] = []
    replies = [
        calls(("buy", {"ticker": "BOLT", "qty": 8, "price": 12.5}), ids=["b1"]),
        calls(("buy", {"ticker": "BOLT", "qty": 4, "price": 12.5}), ids=["b2"]),
        answer(FINAL),
    ]
    with scripted(replies) as server:
        view = _view(server, marks)

        async def script(_run: Any) -> None:
            await until(lambda: bool(view.approvals.cards))
            card = view.approvals.cards[0]
            card.edit("{qty: 100")  # not JSON: said on the card, nothing is sent
            assert "not JSON" in card.problem.object and view.approvals.cards == [card]
            card.edit("[1, 2]")
            assert "must be a JSON object" in card.problem.object
            card.edit('{"ticker": "BOLT", "qty": 100, "price": 12.5}')  # 1250 > cash: rail cap
            await until(lambda: bool(view.approvals.cards) and view.approvals.cards[0].call_id == "b2")
            assert "refused by rail cap" in view.calls_pane.object
            view.approvals.cards[0].deny("not today")

        drive(view, script)
    assert view.last_result.status == "ok", view.last_result.error
    assert desk.LEDGER == []
    refusal, denial = server.tool_messages(1)[0]["content"], server.tool_messages(2)[0]["content"]
    assert refusal.startswith("refused, the call did not run: rail 'cap' blocked desk.buy")
    assert denial == "denied: not today"
    log = view.calls.text()
    assert 'edited to {"ticker": "BOLT", "qty": 100, "price": 12.5}' in log
    assert f"-> refused by rail cap: {refusal}" in log
    assert "-> denied: not today" in log and "denied: denied" not in log  # the word once
    # The failing rail check of a call is no failure of the agent node.
    assert ("desk", "failed") not in marks
    # The run ended ok (the agent answered), but the status line says, not in green, what
    # did not run, and the outputs are read in that light.
    status = view.status.object
    assert ": ok in " in status and "wb-warn" in status and "wb-ok" not in status
    assert " ms \u2014 1 tool call denied, 1 refused by rails<" in status
    assert ">outputs (given after 1 tool call denied, 1 refused by rails; see the tool calls):\n" in (
        view.outputs.object
    )


def test_parallel_calls_wait_one_card_at_a_time_each_decided_on_its_own() -> None:
    replies = [
        calls(
            ("buy", {"ticker": "BOLT", "qty": 1, "price": 12.5}),
            ("buy", {"ticker": "ACME", "qty": 2, "price": 80.0}),
            ids=["a", "b"],
        ),
        answer(FINAL),
    ]
    with scripted(replies) as server:
        view = _view(server, [])
        decided: list[str] = []

        async def script(_run: Any) -> None:
            def next_card() -> bool:
                cards = view.approvals.cards
                return len(cards) == 1 and cards[0].call_id not in decided

            for _ in range(2):
                await until(next_card)
                (card,) = view.approvals.cards
                decided.append(card.call_id)
                card.approve() if card.call_id == "a" else card.deny()

        drive(view, script)
    assert sorted(decided) == ["a", "b"]
    assert desk.LEDGER == [{"ticker": "BOLT", "qty": 1, "price": 12.5}]
    assert [m["content"] for m in server.tool_messages(1)] == [
        '{"filled": 1}',
        "denied: no reason given in the workbench app",
    ]
    assert "-> denied: no reason given in the workbench app" in view.calls.text()
    assert "\u2014 1 tool call denied<" in view.status.object  # no "0 refused by rails"


def test_cancelling_while_a_call_waits_ends_the_run_and_clears_the_card() -> None:
    replies = [calls(("buy", {"ticker": "BOLT", "qty": 8, "price": 12.5}), ids=["b1"]), answer(FINAL)]
    with scripted(replies) as server:
        view = _view(server, [])

        async def script(_run: Any) -> None:
            await until(lambda: bool(view.approvals.cards))
            view.cancel_button.clicks += 1

        drive(view, script)
    assert "cancelled" in view.status.object
    assert view.approvals.cards == [] and len(view.approvals.column) == 0
    assert desk.LEDGER == [] and not view.run_button.disabled
    assert "-> " in view.calls.text() and "waiting" not in view.calls.text()


def test_an_agent_inside_a_sub_flow_lights_its_sub_flow_node_while_it_waits() -> None:
    replies = [calls(("buy", {"ticker": "BOLT", "qty": 8, "price": 12.5}), ids=["b1"]), answer(FINAL)]
    with scripted(replies) as server:
        inner = "\n".join("      " + line for line in desk_text(server.url).splitlines())
        outer = f"""\
flow: desk_outside
version: 1
types:
  Result: {{ticker: {{str: {{pattern: '[A-Z]{{1,5}}'}}}}, qty: {{int: {{ge: 0}}}}, note: str}}
inputs: {{news: str, cash: {{float: {{ge: 0}}}}}}
outputs: {{result: Result}}
nodes:
  trading:
    kind: flow
    flow:
{inner}
    inputs: {{news: str, cash: {{float: {{ge: 0}}}}}}
    outputs: {{result: Result}}
wires:
  - news -> trading.news
  - cash -> trading.cash
  - trading.result -> result
"""
        marks: list[tuple[str, str | None]] = []
        view = RunView(
            FlowDocument(loads(outer)),
            tracer=lambda: (MemoryTracer(), False),
            on_node=lambda n, s: marks.append((n, s)),
        )
        view.widgets["news"].value = NEWS
        view.widgets["cash"].value = 1000.0

        async def script(_run: Any) -> None:
            await until(lambda: bool(view.approvals.cards))
            assert view.approvals.cards[0].node == "desk"  # the agent asks under its own name
            view.approvals.cards[0].approve()

        drive(view, script)
    assert view.last_result.status == "ok", view.last_result.error
    # Its canvas node, the sub-flow, glows purple while the call waits; "desk" is no canvas node.
    assert ("trading", "paused") in marks and marks[-1] == ("trading", "done")
    assert {node for node, _ in marks} == {"trading"}
    assert "desk.buy(" in view.calls.text() and "-> ok" in view.calls.text()
    assert ">nodes: 1 done (of 1)<" in view.progress.object


def test_a_model_load_shows_in_the_progress_line_and_lights_its_node(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first run of a local model loads it for seconds before the node's span opens:
    the loader here waits on a gate, so the view is looked at while the load is under way."""
    gate = threading.Event()
    real = registry._BACKENDS["openai"]
    assert real.loader is openai_client.load_openai

    def slow_load(value: Any) -> Any:
        assert gate.wait(10)
        return real.loader(value)

    monkeypatch.setitem(registry._BACKENDS, "openai", registry._Backend(slow_load, real.key))
    monkeypatch.setattr(registry, "_CACHE", {})
    monkeypatch.setattr(registry, "_LOADING", {})
    monkeypatch.setenv("WORKBENCH_FLUSH_S", "0.02")
    marks: list[tuple[str, str | None]] = []
    with scripted([answer(FINAL)]) as server:
        view = _view(server, marks)

        async def script(_run: Any) -> None:
            await until(lambda: "loading model" in view.progress.object)
            model = {"base_url": server.url, "model": "scripted", "timeout": 10}
            spec = json.dumps({"openai": model}, sort_keys=True)
            shown = html.unescape(view.progress.object)
            assert f">loading model {spec} for desk... \u00b7 nodes: 1 running (of 1)<" in shown
            assert marks == [("desk", "running")] and server.requests == []  # no model call yet
            gate.set()

        drive(view, script)
    assert view.last_result.status == "ok", view.last_result.error
    assert "loading" not in view.progress.object and ">nodes: 1 done (of 1)<" in view.progress.object
    assert marks[-1] == ("desk", "done")
