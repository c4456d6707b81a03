"""The shipped example flows load, validate, verify and (tool-only ones) run."""

from __future__ import annotations

import pytest

from workbench.examples import flow_path, list_flows
from workbench.flow import dumps, load, loads, problems
from workbench.flow.verify import verify
from workbench.runtime import execute


@pytest.mark.parametrize("name", list_flows())
def test_example_is_valid_and_round_trips(name):
    flow = load(flow_path(name))
    assert problems(flow) == []
    assert loads(dumps(flow)) == flow


def test_examples_include_a_tool_pipeline_and_the_trader():
    assert {"triage", "trader"} <= set(list_flows())


def test_trader_verdicts_match_the_design():
    statuses = {r.name: r.status for r in verify(load(flow_path("trader"))).rails}
    assert statuses == {"budget": "enforced", "restricted": "enforced", "cap": "proved"}


@pytest.mark.parametrize(
    ("ticket", "tier", "category", "priority"),
    [
        ("The invoice charged me twice", "free", "billing", 0),
        ("App crashes with an error, production is down!", "pro", "bug", 3),
        ("Hello there", "enterprise", "other", 2),
    ],
)
def test_triage_runs_end_to_end(ticket, tier, category, priority):
    result = execute(load(flow_path("triage")), {"ticket": ticket, "tier": tier})
    assert result.status == "ok", result.error
    assert result.outputs["reply"]["category"] == category
    assert result.outputs["reply"]["priority"] == priority
    assert all(r.verdict == "pass" for r in result.rails)


def test_triage_redacts_personal_data_before_it_reaches_the_reply():
    result = execute(
        load(flow_path("triage")), {"ticket": "Write to ann@example.com or +44 20 7946 0958.", "tier": "free"}
    )
    assert result.outputs["reply"]["summary"] == "Write to [email] or [phone]."


def test_trader_runs_on_the_tiny_model_and_traces_every_token():
    from workbench.runtime import Executor
    from workbench.spans import MemoryTracer

    tracer = MemoryTracer()
    news = "BOLT shares jump after a record quarter; the stock trades at 12.5"
    result = Executor(load(flow_path("trader")), tracer=tracer).run({"news": news, "cash": 1000.0})
    assert result.status == "ok", result.error
    order = result.outputs["approved"]
    assert (order["side"], order["ticker"], order["price"]) == ("buy", "BOLT", 12.5)
    assert order["qty"] * order["price"] <= 1000.0
    (chat,) = tracer.by_name("chat")
    steps = [e for e in chat.events if e.name == "workbench.decode.step"]
    assert len(steps) == chat.attributes["gen_ai.usage.output_tokens"]
    text = "".join(e.attributes["workbench.decode.token"] for e in steps)
    assert text == chat.attributes["gen_ai.completion"]


def test_desk_agent_runs_on_the_tiny_model_end_to_end():
    import json

    from workbench.examples import desk
    from workbench.runtime import Approve, Executor
    from workbench.spans import MemoryTracer

    asked = []

    def approve(node, tool, call_id, arguments):
        asked.append((tool, arguments))
        return Approve()

    desk.LEDGER.clear()
    tracer = MemoryTracer()
    flow = load(flow_path("desk"))
    result = Executor(flow, tracer=tracer, approve=approve).run(
        {"news": "BOLT shares jump after a record quarter", "cash": 1000.0}
    )
    assert result.status == "ok", result.error
    assert result.outputs["result"] == {"ticker": "BOLT", "qty": 10, "note": "bought 10 BOLT at 12.5"}
    assert desk.LEDGER == [{"ticker": "BOLT", "qty": 10, "price": 12.5}] == [a for _, a in asked]
    (agent,) = tracer.by_name("invoke_agent desk")
    transcript = json.loads(agent.attributes["workbench.agent.transcript"])
    calls = [c["function"]["name"] for m in transcript for c in m.get("tool_calls") or []]
    assert calls == ["quote", "buy"]
    assert [r.verdict for r in result.rails if r.name == "cap"] == ["pass"]
    desk.LEDGER.clear()


def test_desk_agent_on_the_tiny_model_buys_nothing_on_bad_news():
    from workbench.examples import desk
    from workbench.runtime import Approve, Executor

    desk.LEDGER.clear()
    result = Executor(load(flow_path("desk")), approve=lambda *a: Approve()).run(
        {"news": "ACME plunges 12% as regulators open a probe", "cash": 5000.0}
    )
    assert result.status == "ok", result.error
    assert result.outputs["result"]["qty"] == 0 and desk.LEDGER == []


def test_the_tiny_models_desk_transcripts_match_what_the_agent_sends():
    # the corpus writes the desk agent's tools and first messages itself (models sit below the
    # runtime); they must stay what the agent node renders, or the trained model sees other text
    from workbench.models.corpus import DESK_TOOLS, desk_messages
    from workbench.runtime.agent import AgentRunner

    flow = load(flow_path("desk"))
    runner = AgentRunner(flow.nodes["desk"], flow, {"trust": True})
    inputs = {"news": "BOLT shares jump after a record quarter", "cash": 1000.0}
    assert runner.agent_messages(inputs, inputs) == desk_messages(inputs["news"], "1000.0")
    assert runner.offers == list(DESK_TOOLS)
