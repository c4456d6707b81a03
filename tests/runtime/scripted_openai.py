"""A scripted OpenAI-compatible chat server on loopback: fixed replies, every request kept.

A real HTTP server (``http.server`` on a thread), so the agent loop goes through the real
OpenAI client, JSON on the wire included. Each POST to ``/v1/chat/completions`` gets the
next scripted reply (as server-sent chunks when it asks to stream); the request bodies are
kept in ``requests`` and their headers in ``headers`` for assertions.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_ids = itertools.count(1)


def calls(*pairs: tuple[str, Any], ids: list[str] | None = None) -> dict[str, Any]:
    """A reply asking for tool calls: ``(name, arguments)`` pairs (a dict, or raw JSON text)."""
    tool_calls = [
        {
            "id": ids[i] if ids else f"call_{next(_ids)}",
            "type": "function",
            "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)},
        }
        for i, (name, args) in enumerate(pairs)
    ]
    return _completion({"role": "assistant", "content": None, "tool_calls": tool_calls}, "tool_calls")


def answer(value: Any) -> dict[str, Any]:
    """A final reply: ``value`` as JSON text (or the text itself when it is a str)."""
    text = value if isinstance(value, str) else json.dumps(value)
    return _completion({"role": "assistant", "content": text}, "stop")


def _completion(message: dict[str, Any], finish: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "model": "scripted",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


class ScriptedServer:
    """Serves ``replies`` in order; ``requests`` and ``headers`` hold what each request sent."""

    def __init__(self, replies: list[dict[str, Any]]) -> None:
        self.replies = list(replies)
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    server.headers.append({k.lower(): v for k, v in self.headers.items()})
                    reply = server.replies.pop(0) if server.replies else None
                if reply is None:
                    data, status = b'{"error": {"message": "the script has no more replies"}}', 500
                elif body.get("stream"):
                    self._stream(reply)
                    return
                else:
                    data, status = json.dumps(reply).encode(), 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, reply: dict[str, Any]) -> None:
                """The reply as server-sent chunks, the way other servers send them: text in
                pieces of 3 characters, each call's arguments in two halves, and no usage."""
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for chunk in sse_chunks(reply):
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    @property
    def model(self) -> dict[str, Any]:
        """The model spec that points at this server."""
        return {"openai": {"base_url": self.url, "model": "scripted", "timeout": 10}}

    def tool_messages(self, request: int) -> list[dict[str, Any]]:
        """The ``tool`` messages of request number ``request`` that answer the last turn's calls."""
        messages = self.requests[request]["messages"]
        tail = list(itertools.takewhile(lambda m: m["role"] == "tool", reversed(messages)))
        return list(reversed(tail))


def sse_chunks(reply: dict[str, Any]) -> list[dict[str, Any]]:
    """A scripted completion as ``chat.completion.chunk`` dicts (text in 3-character pieces,
    each call's arguments split in two, the finish reason last, no usage)."""
    choice = reply["choices"][0]
    message = choice["message"]

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": reply["id"], "object": "chat.completion.chunk", "model": reply["model"],
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip

    chunks = [chunk({"role": "assistant", "content": ""})]
    text = message.get("content") or ""
    chunks += [chunk({"content": text[i : i + 3]}) for i in range(0, len(text), 3)]
    for i, call in enumerate(message.get("tool_calls") or []):
        args = call["function"]["arguments"]
        half = len(args) // 2
        first = {"name": call["function"]["name"], "arguments": args[:half]}
        chunks.append(
            chunk({"tool_calls": [{"index": i, "id": call["id"], "type": "function", "function": first}]})
        )
        chunks.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": args[half:]}}]}))
    chunks.append(chunk({}, choice["finish_reason"]))
    return chunks


@contextmanager
def scripted(replies: list[dict[str, Any]]) -> Iterator[ScriptedServer]:
    """A running ``ScriptedServer``, shut down on exit."""
    server = ScriptedServer(replies)
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        thread.join()
