"""serve-model speaks tools, n, logprobs and stop to the official OpenAI client, on loopback.

The model is the shipped tiny one; every tool call it writes must parse and fit its tool's
schema whatever the model knows, because calls are generated under the tools' grammar.
"""

from __future__ import annotations

import asyncio
import json
import math

import httpx
import openai
import pytest

from workbench.models.base import GenerationRequest
from workbench.models.corpus import DESK_TOOLS, desk_messages
from workbench.models.local import LocalModel

from .tool_schemas import valid

MESSAGES = desk_messages("BOLT shares jump after a record quarter", "1000.0")
TOOLS = [json.loads(json.dumps(t)) for t in DESK_TOOLS]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}


@pytest.fixture(scope="module")
def client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base, api_key="unused", max_retries=0, timeout=120)


def _calls(choice: object) -> list[tuple[str, dict]]:
    calls = choice.message.tool_calls or []
    out = []
    for call in calls:
        assert call.type == "function" and call.id.startswith("call_")
        arguments = json.loads(call.function.arguments)
        assert valid(arguments, SCHEMAS[call.function.name]), call.function.arguments
        out.append((call.function.name, arguments))
    return out


def test_required_gives_well_formed_calls(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model="default", messages=MESSAGES, tools=TOOLS, tool_choice="required", max_tokens=120, temperature=0
    )
    (choice,) = answer.choices
    assert choice.finish_reason == "tool_calls"
    assert _calls(choice) and choice.message.content is None


def test_a_named_function_is_the_one_call(client: openai.OpenAI) -> None:
    for name in SCHEMAS:
        answer = client.chat.completions.create(
            model="default",
            messages=MESSAGES,
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": name}},
            max_tokens=120,
            temperature=1.0,
            seed=7,
        )
        assert [n for n, _ in _calls(answer.choices[0])] == [name]


def test_auto_gives_text_or_well_formed_calls(client: openai.OpenAI) -> None:
    for seed in range(4):
        answer = client.chat.completions.create(
            model="default", messages=MESSAGES, tools=TOOLS, max_tokens=120, temperature=1.0, seed=seed
        )
        (choice,) = answer.choices
        if choice.message.tool_calls:
            assert choice.finish_reason == "tool_calls" and _calls(choice)
        else:
            assert not choice.message.content.startswith("<tool_call>")


def test_none_answers_in_text(client: openai.OpenAI, model: LocalModel) -> None:
    answer = client.chat.completions.create(
        model="default", messages=MESSAGES, tools=TOOLS, tool_choice="none", max_tokens=40, temperature=0
    )
    (choice,) = answer.choices
    assert choice.message.tool_calls is None and choice.finish_reason in ("stop", "length")
    [direct] = asyncio.run(model.generate([GenerationRequest(messages=MESSAGES, tools=TOOLS, max_tokens=40,
                                                             tool_choice="none")]))  # fmt: skip
    assert choice.message.content == direct.text


def test_a_conversation_with_calls_and_tool_answers_reaches_the_template(client: openai.OpenAI) -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "quote", "arguments": '{"ticker": "BOLT"}'},
    }
    history = [
        *MESSAGES,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"price": 12.5}'},
    ]
    short = client.chat.completions.create(model="default", messages=MESSAGES, tools=TOOLS, max_tokens=1)
    longer = client.chat.completions.create(
        model="default", messages=history, tools=TOOLS, tool_choice="required", max_tokens=120, temperature=0
    )
    assert _calls(longer.choices[0])
    prompt = longer.usage.prompt_tokens - short.usage.prompt_tokens
    assert prompt >= 20  # the call and the tool's answer were rendered into the prompt


