"""Streaming an llm node's answer as it decodes: the executor's ``on_token`` option.

    Executor(flow, on_token=lambda t: print(t.text, end="", flush=True))

Each model call of an llm node (and each turn of an agent) opens with a ``NodeToken`` whose
``start`` names the call (``"answer"``, ``"attempt 2 (resample)"``, ``"repair"``, ``"turn
3"``) and whose text is empty; the text pieces follow in order, and joined they are the
call's answer as decoded, the ``gen_ai.completion`` of the node's span. A listener that
shows text resets it at each ``start``: a resample, a repair or a retry writes a new answer.

The callback always runs on the run's event loop, so it may touch the loop's objects; it
must be cheap, and an exception it raises is logged, never failing the run. Pieces the local
runtime decodes on its worker thread are queued there and handed over on the loop in order,
in batches at most ``HOP_S`` apart (waking the loop for every token slowed the tiny model's
decoding by 15-25% on a busy two-core machine), and all of them before the node's answer
is used. Without ``on_token`` no request carries a listener, and decoding costs what it did.

An answer that was not decoded piece by piece (a replayed one taken from the recording, or
one from a backend that ignores ``GenerationRequest.on_token``) arrives as one piece after
its ``start``; one the live model writes (``replay_live``) streams like any other.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.models.base import TokenEvent

__all__ = ["HOP_S", "NodeToken", "TokenSink"]

log = logging.getLogger(__name__)

HOP_S = 0.01  # pieces decoded on another thread reach the loop at most this long after the first


@dataclass(frozen=True, slots=True)
class NodeToken:
    """A piece of an llm node's answer as it decodes (see the module docstring).

    ``node``: the node's key (its name; ``outer/inner`` inside sub-flows). ``text``: the new
    piece. ``start``: set on the empty first event of each model call, naming the call.
    """

    node: str
    text: str
    start: str | None = None


class TokenSink:
    """The ``GenerationRequest.on_token`` of one model call: turns its events into ``NodeToken``s
    for ``listener`` on the loop this sink was made on (and announces the call's ``start``)."""

    def __init__(self, listener: Callable[[NodeToken], Any], node: str, start: str) -> None:
        self.listener = listener
        self.node = node
        self.loop = asyncio.get_running_loop()
        self.thread = threading.get_ident()
        self.pieces = 0  # text pieces heard so far
        self.queued: collections.deque[NodeToken] = collections.deque()  # from other threads
        self.scheduled = False  # a drain of ``queued`` is due on the loop
        _tell(listener, NodeToken(node, "", start))

    def __call__(self, event: TokenEvent) -> None:
        """One token event from the backend, on whatever thread the backend decodes on."""
        if not event.text:
            return
        self.pieces += 1
        token = NodeToken(self.node, event.text)
        if threading.get_ident() == self.thread:
            _tell(self.listener, token)
            return
        # The local runtime's worker thread: queue it (appended before the flag is read, so a
        # drain running now either takes it or has cleared the flag and another is scheduled).
        self.queued.append(token)
        if not self.scheduled:
            self.scheduled = True
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody listens any more
                self.loop.call_soon_threadsafe(self.loop.call_later, HOP_S, self.drain)

    def drain(self) -> None:
        """Hand the pieces queued by other threads to the listener, in order (on the loop)."""
        self.scheduled = False
        while self.queued:
            _tell(self.listener, self.queued.popleft())

    def whole(self, text: str) -> None:
        """An answer that did not stream (a replayed one) as one piece, unless pieces came."""
        if not self.pieces and text:
            self.pieces = 1
            _tell(self.listener, NodeToken(self.node, text))


def _tell(listener: Callable[[NodeToken], Any], token: NodeToken) -> None:
    try:
        listener(token)
    except Exception:  # a display's bug must not fail the run
        log.exception("the on_token listener raised on %r", token)
