"""The ``openai`` model backend: any OpenAI-compatible server (vLLM, SGLang, llama.cpp, Ollama, ours).

    model: {openai: {base_url: "http://127.0.0.1:8000/v1", model: default, api_key_env: MY_KEY}}

A request with ``messages`` goes to ``/v1/chat/completions``, one with ``prompt`` to
``/v1/completions``. ``response_schema`` becomes ``response_format: {"type":
"json_schema", ...}`` (servers that honour it constrain decoding to the schema).
``stream()`` reads the server-sent events of ``"stream": true``. A request's ``tools`` and
``tool_choice`` are sent as given, and a reply's ``tool_calls`` come back as ``ToolCall``s
(with ``generate``; ``stream`` yields text only). ``generate`` streams a request that has an
``on_token`` (SSE, with ``stream_options: {include_usage: true}``), calling it on the event
loop with each text piece as it arrives, and still returns the whole ``Generation``: text,
tool calls assembled from their deltas, finish reason and usage; a server that sends no
usage leaves ``input_tokens`` 0 and counts the text chunks as ``output_tokens`` (one token
each on the servers we know). Token ids are unknown over HTTP (-1 in the events). Inside a
run, each request carries the W3C ``traceparent`` of the current span (the llm node's, or
the agent turn's ``chat`` span), so a server that traces joins the run's trace.

What cannot cross the wire: a request's ``constraint`` (a token-mask object living in this
process) is not sent; the schema is. Rails the constraint would have enforced while
decoding are still checked on the result by the executor. ``top_k`` is sent only when set
(vLLM and our server read it; OpenAI itself rejects unknown fields).

Errors: an unreachable server, a timeout or an HTTP error is a ``ModelUnavailable``
(``ModelHTTPError`` for HTTP errors, carrying the status, the server's own message and its
``Retry-After``); the API key is read from the named environment variable at request time
and never appears in a message or a log. Errors that may pass (a refused connection, a
timeout, HTTP 408/429/500/502/503/504) have ``transient = True``, which is what the
executor's ``retries:`` retries; the others (404, a bad key, a bad answer) are not retried.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import json
import os
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from workbench.errors import ModelUnavailable, UsageError
from workbench.models.base import Generation, GenerationRequest, TokenEvent, ToolCall
from workbench.models.registry import register_backend
from workbench.otel import traceparent

__all__ = ["ModelConnectionError", "ModelHTTPError", "OpenAIModel", "load_openai", "parse_retry_after"]

_SPEC_KEYS = ("base_url", "model", "api_key_env", "timeout")
_FINISH = {"stop": "stop", "length": "length", "eos": "stop", "tool_calls": "tool_calls", None: "stop"}


# Statuses a later attempt may not get: overload, rate limits, gateways, timeouts.
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class ModelConnectionError(ModelUnavailable):
    """The server could not be reached or did not answer in time (``transient``: worth a retry)."""

    transient = True
    retry_after: float | None = None


class ModelHTTPError(ModelUnavailable):
    """The server answered with an HTTP error; ``status`` and ``server_message`` say which.

    ``retry_after``: seconds the server asked the client to wait (its ``Retry-After``
    header, in seconds or as an HTTP date), or None; ``transient``: whether retrying may help.
    """

    def __init__(self, url: str, status: int, server_message: str, retry_after: float | None = None) -> None:
        self.url = url
        self.status = status
        self.server_message = server_message
        self.retry_after = retry_after
        self.transient = status in TRANSIENT_STATUSES
        super().__init__(f"{url} answered HTTP {status}: {server_message}")

    @classmethod
    def from_response(cls, url: str, response: httpx.Response) -> ModelHTTPError:
        """The error for an HTTP error response (its message and ``Retry-After``)."""
        return cls(
            url,
            response.status_code,
            _server_message(response),
            parse_retry_after(response.headers.get("retry-after")),
        )


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date), or None.

    A date in the past is 0; an unreadable value is None (the caller's own back-off applies).
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # HTTP dates are GMT; one written without a zone is read as GMT too
            when = when.replace(tzinfo=datetime.UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # nan, inf
        return None
    return max(0.0, seconds)


def _normalise_base_url(base_url: str) -> str:
    """``http://host:port`` -> ``http://host:port/v1``; a URL with a path is kept as given."""
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise UsageError(f"openai base_url must be an http(s) URL, got {base_url!r}")
    url = base_url.rstrip("/")
    if urlsplit(url).path in ("", "/"):
        url += "/v1"
    return url


