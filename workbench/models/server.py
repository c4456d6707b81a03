"""``workbench serve-model MODEL``: an OpenAI-compatible HTTP endpoint for a local model.

    workbench serve-model default --port 8000          # the built-in tiny model
    workbench serve-model ./my-checkpoint --address 0.0.0.0

Routes: ``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/completions`` (both
with ``"stream": true`` as server-sent events), ``GET /health``. ``response_format`` of
type ``json_schema`` (or ``json_object``) becomes a token-mask ``Constraint`` built with
llguidance, so the text is valid for the schema by construction (unless ``max_tokens``
cuts it: ``finish_reason`` is then ``length``).

Batching: every request calls the model's ``generate``/``stream`` at once; the local
runtime puts concurrent calls into one batch. Errors: a body that is not JSON, a bad field,
a prompt longer than the context -> HTTP 400 with OpenAI's ``{"error": {...}}`` body; an
unknown model -> 404; a model failure -> 503/500. The process stays up. Binds 127.0.0.1 unless
``--address`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from workbench.errors import ModelUnavailable, UsageError, WorkbenchError
from workbench.models.base import Generation, GenerationRequest, Model, TokenEvent
from workbench.models.json_schema import JsonSchemaConstraint

__all__ = [
    "JsonSchemaConstraint",
    "RequestError",
    "create_app",
    "load_served_model",
    "register",
    "running_server",
    "serve",
]

log = logging.getLogger("workbench.serve_model")

_ROLES = {"system", "user", "assistant", "tool", "developer"}
_FINISH = {"constraint": "stop", "stop": "stop", "length": "length"}
DEFAULT_MAX_TOKENS = 256


class RequestError(Exception):
    """A request the server refuses; becomes an OpenAI-style error body with ``status``."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None,
                 code: str | None = None, kind: str = "invalid_request_error") -> None:  # fmt: skip
        super().__init__(message)
        self.message, self.status, self.param, self.code, self.kind = message, status, param, code, kind

    def response(self) -> JSONResponse:
        """The error as OpenAI clients expect it."""
        body = {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status)


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


def _sampling(body: dict[str, Any]) -> dict[str, Any]:
    """The sampling and stopping fields shared by both endpoints."""
    if _integer(body, "n", 1, 1) != 1:
        raise RequestError("this server returns one choice per request: n must be 1", param="n")
    for unsupported in ("logprobs", "top_logprobs", "echo", "suffix", "tools", "functions"):
        if body.get(unsupported):
            raise RequestError(f"{unsupported} is not supported by this server", param=unsupported)
    if body.get("best_of") not in (None, 1):
        raise RequestError("best_of is not supported by this server", param="best_of")
    max_tokens = _integer(body, "max_completion_tokens", None, 0)
    max_tokens = _integer(body, "max_tokens", max_tokens if max_tokens is not None else DEFAULT_MAX_TOKENS, 0)
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
    return {
        "max_tokens": max_tokens,
        "temperature": _number(body, "temperature", 1.0, 0.0, 2.0),
        "top_p": _number(body, "top_p", 1.0, 0.0, 1.0) or 1.0,
        "top_k": _integer({"top_k": top_k}, "top_k", 0, 0),
        "seed": seed,
        "stop": _stop(body),
        "response_schema": _schema(body),
        "stream": stream,
        "include_usage": bool(stream_options.get("include_usage")),
    }


def _messages(body: dict[str, Any]) -> list[dict[str, str]]:
    """Chat messages as role/content strings (text parts of multi-part content joined)."""
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
        out.append({"role": role, "content": content})
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


