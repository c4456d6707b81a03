"""``workbench serve-model MODEL``: an OpenAI-compatible HTTP endpoint for a local model.

    workbench serve-model default --port 8000          # the built-in tiny model, loopback only
    WORKBENCH_API_KEY=$(openssl rand -hex 24) workbench serve-model ./my-checkpoint --address 0.0.0.0

Routes: ``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/completions`` (both
with ``"stream": true`` as server-sent events), ``GET /health``. ``response_format`` of
type ``json_schema`` (or ``json_object``) becomes a token-mask ``Constraint`` built with
llguidance, so the text is valid for the schema by construction (unless ``max_tokens``
cuts it: ``finish_reason`` is then ``length``). A request's ``rails`` (an extension, rail
expressions over the answer called ``output``) narrow that mask to answers that keep them
(``workbench.decoding.request_rails``; docs/serving.md).

Access: with an API key (``--api-key`` or ``WORKBENCH_API_KEY``) every route, ``/health``
included, wants ``Authorization: Bearer KEY`` and answers 401 otherwise. Binds 127.0.0.1
unless ``--address`` says otherwise; any other address without a key is refused at start-up
(``UsageError``, exit code 2).

Limits (``ServerLimits``, one flag each): a body over ``max_body_bytes`` -> 413, a prompt
over ``max_prompt_tokens`` (counted after the chat template) or ``max_tokens`` over its
bound -> 400; at most ``queue_size`` requests are with the model at once (generating or
waiting for a batch) and the next one gets 429 with ``Retry-After``.

Batching: every admitted request calls the model's ``generate``/``stream`` at once; the
local runtime puts concurrent calls into one batch. Errors: a body that is not JSON, a bad
field, a prompt longer than the context -> HTTP 400 with OpenAI's ``{"error": {...}}`` body;
an unknown model -> 404; a model failure -> 503/500. The process stays up.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from workbench.errors import ModelUnavailable, UsageError, WorkbenchError
from workbench.models.base import Constraint, Generation, GenerationRequest, Model, TokenEvent
from workbench.models.json_schema import JsonSchemaConstraint
from workbench.models.tool_calls import tool_choice
from workbench.netsafety import bearer_matches, read_body, refuse_open_bind

__all__ = [
    "JsonSchemaConstraint",
    "RequestError",
    "ServerLimits",
    "create_app",
    "load_served_model",
    "register",
    "running_server",
    "serve",
]

log = logging.getLogger("workbench.serve_model")

_ROLES = {"system", "user", "assistant", "tool", "developer"}
_FINISH = {"constraint": "stop", "stop": "stop", "length": "length", "tool_calls": "tool_calls"}
DEFAULT_MAX_TOKENS = 256
API_KEY_ENV = "WORKBENCH_API_KEY"
RETRY_AFTER_S = 1  # what a 429 tells the client to wait: about one batch of the local runtime


@dataclass(frozen=True)
class ServerLimits:
    """What one server accepts.

    ``serve-model`` sets each from its flag: ``--max-body-bytes``, ``--max-prompt-tokens``,
    ``--max-tokens-limit``, ``--queue-size``.
    """

    max_body_bytes: int = 1024 * 1024  # a request body; larger -> 413
    max_prompt_tokens: int = 16384  # prompt tokens after the chat template; more -> 400
    max_tokens: int = 4096  # the largest max_tokens a request may ask for; more -> 400
    queue_size: int = 64  # requests with the model at once; one more -> 429

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_prompt_tokens", "max_tokens", "queue_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                flag = "--" + name.replace("_", "-") + ("-limit" if name == "max_tokens" else "")
                raise UsageError(f"{flag} must be a whole number of at least 1, got {value!r}")


class RequestError(Exception):
    """A request the server refuses; becomes an OpenAI-style error body with ``status``."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None,
                 code: str | None = None, kind: str = "invalid_request_error",
                 headers: dict[str, str] | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.message, self.status, self.param, self.code, self.kind = message, status, param, code, kind
        self.headers = headers

    def response(self) -> JSONResponse:
        """The error as OpenAI clients expect it."""
        body = {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


# ---- request parsing --------------------------------------------------------------------


def _number(body: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
        raise RequestError(f"{key} must be a number between {low:g} and {high:g}, got {value!r}", param=key)
    return float(value)


def _integer(body: dict[str, Any], key: str, default: int | None, low: int) -> int | None:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise RequestError(f"{key} must be an integer >= {low}, got {value!r}", param=key)
    return value


def _stop(body: dict[str, Any]) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,) if stop else ()
    if isinstance(stop, list) and all(isinstance(s, str) and s for s in stop) and len(stop) <= 16:
        return tuple(stop)
    raise RequestError("stop must be a non-empty string or a list of up to 16 of them", param="stop")


def _schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema a ``response_format`` asks for, or None for free text."""
    fmt = body.get("response_format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
        raise RequestError(
            "response_format.type must be text, json_object or json_schema", param="response_format"
        )
    if fmt["type"] == "text":
        return None
    if fmt["type"] == "json_object":
        return {"type": "object"}
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
        raise RequestError(
            "response_format.json_schema must be an object with a `schema` object", param="response_format"
        )
    return spec.get("schema", {"type": "object"})


def _rails(body: dict[str, Any]) -> list[str]:
    """The ``rails`` the answer must keep (an extension: OpenAI clients send it in ``extra_body``)."""
    rails = body.get("rails")
    if rails is None:
        return []
    if not isinstance(rails, list) or not all(isinstance(r, str) and r.strip() for r in rails):
        raise RequestError("rails must be a list of rail expressions (strings)", param="rails")
    fmt = body.get("response_format")
    if rails and not (isinstance(fmt, dict) and fmt.get("type") == "json_schema"):
        raise RequestError(
            "rails need a response_format of type json_schema: they read the answer as `output`",
            param="rails",
        )
    return rails


def _max_tokens(body: dict[str, Any], limit: int) -> int:
    """The token budget asked for (``max_tokens`` wins over ``max_completion_tokens``), within ``limit``."""
    given = {key: _integer(body, key, None, 0) for key in ("max_completion_tokens", "max_tokens")}
    key = "max_tokens" if given["max_tokens"] is not None else "max_completion_tokens"
    value = given[key]
    if value is None:
        return min(DEFAULT_MAX_TOKENS, limit)
    if value > limit:
        message = f"{key} is {value}, over this server's limit of {limit} (serve-model --max-tokens-limit)"
        raise RequestError(message, param=key)
    return value


def _logprobs(body: dict[str, Any], chat: bool) -> tuple[bool, int]:
    """(per-token logprobs wanted, how many most likely tokens per step): chat takes
    ``logprobs: true`` with ``top_logprobs: 0-20``, completions ``logprobs: 0-5``."""
    value = body.get("logprobs")
    if chat:
        if value is not None and not isinstance(value, bool):
            raise RequestError("logprobs must be true or false", param="logprobs")
        top = _integer(body, "top_logprobs", 0, 0) or 0
        if top > 20:
            raise RequestError("top_logprobs must be between 0 and 20", param="top_logprobs")
        if top and not value:
            raise RequestError("top_logprobs needs logprobs: true", param="top_logprobs")
        return bool(value), top
    if value is None:
        return False, 0
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 5:
        raise RequestError("logprobs must be an integer between 0 and 5", param="logprobs")
    return True, value


def _tools(body: dict[str, Any]) -> dict[str, Any]:
    """``tools``, ``tool_choice`` and ``parallel_tool_calls``, checked (chat only)."""
    tools, choice = body.get("tools"), body.get("tool_choice")
    parallel = body.get("parallel_tool_calls", True)
    if not isinstance(parallel, bool):
        raise RequestError("parallel_tool_calls must be true or false", param="parallel_tool_calls")
    if not tools:
        if choice not in (None, "none", "auto"):
            raise RequestError("tool_choice needs tools", param="tool_choice")
        return {"tools": None, "tool_choice": None, "parallel_tool_calls": parallel}
    try:
        tool_choice(tools, choice, parallel)
    except UsageError as exc:
        raise RequestError(str(exc), param="tool_choice" if "tool_choice" in str(exc) else "tools") from None
    return {"tools": tools, "tool_choice": choice or "auto", "parallel_tool_calls": parallel}


def _sampling(body: dict[str, Any], max_tokens_limit: int, chat: bool = True) -> dict[str, Any]:
    """The sampling and stopping fields shared by both endpoints."""
    n = _integer(body, "n", 1, 1) or 1
    if n > 16:
        raise RequestError("n must be between 1 and 16", param="n")
    for unsupported in ("echo", "suffix", "functions"):
        if body.get(unsupported):
            raise RequestError(f"{unsupported} is not supported by this server", param=unsupported)
    if not chat and body.get("tools"):
        raise RequestError("tools are offered on /v1/chat/completions", param="tools")
    logprobs, top_logprobs = _logprobs(body, chat)
    if body.get("best_of") not in (None, 1):
        raise RequestError("best_of is not supported by this server", param="best_of")
    max_tokens = _max_tokens(body, max_tokens_limit)
    top_k = body.get("top_k")
    if top_k == -1:  # vLLM's spelling of "no top-k"
        top_k = 0
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise RequestError(f"seed must be an integer, got {seed!r}", param="seed")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise RequestError("stream_options must be an object", param="stream_options")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError("stream must be true or false", param="stream")
    if stream and (n > 1 or logprobs):
        what = "n > 1" if n > 1 else "logprobs"
        raise RequestError(
            f"{what} is not supported with stream: true; ask without streaming", param="stream"
        )
    return {
        "n": n,
        "logprobs": logprobs,
        "top_logprobs": top_logprobs,
        **(_tools(body) if chat else {"tools": None, "tool_choice": None, "parallel_tool_calls": True}),
        "max_tokens": max_tokens,
        "temperature": _number(body, "temperature", 1.0, 0.0, 2.0),
        "top_p": _number(body, "top_p", 1.0, 0.0, 1.0) or 1.0,
        "top_k": _integer({"top_k": top_k}, "top_k", 0, 0),
        "seed": seed,
        "stop": _stop(body),
        "response_schema": _schema(body),
        "rails": _rails(body),
        "stream": stream,
        "include_usage": bool(stream_options.get("include_usage")),
    }


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Chat messages as role/content strings (text parts of multi-part content joined), with an
    assistant's ``tool_calls`` and a tool message's ``tool_call_id`` kept."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list", param="messages")
    out = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise RequestError(f"{where} needs a role, one of {', '.join(sorted(_ROLES))}", param=where)
        content = message.get("content")
        if content is None:
            content = ""
        elif isinstance(content, list):
            if not all(
                isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                for p in content
            ):
                raise RequestError(f"{where}.content: only text parts are supported", param=where)
            content = "".join(p["text"] for p in content)
        elif not isinstance(content, str):
            raise RequestError(f"{where}.content must be a string or a list of text parts", param=where)
        role = "system" if message["role"] == "developer" else message["role"]
        entry: dict[str, Any] = {"role": role, "content": content}
        if role == "assistant" and message.get("tool_calls"):
            entry["tool_calls"] = _calls(message["tool_calls"], where)
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str):
                raise RequestError(f"{where} is a tool message without a tool_call_id", param=where)
            entry["tool_call_id"] = call_id
        out.append(entry)
    return out


def _calls(calls: Any, where: str) -> list[dict[str, Any]]:
    """An assistant message's ``tool_calls``, checked: each a function with a name and JSON arguments."""
    out = []
    for j, call in enumerate(calls if isinstance(calls, list) else [None]):
        function = call.get("function") if isinstance(call, dict) else None
        if not (isinstance(function, dict) and isinstance(function.get("name"), str)
                and isinstance(function.get("arguments", "{}"), str)):  # fmt: skip
            raise RequestError(
                f"{where}.tool_calls[{j}] must be {{id, type: function, function: {{name, arguments}}}}",
                param=where,
            )
        arguments = function.get("arguments", "{}")
        out.append({"id": str(call.get("id", "")), "type": "function",
                    "function": {"name": function["name"], "arguments": arguments}})  # fmt: skip
    return out


def _prompts(body: dict[str, Any]) -> list[str]:
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return list(prompt)
    raise RequestError(
        "prompt must be a string or a non-empty list of strings (token ids are not accepted)", param="prompt"
    )


# ---- the app ----------------------------------------------------------------------------


class _Queue:
    """At most ``size`` requests with the model at once; the one after is turned away (429).

    Turning away rather than waiting keeps a flood from piling up in memory and tells the
    client when to come back. Used from the event loop only, so a counter needs no lock.
    """

    def __init__(self, size: int) -> None:
        self.size, self.busy = size, 0

    def enter(self) -> Callable[[], None]:
        """Take a place or raise the 429; returns the call that gives the place back (idempotent)."""
        if self.busy >= self.size:
            raise RequestError(
                f"the server is busy: {self.busy} requests are already with the model, its queue "
                f"holds {self.size} (serve-model --queue-size); retry after {RETRY_AFTER_S} s",
                status=429,
                kind="requests",
                code="rate_limit_exceeded",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        self.busy += 1
        given_back = False

        def leave() -> None:
            nonlocal given_back
            if not given_back:
                given_back = True
                self.busy -= 1

        return leave


class _QueuedStream(StreamingResponse):
    """A streamed answer that gives its queue place back when sending ends, however it ends."""

    def __init__(self, content: AsyncIterator[str], leave: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._leave = leave

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._leave()


class _Handlers:
    """Route handlers around one model."""

    def __init__(self, model: Model, model_id: str, limits: ServerLimits) -> None:
        self.model = model
        self.model_id = model_id
        self.limits = limits
        self.queue = _Queue(limits.queue_size)
        self.created = int(time.time())

    async def _body(self, request: Request) -> dict[str, Any]:
        limit = self.limits.max_body_bytes
        raw = await read_body(request, limit)
        if raw is None:
            declared = request.headers.get("content-length")
            size = f"{declared} bytes" if declared and declared.isdigit() else "longer"
            raise RequestError(
                f"the request body is {size}, over this server's limit of {limit} bytes "
                "(serve-model --max-body-bytes)",
                status=413,
            )
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestError(f"the request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise RequestError("the request body must be a JSON object")
        name = body.get("model")
        if name is not None and name != self.model_id:
            message = f"the model {name!r} does not exist here; this server serves {self.model_id!r}"
            raise RequestError(message, status=404, param="model", code="model_not_found")
        return body

    def _request(self, fields: dict[str, Any], **what: Any) -> GenerationRequest:
        limit = self.limits.max_prompt_tokens
        length = self._prompt_tokens(GenerationRequest(**what))
        if length is not None and length > limit:
            param = "messages" if "messages" in what else "prompt"
            raise RequestError(
                f"the prompt is {length} tokens{' after the chat template' if param == 'messages' else ''}, "
                f"over this server's limit of {limit} (serve-model --max-prompt-tokens)",
                param=param,
                code="prompt_too_long",
            )
        schema = fields["response_schema"]
        constraint: Constraint | None = None
        if schema is not None:
            tokenizer = getattr(self.model, "tokenizer", None)
            if tokenizer is None:
                raise RequestError("this model cannot be constrained: response_format is not supported")
            try:
                constraint = JsonSchemaConstraint(schema, tokenizer)
            except UsageError as exc:
                raise RequestError(str(exc), param="response_format") from None
            if fields["rails"]:
                # imported here: z3 is not loaded at every `workbench` start (the CLI imports this module)
                from workbench.decoding import request_rails

                try:  # the rails narrow the schema's mask
                    constraint = request_rails(schema, fields["rails"]).constrain(constraint)
                except WorkbenchError as exc:
                    raise RequestError(str(exc), param="rails") from None
        keys = ("max_tokens", "temperature", "top_p", "top_k", "seed", "stop", "logprobs", "top_logprobs",
                "tools", "tool_choice", "parallel_tool_calls")  # fmt: skip
        sampling = {k: fields[k] for k in keys}
        if fields["tools"] and fields["tool_choice"] != "none":
            # the calls' grammar (and the answer's schema inside it) is built by the model
            if fields["rails"]:
                raise RequestError("rails are not supported together with tools", param="rails")
            constraint = None
        return GenerationRequest(**what, **sampling, response_schema=schema, constraint=constraint)

    def _copies(self, request: GenerationRequest, n: int) -> list[GenerationRequest]:
        """``n`` requests for ``n`` choices; seeded ones get seeds seed, seed+1, ... (reproducible)."""
        if n == 1:
            return [request]
        return [
            dataclasses.replace(request, seed=None if request.seed is None else request.seed + i)
            for i in range(n)
        ]

    def _prompt_tokens(self, request: GenerationRequest) -> int | None:
        """Prompt length in tokens, as the local runtime counts it; None if this model cannot say."""
        tokenizer = getattr(self.model, "tokenizer", None)
        if tokenizer is None:
            return None
        try:
            if request.messages is not None:
                text = tokenizer.apply_chat_template(
                    request.messages, add_generation_prompt=True, tools=request.tools
                )
                return len(tokenizer.encode(text, add_special_tokens=False))
            return len(tokenizer.encode(request.prompt))
        except Exception:  # a model without our tokenizer: usage without the prompt count
            return None

    async def models(self, request: Request) -> Response:
        entry = {"id": self.model_id, "object": "model", "created": self.created, "owned_by": "workbench"}
        return JSONResponse({"object": "list", "data": [entry]})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": self.model_id})

    async def chat(self, request: Request) -> Response:
        body = await self._body(request)
        fields = _sampling(body, self.limits.max_tokens)
        gen_request = self._request(fields, messages=_messages(body))
        ident = f"chatcmpl-{uuid.uuid4().hex}"
        if fields["stream"] and fields["tools"] and fields["tool_choice"] != "none":
            # calls are read from the whole answer: generated first, then sent as chunks
            [gen] = await self._generate([gen_request])
            return self._stream_calls(ident, gen, fields["include_usage"])
        if fields["stream"]:
            return await self._stream(gen_request, ident, "chat.completion.chunk", fields["include_usage"])
        gens = await self._generate(self._copies(gen_request, fields["n"]))
        choices = [self._choice(i, g, chat=True) for i, g in enumerate(gens)]
        return JSONResponse(self._envelope(ident, "chat.completion", choices, gens))

    async def completions(self, request: Request) -> Response:
        body = await self._body(request)
        fields = _sampling(body, self.limits.max_tokens, chat=False)
        prompts = _prompts(body)
        requests = [self._request(fields, prompt=p) for p in prompts]
        ident = f"cmpl-{uuid.uuid4().hex}"
        if fields["stream"]:
            if len(requests) != 1:
                raise RequestError("streaming takes one prompt per request", param="prompt")
            return await self._stream(requests[0], ident, "text_completion", fields["include_usage"])
        gens = await self._generate([c for r in requests for c in self._copies(r, fields["n"])])
        choices = [self._choice(i, g, chat=False) for i, g in enumerate(gens)]
        return JSONResponse(self._envelope(ident, "text_completion", choices, gens))

    def _choice(self, index: int, gen: Generation, chat: bool) -> dict[str, Any]:
        """One choice of the response body: text or message with its calls, and logprobs if asked."""
        choice = _choice(index, gen, chat)
        if gen.logprobs is not None:
            choice["logprobs"] = self._logprobs(gen, chat)
        return choice

    def _token(self, token_id: int) -> str:
        tokenizer = getattr(self.model, "tokenizer", None)
        return (
            tokenizer.decode([token_id], skip_special_tokens=False)
            if tokenizer is not None
            else str(token_id)
        )

    def _logprobs(self, gen: Generation, chat: bool) -> dict[str, Any]:
        """OpenAI's logprobs object: per token (chat: ``content`` entries; completions: parallel lists)."""
        tokens = [self._token(t) for t in gen.token_ids]
        logprobs = gen.logprobs or []
        tops = gen.top_logprobs or [[] for _ in tokens]
        if chat:

            def entry(token: str, logprob: float) -> dict[str, Any]:
                return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}

            content = [
                {**entry(tok, lp), "top_logprobs": [entry(self._token(i), v) for i, v in top]}
                for tok, lp, top in zip(tokens, logprobs, tops, strict=False)
            ]
            return {"content": content, "refusal": None}
        offsets, at = [], 0
        for tok in tokens:
            offsets.append(at)
            at += len(tok)
        top_maps = [{self._token(i): v for i, v in top} for top in tops] if gen.top_logprobs else None
        return {
            "tokens": tokens,
            "token_logprobs": logprobs,
            "top_logprobs": top_maps,
            "text_offset": offsets,
        }

    def _stream_calls(self, ident: str, gen: Generation, include_usage: bool) -> Response:
        """A finished answer with tools as server-sent chunks: role, content, each call, finish."""
        created = int(time.time())

        def event(delta: dict[str, Any], finish: str | None, **extra: Any) -> str:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            data = {"id": ident, "object": "chat.completion.chunk", "created": created,
                    "model": self.model_id, "choices": [choice], **extra}  # fmt: skip
            return f"data: {json.dumps(data)}\n\n"

        chunks = [event({"role": "assistant", "content": ""}, None)]
        if gen.text:
            chunks.append(event({"content": gen.text}, None))
        for i, call in enumerate(gen.tool_calls):
            function = {"name": call.name, "arguments": call.arguments}
            chunks.append(event({"tool_calls": [{"index": i, "id": call.id, "type": "function",
                                                 "function": function}]}, None))  # fmt: skip
        chunks.append(event({}, _FINISH.get(gen.finish_reason, gen.finish_reason)))
        if include_usage:
            usage = {"prompt_tokens": gen.input_tokens, "completion_tokens": gen.output_tokens,
                     "total_tokens": gen.input_tokens + gen.output_tokens}  # fmt: skip
            data = {"id": ident, "object": "chat.completion.chunk", "created": created,
                    "model": self.model_id, "choices": [], "usage": usage}  # fmt: skip
            chunks.append(f"data: {json.dumps(data)}\n\n")
        chunks.append("data: [DONE]\n\n")

        async def body() -> AsyncIterator[str]:
            for chunk in chunks:
                yield chunk

        return StreamingResponse(
            body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    async def _generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        """The model's answers, holding one place in the queue while they are made."""
        leave = self.queue.enter()
        try:
            return await _run(self.model.generate(requests))
        finally:
            leave()

    def _envelope(self, ident: str, kind: str, choices: list[dict[str, Any]], gens: list[Generation]) -> dict:
        prompt_tokens = sum(g.input_tokens for g in gens)
        completion_tokens = sum(g.output_tokens for g in gens)
        return {
            "id": ident,
            "object": kind,
            "created": int(time.time()),
            "model": self.model_id,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    async def _stream(
        self, gen_request: GenerationRequest, ident: str, kind: str, include_usage: bool
    ) -> Response:
        leave = self.queue.enter()  # given back by _QueuedStream once the stream has been sent
        # Wait for the first event before answering, so that a refused request (prompt too
        # long, bad template) is still an HTTP 4xx rather than an error inside a 200 stream.
        try:
            events = self.model.stream(gen_request)
            first = await _run(events.__anext__())
        except StopAsyncIteration:
            first = TokenEvent(-1, "", finish_reason="stop")
        except BaseException:
            leave()
            raise
        chat = kind == "chat.completion.chunk"
        created = int(time.time())

        def chunk(piece: str | None, finish: str | None) -> str:
            if chat:
                delta: dict[str, Any] = {} if piece is None else {"content": piece}
                choice: dict[str, Any] = {
                    "index": 0,
                    "delta": delta,
                    "logprobs": None,
                    "finish_reason": finish,
                }
            else:
                choice = {"index": 0, "text": piece or "", "logprobs": None, "finish_reason": finish}
            data = {
                "id": ident,
                "object": kind,
                "created": created,
                "model": self.model_id,
                "choices": [choice],
            }
            return f"data: {json.dumps(data)}\n\n"

        async def body() -> AsyncIterator[str]:
            count = 0
            try:
                if chat:
                    role = {"role": "assistant", "content": ""}
                    yield chunk(None, None).replace('"delta": {}', f'"delta": {json.dumps(role)}', 1)
                event: TokenEvent | None = first
                while event is not None:
                    count += 1 if event.token_id >= 0 or event.text else 0
                    if event.text:
                        yield chunk(event.text, None)
                    if event.finish_reason is not None:
                        yield chunk(
                            None if chat else "", _FINISH.get(event.finish_reason, event.finish_reason)
                        )
                        break
                    try:
                        event = await events.__anext__()
                    except StopAsyncIteration:
                        yield chunk(None if chat else "", "stop")
                        break
            except Exception as exc:  # headers are sent: report in-band, as OpenAI servers do
                log.exception("streaming failed")
                yield f"data: {json.dumps({'error': {'message': str(exc), 'type': 'server_error'}})}\n\n"
            finally:
                if isinstance(events, AsyncGenerator):  # a plain async iterator has nothing to close
                    await events.aclose()
            if include_usage:
                prompt = self._prompt_tokens(gen_request)
                usage = {"prompt_tokens": prompt, "completion_tokens": count,
                         "total_tokens": None if prompt is None else prompt + count}  # fmt: skip
                data = {
                    "id": ident,
                    "object": kind,
                    "created": created,
                    "model": self.model_id,
                    "choices": [],
                }
                yield f"data: {json.dumps({**data, 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"

        return _QueuedStream(
            body(), leave, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )


def _choice(index: int, gen: Generation, chat: bool) -> dict[str, Any]:
    out: dict[str, Any] = (
        {"message": {"role": "assistant", "content": gen.text}} if chat else {"text": gen.text}
    )
    if chat and gen.tool_calls:
        out["message"]["content"] = gen.text or None
        out["message"]["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in gen.tool_calls
        ]
    return {
        "index": index,
        **out,
        "logprobs": None,
        "finish_reason": _FINISH.get(gen.finish_reason, gen.finish_reason),
    }


async def _run(awaitable: Any) -> Any:
    """Await a model call, turning our errors into HTTP errors."""
    try:
        return await awaitable
    except RequestError:
        raise
    except UsageError as exc:  # includes a prompt longer than the context
        code = "context_length_exceeded" if type(exc).__name__ == "ContextLengthError" else None
        raise RequestError(str(exc), code=code) from None
    except ModelUnavailable as exc:
        raise RequestError(str(exc), status=503, kind="server_error") from None
    except WorkbenchError as exc:
        raise RequestError(str(exc), status=500, kind="server_error") from None


def _wrap(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except RequestError as exc:
            return exc.response()
        except Exception as exc:  # a bug: answer 500 and keep serving
            log.exception("request failed")
            return RequestError(
                f"internal error: {type(exc).__name__}: {exc}", status=500, kind="server_error"
            ).response()

    return endpoint


class _BearerAuth:
    """ASGI middleware: every HTTP request must carry ``Authorization: Bearer <key>``, else 401.

    It wraps the router, so unknown routes, ``/v1/models`` and ``/health`` are covered too.
    """

    def __init__(self, app: Any, key: str) -> None:
        self.app, self.key = app, key

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = Headers(scope=scope).get("authorization")
            if not bearer_matches(given, self.key):
                await _unauthorized(given is not None)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _unauthorized(wrong: bool) -> Response:
    """OpenAI's 401 (never echoing what was sent) with the challenge RFC 6750 asks for."""
    if wrong:
        message, challenge = "the API key is wrong", 'Bearer error="invalid_token"'
    else:
        message, challenge = "no API key: send `Authorization: Bearer <key>`", "Bearer"
    error = RequestError(message, status=401, code="invalid_api_key", headers={"WWW-Authenticate": challenge})
    return error.response()


def create_app(model: Model, model_id: str | None = None, *, api_key: str | None = None,
               limits: ServerLimits | None = None) -> Starlette:  # fmt: skip
    """The ASGI app serving ``model`` under ``model_id`` (default: the model's name).

    ``api_key``: when set, required on every route as a bearer token. ``limits``: body,
    prompt, ``max_tokens`` and queue bounds (default ``ServerLimits()``).
    """
    handlers = _Handlers(model, model_id or model.name, limits or ServerLimits())

    async def not_found(request: Request, exc: Exception) -> Response:
        return RequestError(f"no route {request.method} {request.url.path}", status=404).response()

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return RequestError(
            f"method {request.method} is not allowed on {request.url.path}", status=405
        ).response()

    routes = [
        Route("/v1/models", _wrap(handlers.models), methods=["GET"]),
        Route("/v1/chat/completions", _wrap(handlers.chat), methods=["POST"]),
        Route("/v1/completions", _wrap(handlers.completions), methods=["POST"]),
        Route("/health", _wrap(handlers.health), methods=["GET"]),
    ]
    middleware = [Middleware(_BearerAuth, key=api_key)] if api_key else []
    return Starlette(
        routes=routes, middleware=middleware, exception_handlers={404: not_found, 405: not_allowed}
    )


def load_served_model(spec: str) -> Model:
    """``default`` -> the built-in tiny model; a directory -> that checkpoint."""
    from workbench.models.registry import resolve_model

    if spec == "default":
        return resolve_model("default")
    if Path(spec).expanduser().is_dir():
        return resolve_model({"local": str(Path(spec).expanduser())})
    raise UsageError(f"serve-model takes `default` or a checkpoint directory; {spec!r} is neither")


def _bind(address: str, port: int) -> socket.socket:
    """A listening socket, or a UsageError naming the address (port taken, bad address)."""
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
    except OSError as exc:
        raise UsageError(f"cannot listen on {address}:{port}: {exc.strerror or exc}") from None
    return sock


def _refuse_open_bind(address: str, api_key: str | None) -> None:
    refuse_open_bind(
        address,
        api_key,
        service="serve-model",
        remedy=f"a key with --api-key KEY or, better (`ps` does not show it), {API_KEY_ENV}=KEY",
        exposure="use the model and keep it busy",
    )


def serve(spec: str, *, address: str = "127.0.0.1", port: int = 8000, name: str | None = None,
          log_level: str = "info", api_key: str | None = None,
          limits: ServerLimits | None = None) -> None:  # fmt: skip
    """Load the model and serve it until interrupted (blocking).

    A non-loopback ``address`` without ``api_key`` is refused (``UsageError``) before anything binds.
    """
    import uvicorn

    _refuse_open_bind(address, api_key)
    sock = _bind(address, port)  # before the model loads: a taken port fails fast
    model = load_served_model(spec)
    model_id = name or ("default" if spec == "default" else Path(spec).expanduser().resolve().name)
    access = "an API key required" if api_key else "no API key, loopback only"
    log.info("serving %r at http://%s:%d/v1 (%s)", model_id, address, port, access)
    app = create_app(model, model_id, api_key=api_key, limits=limits)
    uvicorn.Server(uvicorn.Config(app, log_level=log_level)).run(sockets=[sock])


@contextmanager
def running_server(model: Model, model_id: str | None = None, *, address: str = "127.0.0.1",
                   port: int = 0, api_key: str | None = None,
                   limits: ServerLimits | None = None) -> Iterator[str]:  # fmt: skip
    """Serve ``model`` from a background thread; yields the base URL (``http://host:port/v1``).

    For tests and notebooks: ``port=0`` picks a free port. The server stops when the block
    ends. ``api_key`` and ``limits`` as for ``create_app``; the same address rule as ``serve``.
    """
    import uvicorn

    _refuse_open_bind(address, api_key)
    sock = _bind(address, port)
    host, bound = sock.getsockname()[:2]
    app = create_app(model, model_id, api_key=api_key, limits=limits)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="serve-model")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ModelUnavailable(f"the model server on {address}:{bound} did not start")
        time.sleep(0.02)
    try:
        yield f"http://{host if ':' not in host else f'[{host}]'}:{bound}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _api_key(flag: str | None) -> str | None:
    """The key to require: ``--api-key`` if given, else ``$WORKBENCH_API_KEY`` if set and not empty."""
    if flag is None:
        where, key = API_KEY_ENV, os.environ.get(API_KEY_ENV) or None
    else:
        where, key = "--api-key", flag
    if key is not None and not (key.isascii() and key.isprintable() and key and " " not in key):
        # an Authorization header carries no other key: one like this could never be sent
        raise UsageError(
            f"{where} must be a non-empty key of printable ASCII without spaces; "
            "leave it out to serve without one"
        )
    return key


def _command(args: argparse.Namespace) -> int:
    api_key = _api_key(args.api_key)
    limits = ServerLimits(
        max_body_bytes=args.max_body_bytes,
        max_prompt_tokens=args.max_prompt_tokens,
        max_tokens=args.max_tokens_limit,
        queue_size=args.queue_size,
    )
    serve(args.model, address=args.address, port=args.port, name=args.name, log_level=args.log_level,
          api_key=api_key, limits=limits)  # fmt: skip
    return 0


def register(subparsers: Any) -> None:
    """Add ``serve-model`` to the CLI's subparsers; its ``handler(args) -> exit code`` serves."""
    parser = subparsers.add_parser(
        "serve-model",
        help="serve a local model over an OpenAI-compatible HTTP API",
        description="Serve `default` (the built-in tiny model) or a Hugging Face-format checkpoint "
        "directory at /v1/chat/completions, /v1/completions and /v1/models. Any address but "
        f"loopback needs an API key (--api-key or {API_KEY_ENV}).",
    )
    defaults = ServerLimits()
    parser.add_argument("model", help="`default` or a checkpoint directory")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument(
        "--address",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1, loopback); any other needs an API key",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        metavar="KEY",
        help=f"require `Authorization: Bearer KEY` on every route (default: ${API_KEY_ENV}; "
        "the variable keeps the key out of `ps`)",
    )
    parser.add_argument(
        "--name", default=None, help="model id clients use (default: `default` or the folder name)"
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=defaults.max_body_bytes,
        metavar="N",
        help=f"largest request body; larger gets 413 (default {defaults.max_body_bytes})",
    )
    parser.add_argument(
        "--max-prompt-tokens",
        type=int,
        default=defaults.max_prompt_tokens,
        metavar="N",
        help="longest prompt in tokens, after the chat template; longer gets 400 "
        f"(default {defaults.max_prompt_tokens})",
    )
    parser.add_argument(
        "--max-tokens-limit",
        type=int,
        default=defaults.max_tokens,
        metavar="N",
        help=f"largest max_tokens a request may ask for; more gets 400 (default {defaults.max_tokens})",
    )
    parser.add_argument(
        "--queue-size",
        type=int,
        default=defaults.queue_size,
        metavar="N",
        help=f"requests with the model at once; the next gets 429 (default {defaults.queue_size})",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    parser.set_defaults(handler=_command)