def _server_message(response: httpx.Response) -> str:
    """The error text a server sent: OpenAI's ``{"error": {"message"}}`` or the raw body."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping) and "message" in error:
            return str(error["message"])
        if isinstance(error, str):
            return error
        if "detail" in body:  # FastAPI-style servers
            return str(body["detail"])
    return json.dumps(body)[:500]


class OpenAIModel:
    """A ``Model`` backed by an OpenAI-compatible HTTP server."""

    supports_constraints = False  # token masks stay in-process; only response_schema is sent
    supports_tools = True  # tools, tool_choice and tool messages go to the server as given

    def __init__(
        self, base_url: str, model: str | None = None, api_key_env: str | None = None, timeout: float = 120.0
    ) -> None:
        self.base_url = _normalise_base_url(base_url)
        self.model = model
        self.api_key_env = api_key_env
        self.timeout = float(timeout)
        self.name = model or self.base_url

    def __repr__(self) -> str:  # never shows the key, only where it comes from
        return (
            f"OpenAIModel(base_url={self.base_url!r}, model={self.model!r}, api_key_env={self.api_key_env!r})"
        )

    # ---- plumbing -----------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise ModelUnavailable(
                    f"the environment variable {self.api_key_env} (api_key_env of the model at "
                    f"{self.base_url}) is not set"
                )
            headers["Authorization"] = f"Bearer {key}"
        parent = traceparent()  # the node's (or agent turn's) span: the server's spans join the run
        if parent is not None:
            headers["traceparent"] = parent
        return headers

    def _client(self) -> httpx.AsyncClient:
        # A client per call: the registry caches models across event loops (one asyncio.run
        # per flow run), and an httpx connection pool must not outlive its loop.
        timeout = httpx.Timeout(self.timeout, connect=min(10.0, self.timeout))
        return httpx.AsyncClient(timeout=timeout, headers=self._headers())

    def _unavailable(self, url: str, exc: httpx.HTTPError) -> ModelUnavailable:
        if isinstance(exc, httpx.ConnectError):
            return ModelConnectionError(f"cannot connect to the OpenAI-compatible server at {url}: {exc}")
        if isinstance(exc, httpx.TimeoutException):
            return ModelConnectionError(
                f"the OpenAI-compatible server at {url} did not answer within {self.timeout:g} s"
            )
        if isinstance(exc, httpx.TransportError):  # the connection broke mid-request
            return ModelConnectionError(f"request to the OpenAI-compatible server at {url} failed: {exc!r}")
        return ModelUnavailable(f"request to the OpenAI-compatible server at {url} failed: {exc!r}")

    async def _model_name(self, client: httpx.AsyncClient) -> str:
        """The configured model, else the first one the server lists (servers of one model)."""
        if self.model:
            return self.model
        url = f"{self.base_url}/models"
        try:
            response = await client.get(url)
        except httpx.HTTPError as exc:
            raise self._unavailable(url, exc) from None
        if response.status_code >= 400:
            raise ModelHTTPError.from_response(url, response)
        try:
            self.model = str(response.json()["data"][0]["id"])
        except (ValueError, KeyError, IndexError, TypeError):
            raise ModelUnavailable(f"{url} lists no model; set `model:` in the openai spec") from None
        return self.model

    def _body(self, request: GenerationRequest, model: str, stream: bool) -> tuple[str, dict[str, Any]]:
        """The endpoint and JSON body for one request."""
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
        }
        if request.messages is not None:
            endpoint = "chat/completions"
            body["messages"] = list(request.messages)
        elif request.prompt is not None:
            endpoint = "completions"
            body["prompt"] = request.prompt
        else:
            raise UsageError("a GenerationRequest needs a prompt or messages")
        if request.top_k:
            body["top_k"] = request.top_k
        if request.seed is not None:
            body["seed"] = request.seed
        if request.stop:
            body["stop"] = list(request.stop)
        if request.response_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": request.response_schema, "strict": True},
            }
        if request.tools:
            if request.messages is None:
                raise UsageError("tools need chat messages, not a prompt")
            body["tools"] = list(request.tools)
            if request.tool_choice is not None:
                body["tool_choice"] = request.tool_choice
        if stream:
            body["stream"] = True
        return endpoint, body

    # ---- the Model protocol -------------------------------------------------------------
    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """One HTTP request per generation, all in flight at once (the server batches them)."""
        async with self._client() as client:
            model = await self._model_name(client)
            calls = (
                self._generate_one(client, r, model)
                if r.on_token is None
                else self._stream_one(client, r, model)
                for r in requests
            )
            return list(await asyncio.gather(*calls))

    async def _generate_one(
        self, client: httpx.AsyncClient, request: GenerationRequest, model: str
    ) -> Generation:
        endpoint, body = self._body(request, model, stream=False)
        url = f"{self.base_url}/{endpoint}"
        try:
            response = await client.post(url, json=body)
        except httpx.HTTPError as exc:
            raise self._unavailable(url, exc) from None
        if response.status_code >= 400:
            raise ModelHTTPError.from_response(url, response)
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"]["content"] if "message" in choice else choice["text"]
            calls = _tool_calls(choice.get("message") or {})
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise ModelUnavailable(
                f"{url} sent an answer that is not an OpenAI completion: {response.text[:300]!r}"
            ) from None
        usage = data.get("usage") or {}
        return Generation(
            text=text or "",
            finish_reason=_FINISH.get(choice.get("finish_reason"), str(choice.get("finish_reason"))),
            input_tokens=int(usage.get("prompt_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or 0),
            tool_calls=calls,
        )

    async def _stream_one(
        self, client: httpx.AsyncClient, request: GenerationRequest, model: str
    ) -> Generation:
        """One generation read from the server's SSE stream, each text piece told to ``on_token``."""
        assert request.on_token is not None  # generate streams only requests that listen
        endpoint, body = self._body(request, model, stream=True)
        body["stream_options"] = {"include_usage": True}
        url = f"{self.base_url}/{endpoint}"
        parts: list[str] = []
        calls: dict[int, dict[str, Any]] = {}  # tool calls by index, assembled from their deltas
        finish: str | None = None
        usage: Mapping[str, Any] = {}
        async for data in self._chunks(client, url, body):
            if isinstance(data.get("usage"), Mapping):
                usage = data["usage"]
            choice = _first_choice(data, url)
            if choice is None:
                continue  # e.g. the final usage-only chunk
            _merge_calls(calls, choice, url)
            piece, reason = _piece(choice)
            if reason is not None:
                finish = _FINISH.get(reason, reason)
            if piece or reason is not None:
                parts.append(piece)
                request.on_token(TokenEvent(-1, piece, finish_reason=finish if reason else None))
        if finish is None:  # servers that end with [DONE] but no finish_reason
            finish = "stop"
            request.on_token(TokenEvent(-1, "", finish_reason=finish))
        try:
            tool_calls = _tool_calls({"tool_calls": [calls[i] for i in sorted(calls)]})
        except (KeyError, TypeError):
            raise ModelUnavailable(f"{url} streamed a tool call without a function name: {calls!r}") from None
        return Generation(
            text="".join(parts),
            finish_reason=finish,
            input_tokens=int(usage.get("prompt_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or sum(1 for p in parts if p)),
            tool_calls=tool_calls,
        )

    async def stream(self, request: GenerationRequest) -> AsyncIterator[TokenEvent]:
        """Yield text pieces from the server's SSE stream; token ids are unknown over HTTP (-1)."""
        async with self._client() as client:
            model = await self._model_name(client)
            endpoint, body = self._body(request, model, stream=True)
            url = f"{self.base_url}/{endpoint}"
            finished = False
            async for data in self._chunks(client, url, body):
                choice = _first_choice(data, url)
                if choice is None:
                    continue  # e.g. the final usage-only chunk
                piece, reason = _piece(choice)
                if reason is not None:
                    finished = True
                    yield _told(request, TokenEvent(-1, piece, finish_reason=_FINISH.get(reason, reason)))
                elif piece:
                    yield _told(request, TokenEvent(-1, piece))
            if not finished:  # servers that end with [DONE] but no finish_reason
                yield _told(request, TokenEvent(-1, "", finish_reason="stop"))

    async def _chunks(
        self, client: httpx.AsyncClient, url: str, body: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        """The JSON chunks of one server-sent event stream, up to ``[DONE]``."""
        try:
            async with client.stream("POST", url, json=body) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise ModelHTTPError.from_response(url, response)
                async for line in response.aiter_lines():
                    data = _sse_data(line, url)
                    if data == "[DONE]":
                        return
                    if data is not None:
                        yield data
        except httpx.HTTPError as exc:
            raise self._unavailable(url, exc) from None


def _told(request: GenerationRequest, event: TokenEvent) -> TokenEvent:
    """``event``, after the request's ``on_token`` (if any) has heard it."""
    if request.on_token is not None:
        request.on_token(event)
    return event


def _tool_calls(message: Mapping[str, Any]) -> list[ToolCall]:
    """The function calls of a chat message; arguments stay text (the caller checks them)."""
    calls = []
    for i, call in enumerate(message.get("tool_calls") or []):
        function = call["function"]
        arguments = function.get("arguments")
        if not isinstance(arguments, str):  # some servers send an object, not JSON text
            arguments = json.dumps(arguments)
        calls.append(ToolCall(str(call.get("id") or f"call_{i}"), str(function["name"]), arguments))
    return calls


def _sse_data(line: str, url: str) -> dict[str, Any] | Literal["[DONE]"] | None:
    """One SSE line -> its JSON chunk, ``"[DONE]"``, or None to skip; an in-band error raises."""
    if not line.startswith("data:"):
        return None  # blank separators, comments (":"), event:/id: fields
    payload = line[5:].strip()
    if payload == "[DONE]":
        return "[DONE]"
    try:
        data = json.loads(payload)
    except ValueError:
        raise ModelUnavailable(f"{url} streamed a line that is not JSON: {payload[:200]!r}") from None
    if not isinstance(data, dict):
        raise ModelUnavailable(f"{url} streamed a chunk that is not a JSON object: {payload[:200]!r}")
    if "error" in data:
        error = data["error"]
        message = error.get("message", error) if isinstance(error, Mapping) else error
        raise ModelUnavailable(f"{url} reported an error while streaming: {message}")
    return data


def _first_choice(data: Mapping[str, Any], url: str) -> Mapping[str, Any] | None:
    """A chunk's first choice, or None for a chunk without choices (the usage-only one)."""
    choices = data.get("choices") or []
    if not isinstance(choices, list) or not (choices and isinstance(choices[0], Mapping)):
        if choices:
            raise ModelUnavailable(f"{url} streamed a chunk with malformed choices: {str(choices)[:200]!r}")
        return None
    return choices[0]


def _piece(choice: Mapping[str, Any]) -> tuple[str, str | None]:
    """A streamed choice's ``(text piece, finish reason)`` (chat deltas and completions alike)."""
    delta = choice.get("delta")
    piece = (delta or {}).get("content") if "delta" in choice else choice.get("text")
    return (piece if isinstance(piece, str) else ""), choice.get("finish_reason")


def _merge_calls(calls: dict[int, dict[str, Any]], choice: Mapping[str, Any], url: str) -> None:
    """Add a chunk's tool-call deltas to ``calls``: the id and name once, the arguments piece by piece."""
    for i, delta in enumerate((choice.get("delta") or {}).get("tool_calls") or []):
        if not isinstance(delta, Mapping):
            raise ModelUnavailable(f"{url} streamed a malformed tool call: {str(delta)[:200]!r}")
        call = calls.setdefault(int(delta.get("index", i)), {"function": {"arguments": ""}})
        if delta.get("id"):
            call["id"] = delta["id"]
        function = delta.get("function") or {}
        if function.get("name"):
            call["function"]["name"] = function["name"]
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            call["function"]["arguments"] += arguments
        elif arguments is not None:  # some servers send the arguments as an object, whole
            call["function"]["arguments"] = arguments


def load_openai(value: Any) -> OpenAIModel:
    """Loader for ``{openai: {base_url, model, api_key_env[, timeout]}}``."""
    if isinstance(value, str):
        value = {"base_url": value}
    if not isinstance(value, Mapping):
        raise UsageError(f"{{openai: ...}} needs a mapping with base_url, model, api_key_env; got {value!r}")
    unknown = sorted(set(value) - set(_SPEC_KEYS))
    if unknown:
        raise UsageError(
            f"unknown key(s) {', '.join(unknown)} in {{openai: ...}}; allowed: {', '.join(_SPEC_KEYS)}"
        )
    if "base_url" not in value:
        raise UsageError("{openai: ...} needs base_url (e.g. http://127.0.0.1:8000/v1)")
    timeout = value.get("timeout", 120.0)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
        raise UsageError(f"openai timeout must be a positive number of seconds, got {timeout!r}")
    return OpenAIModel(value["base_url"], value.get("model"), value.get("api_key_env"), timeout=timeout)


register_backend("openai", load_openai)