class _Handlers:
    """Route handlers around one model."""

    def __init__(self, model: Model, model_id: str) -> None:
        self.model = model
        self.model_id = model_id
        self.created = int(time.time())

    async def _body(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
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
        schema = fields["response_schema"]
        constraint = None
        if schema is not None:
            tokenizer = getattr(self.model, "tokenizer", None)
            if tokenizer is None:
                raise RequestError("this model cannot be constrained: response_format is not supported")
            try:
                constraint = JsonSchemaConstraint(schema, tokenizer)
            except UsageError as exc:
                raise RequestError(str(exc), param="response_format") from None
        sampling = {k: fields[k] for k in ("max_tokens", "temperature", "top_p", "top_k", "seed", "stop")}
        return GenerationRequest(**what, **sampling, response_schema=schema, constraint=constraint)

    def _prompt_tokens(self, request: GenerationRequest) -> int | None:
        """Prompt length for a stream's usage chunk (the events do not carry it)."""
        tokenizer = getattr(self.model, "tokenizer", None)
        try:
            if request.messages is not None:
                text = tokenizer.apply_chat_template(request.messages, add_generation_prompt=True)
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
        fields = _sampling(body)
        gen_request = self._request(fields, messages=_messages(body))
        ident = f"chatcmpl-{uuid.uuid4().hex}"
        if fields["stream"]:
            return await self._stream(gen_request, ident, "chat.completion.chunk", fields["include_usage"])
        [gen] = await _run(self.model.generate([gen_request]))
        return JSONResponse(self._envelope(ident, "chat.completion", [_choice(0, gen, chat=True)], [gen]))

    async def completions(self, request: Request) -> Response:
        body = await self._body(request)
        fields = _sampling(body)
        prompts = _prompts(body)
        requests = [self._request(fields, prompt=p) for p in prompts]
        ident = f"cmpl-{uuid.uuid4().hex}"
        if fields["stream"]:
            if len(requests) != 1:
                raise RequestError("streaming takes one prompt per request", param="prompt")
            return await self._stream(requests[0], ident, "text_completion", fields["include_usage"])
        gens = await _run(self.model.generate(requests))
        choices = [_choice(i, g, chat=False) for i, g in enumerate(gens)]
        return JSONResponse(self._envelope(ident, "text_completion", choices, gens))

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
        events = self.model.stream(gen_request)
        # Wait for the first event before answering, so that a refused request (prompt too
        # long, bad template) is still an HTTP 4xx rather than an error inside a 200 stream.
        try:
            first = await _run(events.__anext__())
        except StopAsyncIteration:
            first = TokenEvent(-1, "", finish_reason="stop")
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

        return StreamingResponse(
            body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )


def _choice(index: int, gen: Generation, chat: bool) -> dict[str, Any]:
    out = {"message": {"role": "assistant", "content": gen.text}} if chat else {"text": gen.text}
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


def create_app(model: Model, model_id: str | None = None) -> Starlette:
    """The ASGI app serving ``model`` under ``model_id`` (default: the model's name)."""
    handlers = _Handlers(model, model_id or model.name)

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
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})


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


def serve(spec: str, *, address: str = "127.0.0.1", port: int = 8000, name: str | None = None,
          log_level: str = "info") -> None:  # fmt: skip
    """Load the model and serve it until interrupted (blocking)."""
    import uvicorn

    sock = _bind(address, port)  # before the model loads: a taken port fails fast
    model = load_served_model(spec)
    model_id = name or ("default" if spec == "default" else Path(spec).expanduser().resolve().name)
    if address not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serve-model is listening on %s: anyone who can reach it can use the model", address)
    log.info("serving %r at http://%s:%d/v1", model_id, address, port)
    uvicorn.Server(uvicorn.Config(create_app(model, model_id), log_level=log_level)).run(sockets=[sock])


@contextmanager
def running_server(model: Model, model_id: str | None = None, *, address: str = "127.0.0.1",
                   port: int = 0) -> Iterator[str]:  # fmt: skip
    """Serve ``model`` from a background thread; yields the base URL (``http://host:port/v1``).

    For tests and notebooks: ``port=0`` picks a free port. The server stops when the block ends.
    """
    import uvicorn

    sock = _bind(address, port)
    host, bound = sock.getsockname()[:2]
    server = uvicorn.Server(uvicorn.Config(create_app(model, model_id), log_level="warning", lifespan="off"))
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


def _command(args: argparse.Namespace) -> int:
    serve(args.model, address=args.address, port=args.port, name=args.name, log_level=args.log_level)
    return 0


def register(subparsers: Any) -> None:
    """Add ``serve-model`` to the CLI's subparsers; its ``handler(args) -> exit code`` serves."""
    parser = subparsers.add_parser(
        "serve-model",
        help="serve a local model over an OpenAI-compatible HTTP API",
        description="Serve `default` (the built-in tiny model) or a Hugging Face-format checkpoint "
        "directory at /v1/chat/completions, /v1/completions and /v1/models.",
    )
    parser.add_argument("model", help="`default` or a checkpoint directory")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument(
        "--address", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback)"
    )
    parser.add_argument(
        "--name", default=None, help="model id clients use (default: `default` or the folder name)"
    )
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    parser.set_defaults(handler=_command)
