"""The ``openai`` model backend against our own server on loopback (and the official client)."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

pytest.importorskip("torch")
pytest.importorskip("uvicorn")

from workbench.errors import ModelUnavailable, UsageError
from workbench.models.base import GenerationRequest
from workbench.models.corpus import ORDER_SCHEMA, make_corpus
from workbench.models.local import DEFAULT_MODEL_DIR, LocalModel
from workbench.models.openai_client import ModelHTTPError, OpenAIModel, load_openai
from workbench.models.registry import resolve_model

needs_model = pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "model.safetensors").exists(), reason="the tiny model is not trained"
)
PROMPT = make_corpus(1, seed=777, triage_share=0.0, heldout_templates=True)[0].prompt
MESSAGES = [{"role": "user", "content": PROMPT}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_model
def test_generate_over_http_equals_local_greedy(base: str, model: LocalModel) -> None:
    remote = resolve_model({"openai": {"base_url": base, "model": "default"}})
    assert isinstance(remote, OpenAIModel)
    requests = [
        GenerationRequest(messages=MESSAGES, max_tokens=48),
        GenerationRequest(prompt="News: ", max_tokens=8),
    ]
    got = asyncio.run(remote.generate(requests))
    want = asyncio.run(model.generate(requests))
    assert [g.text for g in got] == [g.text for g in want]
    assert [g.finish_reason for g in got] == [g.finish_reason for g in want]
    assert got[0].input_tokens == want[0].input_tokens and got[0].output_tokens == want[0].output_tokens


@needs_model
def test_stream_over_http_yields_the_same_text(base: str, model: LocalModel) -> None:
    remote = OpenAIModel(base, "default")

    async def collect() -> list:
        return [event async for event in remote.stream(GenerationRequest(messages=MESSAGES, max_tokens=48))]

    events = asyncio.run(collect())
    [want] = asyncio.run(model.generate([GenerationRequest(messages=MESSAGES, max_tokens=48)]))
    assert "".join(e.text for e in events) == want.text
    assert events[-1].finish_reason == want.finish_reason
    assert all(e.finish_reason is None for e in events[:-1])


@needs_model
def test_response_schema_is_sent_and_honoured(base: str) -> None:
    remote = OpenAIModel(base.removesuffix("/v1"))  # bare host: /v1 added; model taken from /v1/models
    [gen] = asyncio.run(
        remote.generate([GenerationRequest(messages=MESSAGES, max_tokens=64, response_schema=ORDER_SCHEMA)])
    )
    assert remote.model == "default"
    order = json.loads(gen.text)
    assert list(order) == ["side", "ticker", "qty", "price"]


@needs_model
def test_server_errors_carry_the_server_message(base: str) -> None:
    remote = OpenAIModel(base, "no-such-model")
    with pytest.raises(ModelHTTPError) as info:
        asyncio.run(remote.generate([GenerationRequest(prompt="hi", max_tokens=2)]))
    assert info.value.status == 404 and "no-such-model" in str(info.value)
    remote = OpenAIModel(base, "default")
    with pytest.raises(ModelHTTPError, match="context"):
        asyncio.run(remote.generate([GenerationRequest(prompt="word " * 3000)]))

    async def drain() -> None:
        async for _ in remote.stream(GenerationRequest(prompt="word " * 3000)):
            pass

    with pytest.raises(ModelHTTPError, match="context"):
        asyncio.run(drain())


def test_connection_refused_names_the_url() -> None:
    port = _free_port()
    remote = OpenAIModel(f"http://127.0.0.1:{port}/v1", "m", timeout=5)
    with pytest.raises(ModelUnavailable, match=f"127.0.0.1:{port}"):
        asyncio.run(remote.generate([GenerationRequest(prompt="hi")]))

    async def drain() -> None:
        async for _ in remote.stream(GenerationRequest(prompt="hi")):
            pass

    with pytest.raises(ModelUnavailable, match=f"127.0.0.1:{port}"):
        asyncio.run(drain())


def test_api_key_comes_from_the_named_variable_and_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    remote = load_openai({"base_url": "http://127.0.0.1:1/v1", "model": "m", "api_key_env": "WB_TEST_KEY"})
    monkeypatch.delenv("WB_TEST_KEY", raising=False)
    with pytest.raises(ModelUnavailable, match="WB_TEST_KEY"):
        asyncio.run(remote.generate([GenerationRequest(prompt="hi")]))
    monkeypatch.setenv("WB_TEST_KEY", "sk-secret-123")
    assert remote._headers()["Authorization"] == "Bearer sk-secret-123"
    assert "sk-secret" not in repr(remote)
    with pytest.raises(ModelUnavailable) as info:  # port 1: refused; the message has no key
        asyncio.run(remote.generate([GenerationRequest(prompt="hi")]))
    assert "sk-secret" not in str(info.value)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"model": "m"}, "base_url"),
        ({"base_url": "ftp://x", "model": "m"}, "http"),
        ({"base_url": "http://x", "modle": "m"}, "modle"),
        ({"base_url": "http://x", "timeout": -1}, "timeout"),
        (42, "mapping"),
    ],
)
def test_bad_specs_are_usage_errors(spec: object, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        load_openai(spec)


def test_base_url_normalisation() -> None:
    assert OpenAIModel("http://h:1").base_url == "http://h:1/v1"
    assert OpenAIModel("http://h:1/v1/").base_url == "http://h:1/v1"
    assert OpenAIModel("http://h:1/api/openai").base_url == "http://h:1/api/openai"


@needs_model
def test_the_official_openai_client_talks_to_our_server(base: str) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=base, api_key="unused", max_retries=0, timeout=60)
    assert [m.id for m in client.models.list()] == ["default"]
    chat = client.chat.completions.create(
        model="default",
        messages=MESSAGES,
        max_tokens=64,
        temperature=0,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "order", "schema": ORDER_SCHEMA, "strict": True},
        },
    )
    order = json.loads(chat.choices[0].message.content)
    assert order["side"] in ("buy", "sell", "hold")
    pieces = [
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(
            model="default", messages=MESSAGES, max_tokens=48, temperature=0, stream=True
        )
        if chunk.choices
    ]
    plain = client.chat.completions.create(model="default", messages=MESSAGES, max_tokens=48, temperature=0)
    assert "".join(pieces) == plain.choices[0].message.content
    completion = client.completions.create(model="default", prompt="News: ", max_tokens=4, temperature=0)
    assert isinstance(completion.choices[0].text, str)
    with pytest.raises(openai.BadRequestError, match="context"):
        client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "word " * 3000}]
        )
