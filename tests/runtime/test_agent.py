"""Agent nodes against a scripted OpenAI-compatible server on loopback.

The server replays fixed chat completions (tool calls, then a typed answer) and keeps
what it received, so each test checks both what the agent did and what it told the model.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from tests.runtime.scripted_openai import answer, calls, scripted
from workbench.errors import NodeError
from workbench.examples import desk, flow_path
from workbench.flow import AgentTool, Flow, Node, load
from workbench.runtime import Approve, Deny, Edit, Executor
from workbench.spans import MemoryTracer

NEWS = "BOLT shares jump after a record quarter"
FINAL = {"ticker": "BOLT", "qty": 80, "note": "bought 80 BOLT"}


@pytest.fixture(autouse=True)
def _empty_ledger():
    desk.LEDGER.clear()
    yield
    desk.LEDGER.clear()


def _run(flow, server, inputs, **options):
    return Executor(flow, model=server.model, **options).run(inputs)


def _approve_all(node, tool, call_id, arguments):
    return Approve()


def test_desk_runs_end_to_end_with_a_refused_and_an_allowed_buy():
    replies = [
        calls(("quote", {"ticker": "BOLT"})),
        calls(("buy", {"ticker": "BOLT", "qty": 100, "price": 12.5})),  # 1250 > 1000: the rail refuses
        calls(("buy", {"ticker": "BOLT", "qty": 80, "price": 12.5})),
        answer(FINAL),
    ]
    tracer = MemoryTracer()
    with scripted(replies) as server:
        result = _run(
            load(flow_path("desk")),
            server,
            {"news": NEWS, "cash": 1000.0},
            approve=_approve_all,
            tracer=tracer,
        )
    assert result.status == "ok", result.error
    assert result.outputs == {"result": FINAL}
    assert desk.LEDGER == [{"ticker": "BOLT", "qty": 80, "price": 12.5}]  # the refused buy never ran

    first = server.requests[0]
    assert first["tool_choice"] == "auto"
    offered = {t["function"]["name"]: t["function"] for t in first["tools"]}
    assert offered["quote"]["parameters"] == {
        "type": "object",
        "properties": {"ticker": {"type": "string", "pattern": "^(?:[A-Z]{1,5})$"}},
        "required": ["ticker"],
        "additionalProperties": False,
    }
    assert offered["buy"]["parameters"]["properties"]["qty"] == {"type": "integer", "minimum": 1}
    assert offered["buy"]["parameters"]["properties"]["price"] == {"type": "number", "exclusiveMinimum": 0}
    assert offered["buy"]["description"] == "Buy qty shares of a ticker at a price"
    assert "News: BOLT shares jump" in first["messages"][-1]["content"]

    assert json.loads(server.tool_messages(1)[0]["content"]) == {"price": 12.5}
    (refusal,) = server.tool_messages(2)
    assert refusal["content"].startswith("refused, the call did not run: rail 'cap' blocked desk.buy")
    assert "buy.qty * buy.price <= cash" in refusal["content"]
    assert json.loads(server.tool_messages(3)[0]["content"]) == {"filled": 80}
    # the assistant turn that asked for the call goes back with its tool_calls
    assert server.requests[3]["messages"][-2]["tool_calls"][0]["function"]["name"] == "buy"

    assert [(r.name, r.port, r.verdict) for r in result.rails] == [
        ("cap", "desk.buy", "fail"),
        ("cap", "desk.buy", "pass"),
    ]
    assert result.rails[0].failed_atoms == ("buy.qty * buy.price <= cash",)

    (agent,) = tracer.by_name("invoke_agent desk")
    assert agent.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert agent.attributes["workbench.agent.steps"] == 4
    chats = tracer.by_name("chat ")
    assert len(chats) == 4 and all(c.parent_id == agent.span_id for c in chats)
    tools = sorted(tracer.by_name("execute_tool "), key=lambda s: s.start_ns)
    assert [s.attributes["gen_ai.tool.name"] for s in tools] == ["quote", "buy", "buy"]
    assert all(s.parent_id == agent.span_id for s in tools)
    refused = tools[1]
    assert refused.attributes["workbench.agent.call.status"] == "refused"
    assert json.loads(refused.attributes["gen_ai.tool.call.arguments"]) == {
        "ticker": "BOLT",
        "qty": 100,
        "price": 12.5,
    }
    assert refused.attributes["gen_ai.tool.call.result"] == refusal["content"]
    assert refused.attributes["gen_ai.tool.call.id"] == refusal["tool_call_id"]
    assert tools[2].attributes["gen_ai.tool.call.result"] == '{"filled": 80}'
    guards = sorted(tracer.by_name("apply_guardrail cap"), key=lambda s: s.start_ns)
    assert [g.parent_id for g in guards] == [tools[1].span_id, tools[2].span_id]
    verdicts = [g.events[0].attributes for g in guards]
    assert [v["gen_ai.guardrail.result"] for v in verdicts] == ["fail", "pass"]
    assert {v["gen_ai.guardrail.source"] for v in verdicts} == {"tool_input"}
    transcript = json.loads(agent.attributes["workbench.agent.transcript"])
    assert [m["role"] for m in transcript] == ["system", "user"] + ["assistant", "tool"] * 3 + ["assistant"]


def _one_buy_then_answer(buy_args):
    return [calls(("buy", buy_args), ids=["b1"]), answer(FINAL)]


def test_an_edit_is_checked_again_and_a_rail_it_breaks_refuses_the_call():
    asked = []

    def editor(node, tool, call_id, arguments):
        asked.append((node, tool, call_id, arguments))
        return Edit({**arguments, "qty": 1000})  # 12500 > cash

    with scripted(_one_buy_then_answer({"ticker": "BOLT", "qty": 8, "price": 12.5})) as server:
        result = _run(load(flow_path("desk")), server, {"news": NEWS, "cash": 1000.0}, approve=editor)
    assert result.status == "ok", result.error
    assert asked == [("desk", "buy", "b1", {"ticker": "BOLT", "qty": 8, "price": 12.5})]
    assert desk.LEDGER == []
    (message,) = server.tool_messages(1)
    assert "rail 'cap' blocked desk.buy" in message["content"] and "'qty': 1000" in message["content"]


def test_an_edit_that_breaks_the_types_does_not_run():
    with scripted(_one_buy_then_answer({"ticker": "BOLT", "qty": 8, "price": 12.5})) as server:
        result = _run(
            load(flow_path("desk")),
            server,
            {"news": NEWS, "cash": 1000.0},
            approve=lambda *a: Edit({"ticker": "BOLT", "qty": 0, "price": 12.5}),
        )
    assert result.status == "ok", result.error
    assert desk.LEDGER == []
    assert "buy.qty: 0 is less than the minimum 1" in server.tool_messages(1)[0]["content"]


def test_an_allowed_edit_runs_with_the_edited_arguments():
    with scripted(_one_buy_then_answer({"ticker": "BOLT", "qty": 8, "price": 12.5})) as server:
        _run(
            load(flow_path("desk")),
            server,
            {"news": NEWS, "cash": 1000.0},
            approve=lambda *a: Edit({"ticker": "BOLT", "qty": 2, "price": 12.5}),
        )
    assert desk.LEDGER == [{"ticker": "BOLT", "qty": 2, "price": 12.5}]


def test_a_denial_goes_back_to_the_model_as_the_tools_answer():
    async def deny(node, tool, call_id, arguments):  # async approvers are awaited
        return Deny("too risky today")

    tracer = MemoryTracer()
    with scripted(_one_buy_then_answer({"ticker": "BOLT", "qty": 8, "price": 12.5})) as server:
        result = _run(
            load(flow_path("desk")), server, {"news": NEWS, "cash": 1000.0}, approve=deny, tracer=tracer
        )
    assert result.status == "ok", result.error
    assert desk.LEDGER == []
    assert server.tool_messages(1) == [
        {"role": "tool", "tool_call_id": "b1", "content": "denied: too risky today"}
    ]
    (span,) = tracer.by_name("execute_tool buy")
    assert span.attributes["workbench.agent.approval"] == "deny"


def test_without_an_approver_gated_calls_are_denied():
    with scripted(_one_buy_then_answer({"ticker": "BOLT", "qty": 8, "price": 12.5})) as server:
        result = _run(load(flow_path("desk")), server, {"news": NEWS, "cash": 1000.0})
    assert result.status == "ok", result.error
    assert desk.LEDGER == []
    assert "needs a human's approval and nobody was asked" in server.tool_messages(1)[0]["content"]


def test_parallel_calls_are_approved_one_by_one_and_none_runs_twice():
    decisions = {"a": Approve(), "b": Deny("not this one")}
    replies = [
        calls(
            ("buy", {"ticker": "BOLT", "qty": 1, "price": 12.5}),
            ("buy", {"ticker": "ACME", "qty": 2, "price": 80.0}),
            ids=["a", "b"],
        ),
        calls(("buy", {"ticker": "BOLT", "qty": 1, "price": 12.5}), ids=["a"]),  # the same call again
        answer(FINAL),
    ]
    asked = []
    with scripted(replies) as server:
        result = _run(
            load(flow_path("desk")),
            server,
            {"news": NEWS, "cash": 1000.0},
            approve=lambda node, tool, call_id, args: asked.append(call_id) or decisions[call_id],
        )
    assert result.status == "ok", result.error
    assert sorted(asked) == ["a", "b"]
    assert desk.LEDGER == [{"ticker": "BOLT", "qty": 1, "price": 12.5}]
    first = server.tool_messages(1)
    assert [(m["tool_call_id"], m["content"]) for m in first] == [
        ("a", '{"filled": 1}'),
        ("b", "denied: not this one"),
    ]
    (again,) = server.tool_messages(2)
    assert "already handled" in again["content"]


def _agent_flow(tools, *, max_steps=4, outputs=None):
    outputs = outputs or {"done": str}
    flow = Flow("agent", inputs={"task": str}, outputs=outputs)
    flow.add(
        Node(
            "worker",
            "agent",
            inputs={"task": str},
            outputs=outputs,
            config={"model": "default", "prompt": "{{ task }}", "max_steps": max_steps, "tools": tools},
        )
    )
    flow.connect("task", "worker.task")
    for port in outputs:
        flow.connect(f"worker.{port}", port)
    return flow


def test_calls_of_one_turn_run_concurrently():
    started = {"x": asyncio.Event(), "y": asyncio.Event()}

    async def meet(me: str, other: str):
        started[me].set()
        await asyncio.wait_for(started[other].wait(), 5)  # only returns if the other call runs too
        return {"met": other}

    tool = AgentTool.of(meet, inputs={"me": str, "other": str}, outputs={"met": str}, timeout=5)
    replies = [
        calls(("meet", {"me": "x", "other": "y"}), ("meet", {"me": "y", "other": "x"})),
        answer('"done"'),
    ]
    with scripted(replies) as server:
        result = _run(_agent_flow({"meet": tool}), server, {"task": "meet"})
    assert result.outputs == {"done": "done"}, result.error
    assert [json.loads(m["content"]) for m in server.tool_messages(1)] == [{"met": "y"}, {"met": "x"}]


def test_running_out_of_steps_fails_the_node_and_keeps_the_transcript():
    replies = [calls(("quote", {"ticker": "BOLT"})), calls(("quote", {"ticker": "ACME"}))]
    flow = load(flow_path("desk"))
    flow.nodes["desk"].config["max_steps"] = 2
    tracer = MemoryTracer()
    with scripted(replies) as server:
        result = _run(flow, server, {"news": NEWS, "cash": 1000.0}, tracer=tracer)
    assert result.status == "failed"
    assert isinstance(result.error, NodeError)
    assert "no final answer within max_steps=2 model turns" in str(result.error)
    assert len(server.requests) == 2
    (agent,) = tracer.by_name("invoke_agent desk")
    assert agent.status == "ERROR"
    transcript = json.loads(agent.attributes["workbench.agent.transcript"])
    assert [json.loads(m["content"]) for m in transcript if m["role"] == "tool"] == [
        {"price": 12.5},
        {"price": 80.0},
    ]


def test_a_hanging_tool_times_out_and_the_model_is_told():
    release = threading.Event()

    def hang(x: int):
        release.wait(5)
        return {"y": x}

    tool = AgentTool.of(hang, inputs={"x": int}, outputs={"y": int}, timeout=0.2)
    with scripted([calls(("hang", {"x": 1})), answer('"gave up"')]) as server:
        start = time.perf_counter()
        result = _run(_agent_flow({"hang": tool}), server, {"task": "t"})
        took = time.perf_counter() - start
    release.set()
    assert result.outputs == {"done": "gave up"}, result.error
    assert server.tool_messages(1)[0]["content"] == "error: tool 'hang' did not finish within 0.2 s"
    assert took < 4


def test_bad_calls_become_tool_messages_and_nothing_crashes():
    def boom(x: int):
        raise RuntimeError("the exchange is closed")

    def wrong(x: int):
        return {"y": "not an int"}

    tools = {
        "boom": AgentTool.of(boom, inputs={"x": int}, outputs={"y": int}),
        "wrong": AgentTool.of(wrong, inputs={"x": int}, outputs={"y": int}),
        "quote": AgentTool.of(
            desk.quote, inputs={"ticker": {"str": {"pattern": "[A-Z]+"}}}, outputs={"price": float}
        ),
    }
    replies = [
        calls(
            ("nope", {}),
            ("quote", "{not json"),
            ("quote", {"ticker": "bolt"}),
            ("quote", ["BOLT"]),
            ("boom", {"x": 1}),
            ("wrong", {"x": 1}),
            ("quote", {"ticker": "ZZZ"}),
        ),
        answer("not json at all"),
        answer('"survived"'),
    ]
    tracer = MemoryTracer()
    with scripted(replies) as server:
        result = _run(_agent_flow(tools), server, {"task": "t"}, tracer=tracer)
    assert result.outputs == {"done": "survived"}, result.error
    texts = [m["content"] for m in server.tool_messages(1)]
    assert texts[0] == "error: there is no tool 'nope' (tools: boom, wrong, quote)"
    assert texts[1].startswith("error: the arguments of 'quote' are not JSON")
    assert texts[2].startswith("error: the arguments do not fit the tool's types: quote.ticker:")
    assert texts[3] == "error: the arguments of 'quote' must be a JSON object"
    assert texts[4] == "error: tool 'boom' raised RuntimeError: the exchange is closed"
    assert texts[5].startswith(
        "error: tool 'wrong' returned a value that does not fit its outputs: wrong result.y"
    )
    assert texts[6] == "error: tool 'quote' raised KeyError: 'no quote for ZZZ'"
    statuses = sorted(s.attributes["workbench.agent.call.status"] for s in tracer.by_name("execute_tool"))
    assert statuses == sorted(
        ["unknown_tool", "bad_arguments", "bad_arguments", "bad_arguments", "error", "bad_result", "error"]
    )
    # the unparsable answer went back to the model, which answered again
    retry = server.requests[2]["messages"][-1]
    assert retry["role"] == "user" and "not valid JSON" in retry["content"]


def test_a_model_without_tool_support_fails_clearly(monkeypatch):
    from workbench.models.local import LocalModel

    monkeypatch.setattr(LocalModel, "supports_tools", False)  # the local runtime takes tools now
    flow = _agent_flow({"quote": AgentTool.of(desk.quote, inputs={"ticker": str}, outputs={"price": float})})
    result = Executor(flow).run({"task": "t"})
    assert result.status == "failed"
    assert "node 'worker' failed: model 'default' cannot call tools" in str(result.error)


def test_untrusted_tools_of_an_agent_are_refused_at_plan_time():
    from workbench.errors import TrustError

    flow = _agent_flow({"x": AgentTool("os:getcwd", outputs={"cwd": str})})
    with pytest.raises(
        TrustError, match=r"node 'worker\.x': tool 'os:getcwd' is not in the registry of safe tools"
    ):
        Executor(flow)


# -- the command line: workbench run --approve ---------------------------------------------------


def _cli_run(capsys, server, *extra):
    from workbench.cli import main

    argv = ["run", "desk", "-i", f"news={NEWS}", "-i", "cash=1000", "--model", json.dumps(server.model)]
    code = main([*argv, "--no-trace", "--json", *extra])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def test_cli_approve_all_runs_gated_calls(capsys):
    with scripted(_one_buy_then_answer({"ticker": "BOLT", "qty": 8, "price": 12.5})) as server:
        code, data, _ = _cli_run(capsys, server, "--approve", "all")
    assert code == 0 and data["outputs"] == {"result": FINAL}
    assert desk.LEDGER == [{"ticker": "BOLT", "qty": 8, "price": 12.5}]
    assert [(r["name"], r["verdict"]) for r in data["rails"]] == [("cap", "pass")]


def test_cli_approve_none_denies_gated_calls(capsys):
    with scripted(_one_buy_then_answer({"ticker": "BOLT", "qty": 8, "price": 12.5})) as server:
        code, _, _ = _cli_run(capsys, server, "--approve", "none")
    assert code == 0 and desk.LEDGER == []
    assert server.tool_messages(1)[0]["content"] == "denied: denied by --approve none"


def test_cli_without_a_terminal_or_a_flag_denies_and_says_why(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with scripted(_one_buy_then_answer({"ticker": "BOLT", "qty": 8, "price": 12.5})) as server:
        code, _, err = _cli_run(capsys, server)
    assert code == 0 and desk.LEDGER == []
    assert "approval needed for desk.buy" in err and "pass --approve all|none" in err
    assert "stdin is not a terminal" in server.tool_messages(1)[0]["content"]


def test_cli_asks_at_a_terminal_and_takes_edited_arguments(capsys, monkeypatch):
    answers = iter(["x", "e", "{bad", "e", '{"ticker": "BOLT", "qty": 3, "price": 12.5}'])
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    with scripted(_one_buy_then_answer({"ticker": "BOLT", "qty": 8, "price": 12.5})) as server:
        code, _, err = _cli_run(capsys, server)
    assert code == 0
    assert 'approval needed: desk.buy {"ticker": "BOLT", "qty": 8, "price": 12.5}' in err
    assert desk.LEDGER == [{"ticker": "BOLT", "qty": 3, "price": 12.5}]
