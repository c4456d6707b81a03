"""Replay: model answers taken from a recorded run instead of the model.

Every model call of a traced run leaves a ``workbench.model.answer`` event (``ANSWER_EVENT``)
on its span: the node's key, the answer's text and tool calls, its finish reason and a
digest of the request it answered. ``ModelAnswers`` holds those answers per node key, in
order; given to the executor as ``replay=``, each llm node and agent turn takes the next
recorded answer of its node instead of calling the model. Building a ``ModelAnswers`` from
the trace store is the traces layer's job (``TraceStore.model_answers``); the runtime only
consumes it, so it never reads a database.

Answers are matched by position: the n-th model call of a node gets the n-th answer
recorded for that node. A request that differs from the recorded one (a changed prompt, a
tool that answers differently) still gets the recorded answer, marked ``diverged`` on its
span and in the run's replay summary; asking for more answers than the recording holds
fails the node, naming it and the step. With ``live=True`` both cases ask the real model
instead.

Node keys: a node's name, prefixed by the names of the sub-flow nodes it runs inside
(``outer/inner``), so equal names in a flow and its sub-flow stay apart (``node_key``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from workbench.errors import NodeError

if TYPE_CHECKING:
    from workbench.models.base import Generation, GenerationRequest

__all__ = [
    "ANSWER_EVENT",
    "NODE_SCOPE",
    "REPLAYED",
    "ModelAnswers",
    "RecordedAnswer",
    "ReplayRun",
    "answer_event",
    "node_key",
    "request_digest",
]

ANSWER_EVENT = "workbench.model.answer"

# The sub-flow nodes the current task runs inside, as a key prefix ("outer/"); set by FlowRunner.
NODE_SCOPE: ContextVar[str] = ContextVar("workbench_node_scope", default="")


def node_key(name: str) -> str:
    """The key of node ``name`` in the current (sub-)flow: ``outer/inner`` inside sub-flows."""
    return NODE_SCOPE.get() + name


def request_digest(request: GenerationRequest) -> str:
    """A short digest of what a request asks (messages, tools, answer schema), to tell changed ones."""
    asked = {
        "messages": request.messages,
        "prompt": request.prompt,
        "tools": request.tools,
        "tool_choice": request.tool_choice,
        "schema": request.response_schema,
    }
    try:  # orjson: a turn's digest costs microseconds, not the ~100 us of json.dumps
        data = orjson.dumps(asked, default=str, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except TypeError:  # what orjson refuses (an int beyond 64 bits)
        data = json.dumps(asked, sort_keys=True, default=str).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def answer_event(key: str, request: GenerationRequest, generation: Generation) -> dict[str, Any]:
    """The attributes of the ``workbench.model.answer`` event that records one model call."""
    attributes: dict[str, Any] = {
        "workbench.node.key": key,
        "workbench.answer.text": generation.text,
        "workbench.answer.finish_reason": generation.finish_reason,
        "workbench.request.sha256": request_digest(request),
    }
    if generation.tool_calls:
        attributes["workbench.answer.tool_calls"] = orjson.dumps(
            [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in generation.tool_calls]
        ).decode()
    return attributes


@dataclass(frozen=True)
class RecordedAnswer:
    """One model answer as recorded: text, tool calls (``id``, ``name``, ``arguments``), request digest."""

    text: str
    finish_reason: str = "stop"
    tool_calls: tuple[tuple[str, str, str], ...] = ()
    request: str | None = None

    @classmethod
    def from_event(cls, attributes: Mapping[str, Any]) -> RecordedAnswer:
        """The answer an ``ANSWER_EVENT``'s attributes describe."""
        calls = json.loads(attributes.get("workbench.answer.tool_calls") or "[]")
        return cls(
            text=str(attributes.get("workbench.answer.text") or ""),
            finish_reason=str(attributes.get("workbench.answer.finish_reason") or "stop"),
            tool_calls=tuple((str(c["id"]), str(c["name"]), str(c["arguments"])) for c in calls),
            request=attributes.get("workbench.request.sha256"),
        )

    def generation(self) -> Generation:
        """The answer as the model backend would have returned it (no tokens: none were generated)."""
        from workbench.models.base import Generation, ToolCall

        return Generation(
            text=self.text,
            finish_reason=self.finish_reason,
            tool_calls=[ToolCall(i, n, a) for i, n, a in self.tool_calls],
        )