def test_streaming_with_tools_sends_the_calls_as_deltas(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="default", messages=MESSAGES, tools=TOOLS, tool_choice="required", max_tokens=120,
        temperature=0, stream=True,
    )  # fmt: skip
    chunks = list(stream)
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    calls = [tc for d in deltas for tc in (d.tool_calls or [])]
    assert calls and all(tc.function.name in SCHEMAS for tc in calls)
    for tc in calls:
        assert valid(json.loads(tc.function.arguments), SCHEMAS[tc.function.name])
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_n_choices_are_each_seeded_request(client: openai.OpenAI, model: LocalModel) -> None:
    answer = client.chat.completions.create(
        model="default", messages=MESSAGES, n=2, max_tokens=24, temperature=1.0, seed=11
    )
    assert [c.index for c in answer.choices] == [0, 1]
    direct = asyncio.run(model.generate([
        GenerationRequest(messages=MESSAGES, max_tokens=24, temperature=1.0, seed=11 + i) for i in range(2)
    ]))  # fmt: skip
    assert [c.message.content for c in answer.choices] == [g.text for g in direct]
    assert answer.usage.completion_tokens == sum(g.output_tokens for g in direct)


def test_completions_take_n_too(base: str) -> None:
    body = {"prompt": ["News:", "Ticket:"], "n": 2, "max_tokens": 4, "temperature": 1.0, "seed": 3}
    response = httpx.post(f"{base}/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text
    assert [c["index"] for c in response.json()["choices"]] == [0, 1, 2, 3]


def test_logprobs_and_top_logprobs(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model="default", messages=MESSAGES, max_tokens=12, temperature=0, logprobs=True, top_logprobs=3
    )
    (choice,) = answer.choices
    content = choice.logprobs.content
    assert 0 < len(content) <= answer.usage.completion_tokens
    assert "".join(t.token for t in content) == choice.message.content
    for token in content:
        tops = token.top_logprobs
        assert len(tops) == 3
        assert [t.logprob for t in tops] == sorted((t.logprob for t in tops), reverse=True)
        assert sum(math.exp(t.logprob) for t in tops) <= 1 + 1e-5
        # greedy and unconstrained: the chosen token is the most likely one
        assert (token.token, token.logprob) == (tops[0].token, pytest.approx(tops[0].logprob, abs=1e-5))
        assert token.bytes == list(token.token.encode())


def test_completions_logprobs_are_the_legacy_lists(base: str) -> None:
    body = {"prompt": "News:", "max_tokens": 5, "temperature": 0, "logprobs": 2}
    response = httpx.post(f"{base}/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text
    logprobs = response.json()["choices"][0]["logprobs"]
    assert len(logprobs["tokens"]) == len(logprobs["token_logprobs"]) == len(logprobs["top_logprobs"])
    assert all(len(top) <= 2 for top in logprobs["top_logprobs"])
    assert logprobs["text_offset"][0] == 0


def test_stop_cuts_the_text_before_the_stop_string(client: openai.OpenAI) -> None:
    full = client.chat.completions.create(model="default", messages=MESSAGES, max_tokens=30, temperature=0)
    text = full.choices[0].message.content
    stop = text[5:8]
    cut = client.chat.completions.create(
        model="default", messages=MESSAGES, max_tokens=30, temperature=0, stop=[stop, "never-there"]
    )
    assert cut.choices[0].message.content == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "sell"}}}, "'sell'"),
        ({"tools": [{"type": "function", "function": {"name": "a b"}}]}, "function.name"),
        ({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice must be"),
        ({"tool_choice": "required"}, "tool_choice needs tools"),
        ({"top_logprobs": 2}, "top_logprobs needs logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "between 0 and 20"),
        ({"n": 2, "stream": True}, "n > 1"),
        ({"n": 17}, "n must be"),
    ],
)
def test_bad_tool_and_sampling_fields_get_400(base: str, extra: dict, needle: str) -> None:
    response = httpx.post(f"{base}/chat/completions", json={"messages": MESSAGES, **extra}, timeout=60)
    assert response.status_code == 400, response.text
    assert needle in response.json()["error"]["message"]
