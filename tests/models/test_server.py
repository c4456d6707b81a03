"""The OpenAI-compatible server on loopback, with the shipped tiny model, over raw HTTP."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator

import httpx
import pytest

pytest.importorskip("torch")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from workbench.models.base import Generation, GenerationRequest, TokenEvent
from workbench.models.corpus import ORDER_SCHEMA, make_corpus
from workbench.models.local import DEFAULT_MODEL_DIR, LocalModel
from workbench.models.server import running_server

pytestmark = pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "model.safetensors").exists(), reason="the tiny model is not trained"
)

PROMPT = make_corpus(1, seed=4242, triage_share=0.0, heldout_templates=True)[0].prompt
MESSAGES = [{"role": "user", "content": PROMPT}]
RESPONSE_FORMAT = {"type": "json_schema", "json_schema": {"name": "order", "schema": ORDER_SCHEMA}}


@pytest.fixture(scope="module")
def model() -> LocalModel:
    return LocalModel.from_pretrained(DEFAULT_MODEL_DIR, name="default")


@pytest.fixture(scope="module")
def base(model: LocalModel) -> Iterator[str]:
    with running_server(model, "default") as url:
        yield url


@pytest.fixture(scope="module")
def http(base: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base, timeout=60) as client:
        yield client


def _sse(text: str) -> list[dict | str]:
    """Parse an SSE body into JSON payloads (and the final "[DONE]")."""
    out: list[dict | str] = []
    for line in text.splitlines():
        if line.startswith("data: "):
            payload = line[len("data: ") :]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def test_models_lists_the_served_model(http: httpx.Client) -> None:
    body = http.get("/models").json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["default"]


def test_chat_completion_is_the_greedy_answer(http: httpx.Client, model: LocalModel) -> None:
    response = http.post(
        "/chat/completions",
        json={"model": "default", "messages": MESSAGES, "max_tokens": 48, "temperature": 0},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == "default"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] in ("stop", "length")
    [direct] = asyncio.run(model.generate([GenerationRequest(messages=MESSAGES, max_tokens=48)]))
    assert choice["message"]["content"] == direct.text
    usage = body["usage"]
    assert usage["prompt_tokens"] == direct.input_tokens
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_response_format_json_schema_gives_schema_valid_json(http: httpx.Client) -> None:
    response = http.post(
        "/chat/completions",
        json={"messages": MESSAGES, "max_tokens": 64, "temperature": 0, "response_format": RESPONSE_FORMAT},
    )
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    order = json.loads(choice["message"]["content"])
    assert list(order) == ["side", "ticker", "qty", "price"]
    assert order["side"] in ("buy", "sell", "hold") and re.fullmatch("[A-Z]{1,5}", order["ticker"])
    assert isinstance(order["qty"], int) and order["qty"] >= 0 and order["price"] > 0


def test_response_format_constrains_even_a_sampled_free_prompt(http: httpx.Client) -> None:
    schema = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}},
        "required": ["ok"],
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    response = http.post(
        "/completions",
        json={
            "prompt": "Say anything.",
            "max_tokens": 32,
            "temperature": 1.0,
            "seed": 7,
            "response_format": fmt,
        },
    )
    assert response.status_code == 200, response.text
    assert json.loads(response.json()["choices"][0]["text"]) in ({"ok": True}, {"ok": False})


def test_completions_with_several_prompts(http: httpx.Client) -> None:
    response = http.post(
        "/completions", json={"prompt": ["News: ", "Ticket: "], "max_tokens": 5, "temperature": 0}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "text_completion"
    assert [c["index"] for c in body["choices"]] == [0, 1]
    assert all(isinstance(c["text"], str) for c in body["choices"])


def test_chat_streaming_matches_the_whole_answer(http: httpx.Client) -> None:
    request = {"messages": MESSAGES, "max_tokens": 48, "temperature": 0}
    whole = http.post("/chat/completions", json=request).json()["choices"][0]["message"]["content"]
    streamed = http.post(
        "/chat/completions", json={**request, "stream": True, "stream_options": {"include_usage": True}}
    )
    assert streamed.status_code == 200
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = _sse(streamed.text)
    assert events[-1] == "[DONE]"
    chunks = [e for e in events[:-1] if isinstance(e, dict)]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == whole
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] in ("stop", "length") and all(f is None for f in finishes[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


def test_completions_streaming(http: httpx.Client) -> None:
    request = {"prompt": "News: ACME", "max_tokens": 8, "temperature": 0}
    whole = http.post("/completions", json=request).json()["choices"][0]["text"]
    events = _sse(http.post("/completions", json={**request, "stream": True}).text)
    assert events[-1] == "[DONE]"
    assert "".join(e["choices"][0]["text"] for e in events[:-1]) == whole


@pytest.mark.parametrize(
    ("payload", "status", "needle"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        ({"messages": []}, 400, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, 400, "role"),
        ({"messages": MESSAGES, "temperature": 7}, 400, "temperature"),
        ({"messages": MESSAGES, "max_tokens": -1}, 400, "max_tokens"),
        ({"messages": MESSAGES, "n": 3}, 400, "n must be 1"),
        ({"messages": MESSAGES, "model": "gpt-9"}, 404, "gpt-9"),
        ({"messages": MESSAGES, "response_format": {"type": "xml"}}, 400, "response_format"),
        ({"messages": [{"role": "user", "content": "word " * 3000}]}, 400, "context"),
        ({"messages": [{"role": "user", "content": "word " * 3000}], "stream": True}, 400, "context"),
    ],
)
def test_bad_requests_get_openai_style_4xx(
    http: httpx.Client, payload: object, status: int, needle: str
) -> None:
    if isinstance(payload, bytes):
        response = http.post(
            "/chat/completions", content=payload, headers={"content-type": "application/json"}
        )
    else:
        response = http.post("/chat/completions", json=payload)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert needle in error["message"]
    assert error["type"] == "invalid_request_error"
    # and the server is still up
    assert http.get("/models").status_code == 200


def test_prompt_too_long_has_the_openai_code(http: httpx.Client) -> None:
    response = http.post("/completions", json={"prompt": "word " * 3000})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "context_length_exceeded"


def test_unknown_route_and_method_are_json_errors(http: httpx.Client) -> None:
    response = http.get("/nope")
    assert response.status_code == 404 and "error" in response.json()
    response = http.get("/chat/completions")
    assert response.status_code == 405 and "error" in response.json()


def test_concurrent_requests_are_batched_and_all_answered(base: str, model: LocalModel) -> None:
    prompts = [ex.prompt for ex in make_corpus(6, seed=99, triage_share=0.0)]
    sizes: list[int] = []
    engine = getattr(model, "engine", None)
    original = engine.run if engine is not None else None
    if engine is not None:

        def spy(jobs: list) -> list:  # records batch sizes; the real engine does the work
            sizes.append(len(jobs))
            return original(jobs)

        engine.run = spy

    async def ask_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        "/chat/completions",
                        json={
                            "messages": [{"role": "user", "content": p}],
                            "max_tokens": 40,
                            "temperature": 0,
                        },
                    )
                    for p in prompts
                )
            )

    try:
        responses = asyncio.run(ask_all())
    finally:
        if engine is not None:
            engine.run = original
    assert [r.status_code for r in responses] == [200] * len(prompts)
    direct = asyncio.run(
        model.generate(
            [GenerationRequest(messages=[{"role": "user", "content": p}], max_tokens=40) for p in prompts]
        )
    )
    assert [r.json()["choices"][0]["message"]["content"] for r in responses] == [g.text for g in direct]
    if engine is not None:
        assert max(sizes) > 1, f"requests were never batched: {sizes}"


def test_a_client_leaving_mid_stream_does_not_hurt_the_server(base: str, http: httpx.Client) -> None:
    with httpx.Client(base_url=base, timeout=60) as client:
        request = {"messages": MESSAGES, "max_tokens": 48, "stream": True}
        with client.stream("POST", "/chat/completions", json=request) as response:
            assert response.status_code == 200
            next(response.iter_lines())  # read one event, then hang up
    response = http.post("/chat/completions", json={"messages": MESSAGES, "max_tokens": 8})
    assert response.status_code == 200


def test_serve_model_command_line(tmp_path: object) -> None:
    import argparse
    import socket

    from workbench.errors import UsageError
    from workbench.models.server import load_served_model, register, serve

    parser = argparse.ArgumentParser(prog="workbench")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve-model", "default"])
    assert (args.model, args.address, args.port) == ("default", "127.0.0.1", 8000) and callable(args.handler)
    args = parser.parse_args(["serve-model", "./ckpt", "--port", "9001", "--address", "0.0.0.0"])
    assert (args.port, args.address) == (9001, "0.0.0.0")
    with pytest.raises(UsageError, match="neither"):
        load_served_model(str(tmp_path) + "/missing")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(UsageError, match="cannot listen"):
            serve("default", port=taken.getsockname()[1])


class _Pieces:
    """A plain async iterator (not a generator: it has no ``aclose``)."""

    def __init__(self, pieces: list[str]) -> None:
        self.events = [TokenEvent(i, p) for i, p in enumerate(pieces)]
        self.events[-1].finish_reason = "stop"

    def __aiter__(self) -> _Pieces:
        return self

    async def __anext__(self) -> TokenEvent:
        if not self.events:
            raise StopAsyncIteration
        return self.events.pop(0)


class _PlainIteratorModel:
    """A model whose ``stream`` returns an ``AsyncIterator``, all the Model protocol asks."""

    name = "plain"

    async def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        return [Generation("ab", "stop") for _ in requests]

    def stream(self, request: GenerationRequest) -> _Pieces:
        return _Pieces(["a", "b"])


def test_streaming_from_a_plain_async_iterator() -> None:
    with running_server(_PlainIteratorModel(), "plain") as url, httpx.Client(base_url=url) as client:
        request = {"messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
        events = _sse(client.post("/chat/completions", json=request).text)
    chunks = [e for e in events[:-1] if isinstance(e, dict)]
    assert events[-1] == "[DONE]" and not any("error" in c for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "ab"
    assert chunks[-1]["usage"]["prompt_tokens"] is None  # no tokenizer to count the prompt with