@dataclass
class ReplayRun:
    """One replayed run's progress: the next step per node, and what did not come from the recording."""

    positions: dict[str, int] = field(default_factory=dict)
    diverged: list[dict[str, Any]] = field(default_factory=list)
    live: list[dict[str, Any]] = field(default_factory=list)
    recorded: int = 0

    def summary(self, run_id: str) -> dict[str, Any]:
        """``{"of", "recorded", "live", "diverged"}``: what ``RunResult.replay`` reports."""
        return {"of": run_id, "recorded": self.recorded, "live": self.live, "diverged": self.diverged}


class _Replayed:
    """The model a replaying node sees: it takes tools and no token masks, and is never called
    itself (``ModelAnswers.answer`` stands in for its ``generate``)."""

    name = "replay"
    supports_tools = True
    supports_decode_rails = False

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Never called: a replaying runner asks ``ModelAnswers.answer``."""
        raise AssertionError("a replaying node takes its answers from ModelAnswers.answer")


REPLAYED = _Replayed()

REPLAY_RUN: ContextVar[ReplayRun | None] = ContextVar("workbench_replay_run", default=None)


class ModelAnswers:
    """The model answers of a recorded run, per node key in call order: the executor's ``replay=``.

    ``run_id`` names the recording in errors and in the new run's trace; ``flow`` and
    ``inputs`` are the recorded run's (a replay runs with those inputs unless given others);
    ``live=True`` asks the real model where the recording has no answer, or one to a
    different request.
    """

    def __init__(
        self,
        answers: Mapping[str, Sequence[RecordedAnswer]],
        *,
        run_id: str,
        flow: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        live: bool = False,
    ) -> None:
        self.answers = {key: list(values) for key, values in answers.items()}
        self.run_id = run_id
        self.flow = flow
        self.inputs = dict(inputs or {})
        self.live = live

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}: {len(v)}" for k, v in self.answers.items())
        return f"ModelAnswers(run {self.run_id}: {counts or 'no answers'}, live={self.live})"

    async def answer(
        self, node: str, request: GenerationRequest, live_model: Callable[[], Any]
    ) -> tuple[Generation, dict[str, Any]]:
        """The answer to node ``node``'s ``request``, and span attributes saying where it came from.

        ``live_model()`` gives the real model, asked only when ``live`` and the recording
        cannot answer. Raises ``NodeError`` naming the node and step when it cannot.
        """
        run = REPLAY_RUN.get()
        if run is None:  # a runner called outside Executor.arun: a run of its own
            run = ReplayRun()
            REPLAY_RUN.set(run)
        key = node_key(node)
        step = run.positions[key] = run.positions.get(key, 0) + 1
        recorded = self.answers.get(key, [])
        digest = request_digest(request)
        info: dict[str, Any] = {"workbench.replay.of": self.run_id, "workbench.replay.step": step}
        if step <= len(recorded):
            answer = recorded[step - 1]
            diverged = answer.request is not None and answer.request != digest
            if not (diverged and self.live):
                info["workbench.replay.source"] = "recorded"
                info["workbench.replay.diverged"] = diverged
                run.recorded += 1
                if diverged:
                    run.diverged.append({"node": key, "step": step})
                return answer.generation(), info
            why = "the request differs from the recorded one"
        elif not self.live:
            have = f"only {len(recorded)}" if recorded else "none"
            raise NodeError(
                node,
                f"replay of run {self.run_id}: model answer {step} of node '{key}' was asked for, and "
                f"the run recorded {have} for it (the replayed flow asks the model more often than the "
                "recorded run did). Pass --replay-live (replay_live=True in Python) to ask the model "
                "for answers the recording lacks",
            )
        else:
            why = "the recording has no more answers for this node"
        (generation,) = await live_model().generate([request])
        info["workbench.replay.source"] = "live"
        run.live.append({"node": key, "step": step, "why": why})
        return generation, info
