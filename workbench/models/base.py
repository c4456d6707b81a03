"""The ``Model`` protocol every backend implements, and the constraint hook of decoding.

Backends: the local Llama-family runtime (``{local: PATH}`` and the built-in ``default``
tiny model) and the OpenAI-compatible client (``{openai: {...}}``). The executor's llm
node sees only this protocol.

Constrained decoding plugs in through ``Constraint``: before each sampling step the
backend asks the constraint's state for the allowed tokens (a packed int32 bitset, bit
``t % 32`` of word ``t // 32`` set when token ``t`` is allowed, the format llguidance and
XGrammar share) and tells it which token was chosen.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "Constraint",
    "ConstraintState",
    "DecodeRailsHook",
    "Generation",
    "GenerationRequest",
    "Model",
    "TokenEvent",
    "ToolCall",
]


@runtime_checkable
class ConstraintState(Protocol):
    """The per-request state of a constraint while one sequence decodes."""

    def allowed_tokens(self) -> Any:
        """Packed int32 bitmask over the vocabulary for the next token, or ``None`` for all."""
        ...

    def advance(self, token_id: int) -> None:
        """Record the token the sampler chose."""
        ...

    def is_finished(self) -> bool:
        """True once the constraint accepts the text so far and allows nothing more."""
        ...


@runtime_checkable
class Constraint(Protocol):
    """A token-level constraint (type grammar, rails); builds one state per sequence."""

    def start(self, tokenizer: Any) -> ConstraintState:
        """A fresh state for one sequence decoded with ``tokenizer``."""
        ...


@runtime_checkable
class DecodeRailsHook(Protocol):
    """Rails to enforce while decoding (built by ``workbench.decoding``): a backend hands it the
    constraint of the answer's schema and decodes with the constraint it returns."""

    def constrain(self, inner: Constraint) -> Constraint:
        """A constraint that allows only what ``inner`` allows and the rails still allow."""
        ...


@dataclass
class GenerationRequest:
    """One generation: a prompt or chat messages plus sampling and stopping settings.

    ``tools`` offers functions in OpenAI's form (``{"type": "function", "function": {name,
    description, parameters}}``) and ``tool_choice`` says whether the model must call one;
    ``messages`` may then hold assistant messages with ``tool_calls`` and ``tool`` messages
    (``tool_call_id``, ``content``). Only backends with ``supports_tools = True`` take them.

    ``on_token``: told each ``TokenEvent`` of this request while ``generate`` decodes it, so a
    caller can show the text growing and still get the whole ``Generation`` (token ids,
    logprobs, usage, tool calls) at the end. The pieces joined are the answer's text as
    decoded (a tool call the local runtime writes is text there; ``Generation.text`` has it
    moved to ``tool_calls``). Which thread calls it depends on the backend: the local
    runtime calls it on its worker thread (hop to your loop with ``call_soon_threadsafe``),
    the OpenAI client on the event loop that awaits ``generate``. ``stream`` tells it too.
    It must be cheap; if it raises, that request fails (alone: the rest of a batch goes on).
    """

    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: Sequence[str] = ()
    response_schema: dict[str, Any] | None = None  # JSON Schema the text must satisfy
    constraint: Constraint | None = None
    logprobs: bool = False  # fill Generation.logprobs / TokenEvent.logprob (log-softmax of raw logits)
    top_logprobs: int = 0  # also the most likely tokens per step: Generation.top_logprobs
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None  # "auto", "none", "required" or one function
    parallel_tool_calls: bool = True  # may one answer hold several calls
    # rails the answer must satisfy, enforced while decoding by backends with
    # ``supports_decode_rails = True`` (others ignore it; the runtime's check stays the guarantee)
    decode_rails: DecodeRailsHook | None = None
    # per tool name: rails its call's arguments must satisfy, enforced the same way while the
    # local runtime writes them
    tool_rails: Mapping[str, DecodeRailsHook] | None = None
    on_token: Callable[[TokenEvent], None] | None = None  # see the class docstring


@dataclass(frozen=True)
class ToolCall:
    """A function call the model asked for; ``arguments`` is its JSON text, unchecked."""

    id: str
    name: str
    arguments: str


@dataclass
class Generation:
    """What a model produced for one request."""

    text: str
    finish_reason: str  # "stop" | "length" | "constraint" | "tool_calls"
    input_tokens: int = 0
    output_tokens: int = 0
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] | None = None
    # per generated token, the ``top_logprobs`` most likely (token id, logprob), most likely first
    top_logprobs: list[list[tuple[int, float]]] | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)  # finish_reason is then "tool_calls"


@dataclass
class TokenEvent:
    """One streamed token: its id, its text piece and (at the end) the finish reason."""

    token_id: int
    text: str
    logprob: float | None = None
    finish_reason: str | None = None


@runtime_checkable
class Model(Protocol):
    """A text generator. ``generate`` batches requests; ``stream`` yields tokens as they come.

    A backend that takes ``GenerationRequest.tools`` says so with ``supports_tools = True``.
    """

    name: str

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Generate for every request (one batch where the backend can)."""
        ...

    def stream(self, request: GenerationRequest) -> AsyncIterator[TokenEvent]:
        """Yield tokens of one request as they are decoded."""
        ...
