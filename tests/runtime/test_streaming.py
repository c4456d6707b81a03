"""Streaming llm nodes (the executor's ``on_token``): the tiny model decoding the trader flow in
process and behind a real ``serve-model`` server on loopback, the scripted OpenAI server for
resamples, agents and servers that send no usage, and a replay from a real trace file."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.scripted_openai import answer, calls, scripted
from workbench.examples import desk, flow_path
from workbench.flow import load, loads
from workbench.models.base import GenerationRequest, TokenEvent
from workbench.models.local import DEFAULT_MODEL_DIR, LocalModel
from workbench.models.openai_client import OpenAIModel
from workbench.models.server import running_server
from workbench.runtime import Approve, Executor
from workbench.runtime.streaming import NodeToken
from workbench.spans import MemoryTracer
from workbench.traces import TraceStore, tracer_for

# Little cash: the budget rail narrows the price while the tiny model writes it.
TRADE = {"news": "BOLT shares jump; the stock trades at 12.50", "cash": 7.0}


def _run(
    flow: Any, inputs: dict[str, Any], **options: Any
) -> tuple[Any, MemoryTracer, list[NodeToken], set[int]]:
    """Run on a fresh loop; the result, the spans, what ``on_token`` heard and on which threads."""
    tracer, heard, threads = MemoryTracer(), [], set()

    def listen(token: NodeToken) -> None:
        heard.append(token)
        threads.add(threading.get_ident())

    async def go() -> Any:
        return await Executor(flow, tracer=tracer, on_token=listen, **options).arun(inputs)

    return asyncio.run(go()), tracer, heard, threads


def _steps(span: Any) -> list[dict[str, Any]]:
    return [e.attributes for e in span.events if e.name == "workbench.decode.step"]


def test_trader_streams_its_answer_in_order_and_keeps_everything_the_whole_answer_gives() -> None:
    flow = load(flow_path("trader"))
    plain_tracer = MemoryTracer()
    plain = Executor(flow, tracer=plain_tracer).run(TRADE)  # the same run, nobody listening
    result, tracer, heard, threads = _run(flow, TRADE)
    assert result.status == plain.status == "ok", result.error
    assert result.outputs == plain.outputs
    assert threads == {threading.get_ident()}  # the loop's thread, though the model decodes on its own

    (chat,) = tracer.by_name("chat")
    (plain_chat,) = plain_tracer.by_name("chat")
    assert heard[0] == NodeToken("analyst", "", "answer")
    pieces = [t.text for t in heard[1:]]
    assert all(t.node == "analyst" and t.start is None and t.text for t in heard[1:])
    assert len(pieces) > 10  # token by token, not the answer at once
    assert (
        "".join(pieces) == chat.attributes["gen_ai.completion"] == plain_chat.attributes["gen_ai.completion"]
    )

    # Decode rails applied and every step recorded, exactly as without a listener.
    steps = _steps(chat)
    assert steps == _steps(plain_chat)
    assert len(steps) == chat.attributes["gen_ai.usage.output_tokens"]
    assert any(s.get("workbench.decode.rails") == "budget" for s in steps)
    assert all("workbench.decode.logprob" in s and s["workbench.decode.allowed"] >= 1 for s in steps)
    assert [e.name for e in chat.events].count("workbench.model.answer") == 1
    for key in ("gen_ai.usage.input_tokens", "gen_ai.response.finish_reasons"):
        assert chat.attributes[key] == plain_chat.attributes[key]


def test_the_local_runtime_tells_on_token_each_event_on_its_worker_thread() -> None:
    model = LocalModel.from_pretrained(DEFAULT_MODEL_DIR, device="cpu")
    events: list[TokenEvent] = []
    threads: set[str] = set()

    def on_token(event: TokenEvent) -> None:
        events.append(event)
        threads.add(threading.current_thread().name)

    request = GenerationRequest(prompt="The market", max_tokens=12, on_token=on_token, logprobs=True)
    (gen,) = asyncio.run(model.generate([request]))
    assert "".join(e.text for e in events) == gen.text
    assert [e.token_id for e in events if e.token_id >= 0][: len(gen.token_ids)] == gen.token_ids
    assert events[-1].finish_reason == gen.finish_reason and len(gen.logprobs or []) == len(gen.token_ids)
    assert threads == {f"workbench-model-{model.name}"}


def test_a_listener_that_raises_fails_its_own_request_only() -> None:
    model = LocalModel.from_pretrained(DEFAULT_MODEL_DIR, device="cpu")

    def broken(event: TokenEvent) -> None:
        raise ValueError("display bug")

    async def both() -> list[Any]:
        bad = GenerationRequest(prompt="The market", max_tokens=8, on_token=broken)
        good = GenerationRequest(prompt="The market", max_tokens=8)
        return await asyncio.gather(model.generate([bad]), model.generate([good]), return_exceptions=True)

    bad, good = asyncio.run(both())
    assert isinstance(bad, ValueError) and "display bug" in str(bad)
    assert good[0].output_tokens == 8


@pytest.fixture(scope="module")
def serve_model() -> Iterator[str]:
    model = LocalModel.from_pretrained(DEFAULT_MODEL_DIR, device="cpu")
    with running_server(model, "default") as url:
        yield url


def test_trader_streams_through_the_openai_client_from_serve_model(serve_model: str) -> None:
    flow = load(flow_path("trader"))
    spec = {"openai": {"base_url": serve_model, "model": "default"}}
    plain_tracer = MemoryTracer()
    rich = {**TRADE, "cash": 1e6}  # over HTTP the rails are checked after, not while, decoding
    plain = Executor(flow, tracer=plain_tracer, model=spec).run(rich)  # one JSON answer, not streamed
    result, tracer, heard, threads = _run(flow, rich, model=spec)
    assert result.status == plain.status == "ok", result.error
    (chat,) = tracer.by_name("chat")
    (plain_chat,) = plain_tracer.by_name("chat")
    last = max(i for i, t in enumerate(heard) if t.start is not None)  # the last attempt's text
    pieces = [t.text for t in heard[last + 1 :]]
    assert heard[0].start == "answer" and len(pieces) > 10
    assert (
        "".join(pieces) == chat.attributes["gen_ai.completion"] == plain_chat.attributes["gen_ai.completion"]
    )
    # usage came with the stream (stream_options.include_usage), as the whole answer's did
    for key in ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.response.finish_reasons"):
        assert chat.attributes[key] == plain_chat.attributes[key], key
    assert chat.attributes["gen_ai.usage.input_tokens"] > 0
    assert threads == {threading.get_ident()}


def test_openai_client_streams_tool_calls_from_serve_model_whole(serve_model: str) -> None:
    tool = {"type": "function", "function": {"name": "quote", "description": "Price of a ticker",
            "parameters": {"type": "object", "properties": {"ticker": {"type": "string"}},
                           "required": ["ticker"]}}}  # fmt: skip
    model = OpenAIModel(serve_model, "default")
    events: list[TokenEvent] = []
    ask = {
        "messages": [{"role": "user", "content": "Quote BOLT"}],
        "tools": [tool],
        "tool_choice": "required",
    }
    (streamed,) = asyncio.run(model.generate([GenerationRequest(**ask, on_token=events.append)]))
    (whole,) = asyncio.run(model.generate([GenerationRequest(**ask)]))
    assert streamed.finish_reason == whole.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in streamed.tool_calls] == [
        (c.name, c.arguments) for c in whole.tool_calls
    ]
    assert (streamed.input_tokens, streamed.output_tokens) == (whole.input_tokens, whole.output_tokens)
    assert events[-1].finish_reason == "tool_calls"


def test_a_resample_announces_a_new_attempt_and_streams_it() -> None:
    broken = {"side": "buy", "ticker": "BOLT", "qty": 100, "price": 12.5}  # 1250 > 7 cash: budget broken
    good = {"side": "buy", "ticker": "BOLT", "qty": 0, "price": 12.5}
    with scripted([answer(broken), answer(good)]) as server:
        result, tracer, heard, _ = _run(load(flow_path("trader")), TRADE, model=server.model)
    assert result.status == "ok", result.error
    assert all(
        r["stream"] is True and r["stream_options"] == {"include_usage": True} for r in server.requests
    )
    starts = [i for i, t in enumerate(heard) if t.start is not None]
    assert [heard[i].start for i in starts] == ["answer", "attempt 2 (resample)"]
    first = "".join(t.text for t in heard[starts[0] + 1 : starts[1]])
    second = "".join(t.text for t in heard[starts[1] + 1 :])
    assert json.loads(first) == broken and json.loads(second) == good
    pieces = [len(t.text) for t in heard if t.start is None]
    assert set(pieces[:-1]) == {3}  # the server's pieces, one NodeToken each
    (chat,) = tracer.by_name("chat")
    assert chat.attributes["gen_ai.completion"] == second
    # this server sends no usage: no prompt count, and the text chunks counted as tokens
    assert chat.attributes["gen_ai.usage.input_tokens"] == 0
    assert chat.attributes["gen_ai.usage.output_tokens"] == -(-len(second) // 3)


def _approve(node: str, tool: str, call_id: str, arguments: Any) -> Approve:
    return Approve()


def test_agent_turns_stream_and_tool_calls_arrive_whole_from_split_deltas(tmp_path: Path) -> None:
    final = {"ticker": "BOLT", "qty": 80, "note": "bought 80 BOLT"}
    replies = [
        calls(("quote", {"ticker": "BOLT"}), ("buy", {"ticker": "BOLT", "qty": 80, "price": 12.5})),
        answer(final),
    ]
    desk.LEDGER.clear()
    try:
        with scripted(replies) as server:
            result, tracer, heard, _ = _run(
                load(flow_path("desk")),
                {"news": "BOLT jumps", "cash": 1000.0},
                model=server.model,
                approve=_approve,
            )
        assert result.status == "ok", result.error
        assert desk.LEDGER == [{"ticker": "BOLT", "qty": 80, "price": 12.5}]  # the split arguments parsed
    finally:
        desk.LEDGER.clear()
    assert [t.start for t in heard if t.start] == ["turn 1", "turn 2"]
    assert "".join(t.text for t in heard if t.start is None) == json.dumps(final)
    turns = [s for s in tracer.spans if s.attributes.get("workbench.agent.step")]
    assert json.loads(turns[0].attributes["workbench.agent.tool_calls"])[1]["arguments"] == json.dumps(
        {"ticker": "BOLT", "qty": 80, "price": 12.5}
    )


def test_a_replayed_answer_streams_as_one_piece(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    flow = load(flow_path("trader"))
    with tracer_for(db) as tracer:
        recorded = Executor(flow, tracer=tracer).run(TRADE)
    assert recorded.status == "ok", recorded.error
    with TraceStore(db) as store:
        answers = store.model_answers(recorded.run_id)
    result, tracer, heard, _ = _run(flow, TRADE, replay=answers)
    assert result.outputs == recorded.outputs
    (chat,) = tracer.by_name("chat")
    assert heard == [
        NodeToken("analyst", "", "answer"),
        NodeToken("analyst", chat.attributes["gen_ai.completion"]),
    ]


def test_without_a_listener_requests_carry_none() -> None:
    seen: list[Any] = []

    class Spy:
        name = "spy"

        async def generate(self, requests: Any) -> Any:
            from workbench.models.base import Generation

            seen.extend(r.on_token for r in requests)
            return [
                Generation(json.dumps({"side": "hold", "ticker": "BOLT", "qty": 0, "price": 1.0}), "stop")
            ]

        def stream(self, request: Any) -> Any:
            raise NotImplementedError

    assert Executor(load(flow_path("trader")), model=Spy()).run(TRADE).status == "ok"
    assert seen == [None]


def test_openai_stream_tells_on_token_what_it_yields(serve_model: str) -> None:
    heard: list[TokenEvent] = []

    async def events() -> list[TokenEvent]:
        request = GenerationRequest(prompt="The market", max_tokens=12, on_token=heard.append)
        return [e async for e in OpenAIModel(serve_model, "default").stream(request)]

    got = asyncio.run(events())
    assert heard == got and len(got) > 2 and got[-1].finish_reason is not None


def test_a_repair_announces_itself_and_streams_the_new_answer() -> None:
    text = flow_path("trader").read_text()
    rail = 'restricted: {on: analyst.order, check: "order.ticker not in RESTRICTED"}'
    assert rail in text
    flow = loads(text.replace(rail, rail[:-1] + ", enforce: repair, max_attempts: 2}"))
    first = {"side": "buy", "ticker": "ACME", "qty": 0, "price": 12.5}  # a restricted ticker
    second = {**first, "ticker": "BOLT"}
    with scripted([answer(first), answer(second)]) as server:
        result, _, heard, _ = _run(flow, TRADE, model=server.model)
    assert result.status == "ok", result.error
    assert [t.start for t in heard if t.start] == ["answer", "repair"]
    repair = next(i for i, t in enumerate(heard) if t.start == "repair")
    assert json.loads("".join(t.text for t in heard[1:repair])) == first
    assert json.loads("".join(t.text for t in heard[repair + 1 :])) == second
