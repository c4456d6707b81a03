"""The OpenAI-compatible server on loopback, with the shipped tiny model, over raw HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

pytest.importorskip("torch")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from workbench.models.base import Generation, GenerationRequest, TokenEvent
from workbench.models.corpus import ORDER_SCHEMA, make_corpus
from workbench.models.local import DEFAULT_MODEL_DIR, LocalModel
from workbench.models.server import ServerLimits, _api_key, running_server

pytestmark = pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "model.safetensors").exists(), reason="the tiny model is not trained"
)

PROMPT = make_corpus(1, seed=4242, triage_share=0.0, heldout_templates=True)[0].prompt
MESSAGES = [{"role": "user", "content": PROMPT}]
RESPONSE_FORMAT = {"type": "json_schema", "json_schema": {"name": "order", "schema": ORDER_SCHEMA}}


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
        ({"messages": MESSAGES, "n": 3, "stream": True}, 400, "n > 1"),
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
    assert args.api_key is None
    limits = ServerLimits()
    assert (args.max_body_bytes, args.max_prompt_tokens, args.max_tokens_limit, args.queue_size) == (
        limits.max_body_bytes,
        limits.max_prompt_tokens,
        limits.max_tokens,
        limits.queue_size,
    )
    args = parser.parse_args(["serve-model", "./ckpt", "--port", "9001", "--address", "0.0.0.0"])
    assert (args.port, args.address) == (9001, "0.0.0.0")
    with pytest.raises(UsageError, match="neither"):
        load_served_model(str(tmp_path) + "/missing")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(UsageError, match="cannot listen"):
            serve("default", port=taken.getsockname()[1])


# ---- authentication and limits -----------------------------------------------------------

KEY = "sk-test-7f3a9c"
LIMITS = ServerLimits(max_body_bytes=4096, max_prompt_tokens=64, max_tokens=32, queue_size=1)
SHORT = [{"role": "user", "content": "News: ACME beats estimates."}]


@pytest.fixture(scope="module")
def guarded(model: LocalModel) -> Iterator[str]:
    """A server that wants ``KEY`` and has small limits (the queue holds one request)."""
    with running_server(model, "default", api_key=KEY, limits=LIMITS) as url:
        yield url


@pytest.fixture
def authed(guarded: str) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=guarded, timeout=60, headers=headers) as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/models"), ("GET", "/health"), ("POST", "/v1/chat/completions"),
     ("POST", "/v1/completions"), ("GET", "/no-such-route")],
)  # fmt: skip
def test_every_route_wants_the_key(guarded: str, method: str, path: str) -> None:
    with httpx.Client(base_url=guarded.removesuffix("/v1"), timeout=60) as client:
        missing = client.request(method, path, json={"messages": SHORT, "prompt": "x"})
        wrong = client.request(
            method, path, json={"messages": SHORT}, headers={"Authorization": "Bearer sk-nope"}
        )
        other_scheme = client.request(method, path, headers={"Authorization": f"Basic {KEY}"})
    for response in (missing, wrong, other_scheme):
        assert response.status_code == 401, response.text
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and error["code"] == "invalid_api_key"
        assert "sk-nope" not in response.text and KEY not in response.text
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "no API key" in missing.json()["error"]["message"]
    assert wrong.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert "wrong" in wrong.json()["error"]["message"]


def test_the_right_key_opens_every_route(guarded: str) -> None:
    root = guarded.removesuffix("/v1")
    # the scheme is case-insensitive (RFC 7235); the key is not
    with httpx.Client(base_url=root, timeout=60, headers={"Authorization": f"bearer {KEY}"}) as client:
        assert client.get("/health").json()["status"] == "ok"
        assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["default"]
        response = client.post("/v1/completions", json={"prompt": "News: ", "max_tokens": 4})
        assert response.status_code == 200, response.text
        assert client.get("/no-such-route").status_code == 404
    with httpx.Client(base_url=root, timeout=60) as client:
        assert client.get("/health", headers={"Authorization": f"Bearer {KEY.upper()}"}).status_code == 401


def test_official_openai_client_with_the_key(guarded: str, model: LocalModel) -> None:
    import openai

    client = openai.OpenAI(base_url=guarded, api_key=KEY, max_retries=0)
    answer = client.chat.completions.create(model="default", messages=SHORT, max_tokens=16, temperature=0)
    [direct] = asyncio.run(model.generate([GenerationRequest(messages=SHORT, max_tokens=16)]))
    assert answer.choices[0].message.content == direct.text
    assert [m.id for m in client.models.list()] == ["default"]
    with pytest.raises(openai.AuthenticationError) as caught:
        openai.OpenAI(base_url=guarded, api_key="sk-wrong", max_retries=0).models.list()
    assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"


def test_the_flag_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.errors import UsageError

    monkeypatch.setenv("WORKBENCH_API_KEY", "from-env")
    assert _api_key(None) == "from-env"
    assert _api_key("from-flag") == "from-flag"
    for bad in ("", "two words", "tab\tkey"):
        with pytest.raises(UsageError, match="--api-key must be a non-empty key"):
            _api_key(bad)
    monkeypatch.setenv("WORKBENCH_API_KEY", "new\nline")
    with pytest.raises(UsageError, match="WORKBENCH_API_KEY must be a non-empty key"):
        _api_key(None)
    monkeypatch.setenv("WORKBENCH_API_KEY", "")  # set but empty: as if unset
    assert _api_key(None) is None


def test_running_server_refuses_an_open_address_without_a_key(model: LocalModel) -> None:
    from workbench.errors import UsageError

    for address in ("0.0.0.0", "::", "192.0.2.1", "my-host.example"):
        with pytest.raises(UsageError, match="not loopback"), running_server(model, address=address):
            pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_reads_the_key_from_the_environment() -> None:
    port = _free_port()
    env = {**os.environ, "WORKBENCH_API_KEY": "sk-from-env"}
    command = [sys.executable, "-m", "workbench", "serve-model", "default", "--port", str(port)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                unauthenticated = httpx.get(f"{base}/health", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "serve-model did not start"
                time.sleep(0.2)
        assert unauthenticated.status_code == 401
        right = httpx.get(f"{base}/v1/models", headers={"Authorization": "Bearer sk-from-env"}, timeout=5)
        assert right.status_code == 200 and right.json()["data"][0]["id"] == "default"
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_body_over_the_limit_by_content_length_gets_413(guarded: str, authed: httpx.Client) -> None:
    body = json.dumps({"messages": [{"role": "user", "content": "x" * 5000}]}).encode()
    response = authed.post("/chat/completions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413, response.text
    message = response.json()["error"]["message"]
    assert f"{len(body)} bytes" in message and "4096" in message and "--max-body-bytes" in message
    assert authed.get("/models").status_code == 200  # and the server is still up


def test_chunked_body_over_the_limit_gets_413(authed: httpx.Client) -> None:
    # No Content-Length: the server has to count the bytes as they come.
    def chunks() -> Iterator[bytes]:
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}]}'

    response = authed.post(
        "/chat/completions", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.request.headers
    assert response.status_code == 413, response.text
    assert "4096" in response.json()["error"]["message"]
    assert authed.get("/models").status_code == 200  # and the server is still up


def test_a_chunked_body_under_the_limit_is_read_whole(authed: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"prompt": "News: ",'
        yield b' "max_tokens": 3}'

    response = authed.post("/completions", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_over_the_limit_gets_400(authed: httpx.Client, field: str) -> None:
    response = authed.post("/chat/completions", json={"messages": SHORT, field: 33})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == field
    assert "33" in error["message"] and "limit of 32" in error["message"]
    assert "--max-tokens-limit" in error["message"]
    at_limit = authed.post("/chat/completions", json={"messages": SHORT, field: 32, "temperature": 0})
    assert at_limit.status_code == 200, at_limit.text


def test_prompt_over_the_token_limit_gets_400(authed: httpx.Client, model: LocalModel) -> None:
    messages = [{"role": "user", "content": "News: ACME beats estimates. " * 12}]
    text = model.tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    length = len(model.tokenizer.encode(text, add_special_tokens=False))
    assert 64 < length < model.config.context_length  # over our limit, within the model's context
    response = authed.post("/chat/completions", json={"messages": messages, "max_tokens": 4})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "messages" and error["code"] == "prompt_too_long"
    assert f"{length} tokens after the chat template" in error["message"]
    assert "limit of 64" in error["message"] and "--max-prompt-tokens" in error["message"]
    streamed = authed.post("/chat/completions", json={"messages": messages, "max_tokens": 4, "stream": True})
    assert streamed.status_code == 400 and streamed.json()["error"]["code"] == "prompt_too_long"
    completion = authed.post("/completions", json={"prompt": messages[0]["content"], "max_tokens": 4})
    assert completion.status_code == 400 and completion.json()["error"]["param"] == "prompt"


def test_a_full_queue_answers_429_with_retry_after(guarded: str, model: LocalModel) -> None:
    # The queue holds one request. Holding the model's run lock (as a batch run from another
    # thread with generate_sync would) keeps the first admitted request waiting for the model,
    # so the other one finds the queue full, whichever of the two arrives first.
    async def two_at_once() -> list[httpx.Response]:
        headers = {"Authorization": f"Bearer {KEY}"}
        async with httpx.AsyncClient(base_url=guarded, timeout=60, headers=headers) as client:
            request = {"messages": SHORT, "max_tokens": 8, "temperature": 0}
            tasks = [asyncio.create_task(client.post("/chat/completions", json=request)) for _ in range(2)]
            done, _ = await asyncio.wait(tasks, timeout=30, return_when=asyncio.FIRST_COMPLETED)
            first = [t.result() for t in done]
            model._run_lock.release()  # let the admitted request through
            return first + [await t for t in tasks if t not in done]

    model._run_lock.acquire()
    try:
        first, second = asyncio.run(two_at_once())
    finally:
        if model._run_lock.locked():
            model._run_lock.release()
    assert first.status_code == 429, first.text
    assert first.headers["retry-after"] == "1"
    error = first.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and "--queue-size" in error["message"]
    assert second.status_code == 200, second.text


def test_queue_places_come_back_after_streams_and_hang_ups(authed: httpx.Client, guarded: str) -> None:
    request = {"messages": SHORT, "max_tokens": 8, "temperature": 0}
    streamed = authed.post("/chat/completions", json={**request, "stream": True})
    assert streamed.status_code == 200 and _sse(streamed.text)[-1] == "[DONE]"
    assert authed.post("/chat/completions", json=request).status_code == 200
    headers = {"Authorization": f"Bearer {KEY}"}
    hang_up = {**request, "max_tokens": 32, "stream": True}
    with (
        httpx.Client(base_url=guarded, timeout=60, headers=headers) as client,
        client.stream("POST", "/chat/completions", json=hang_up) as response,
    ):
        assert response.status_code == 200
        next(response.iter_lines())  # one event, then hang up
    deadline = time.monotonic() + 10
    while (status := authed.post("/chat/completions", json=request).status_code) == 429:
        assert time.monotonic() < deadline, "the hung-up stream kept its queue place"
        time.sleep(0.1)
    assert status == 200


def test_queue_places_come_back_after_refusals(model: LocalModel) -> None:
    # a prompt the model's context cannot hold is refused by the model itself, after admission
    too_long = {"messages": [{"role": "user", "content": "word " * 3000}], "max_tokens": 4}
    with (
        running_server(model, limits=ServerLimits(queue_size=1)) as url,
        httpx.Client(base_url=url) as client,
    ):
        for stream in (True, False, True):
            response = client.post("/chat/completions", json={**too_long, "stream": stream}, timeout=60)
            assert (
                response.status_code == 400 and response.json()["error"]["code"] == "context_length_exceeded"
            )
        response = client.post("/chat/completions", json={"messages": SHORT, "max_tokens": 4}, timeout=60)
        assert response.status_code == 200, response.text


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
