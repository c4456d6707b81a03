"""Tool calls on the local runtime: checking ``tools``/``tool_choice``, the grammar, parsing.

The checkpoint's chat template renders the offered ``tools`` and past calls; the model writes
a call as a Hermes/Qwen-style block (the format of the built-in tiny model's template, and of
the Qwen2.5, Hermes and SmolLM3 families)::

    <tool_call>
    {"name": "quote", "arguments": {"ticker": "BOLT"}}
    </tool_call>

one block per call, separated by a newline (parallel calls). With llguidance installed, the
answer is generated under a grammar (``tool_grammar``): for ``tool_choice`` ``auto`` either
text that does not start a call (JSON for the request's ``response_schema`` when it has one)
or one or more calls, ``required`` only calls, a named function exactly one call of it. Each
call's ``name`` is one of the tools and its ``arguments`` are JSON valid for that tool's
``parameters`` schema, token by token, so every call parses and validates. Decode rails on a
tool (``GenerationRequest.tool_rails``) narrow the arguments' mask further while they are
written (``ToolCallConstraint``).

``parse_tool_calls`` reads the blocks back out of the text (constrained or not).
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.errors import UsageError
from workbench.models.base import Constraint, ConstraintState, DecodeRailsHook, ToolCall
from workbench.models.json_schema import GrammarConstraint, JsonSchemaConstraint, MatcherState

__all__ = [
    "CALL_CLOSE",
    "CALL_OPEN",
    "ToolCallConstraint",
    "ToolChoice",
    "parse_tool_calls",
    "tool_choice",
    "tool_grammar",
]

CALL_OPEN = "<tool_call>\n"
CALL_CLOSE = "\n</tool_call>"
_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.S)
# the bytes json.dumps writes; no free whitespace for a small model to wander into
_JSON_STYLE = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


@dataclass(frozen=True)
class ToolChoice:
    """What the model may do: ``mode`` auto / none / required / named, and the tools by name."""

    mode: str
    tools: dict[str, dict[str, Any]]  # name -> parameters schema
    name: str | None = None  # the function a named choice forces
    parallel: bool = True

    @property
    def calls_allowed(self) -> bool:
        """False for ``none`` (the model answers in text)."""
        return self.mode != "none" and bool(self.tools)


def tool_choice(
    tools: Sequence[Any] | None, choice: str | Mapping[str, Any] | None, parallel: bool = True
) -> ToolChoice:
    """Check an OpenAI ``tools`` list and ``tool_choice``; ``UsageError`` says what is wrong."""
    if tools is None:
        tools = []
    if not isinstance(tools, Sequence) or isinstance(tools, str):
        raise UsageError("tools must be a list of {type: function, function: {name, parameters}} objects")
    specs: dict[str, dict[str, Any]] = {}
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if (
            not isinstance(tool, Mapping)
            or tool.get("type", "function") != "function"
            or not isinstance(function, Mapping)
        ):
            raise UsageError(f"tools[{i}] must be {{type: function, function: {{name, parameters}}}}")
        name = function.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise UsageError(
                f"tools[{i}].function.name must be 1-64 letters, digits, _ . : or -, got {name!r}"
            )
        if name in specs:
            raise UsageError(f"tools[{i}]: the function name {name!r} is offered twice")
        parameters = function.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(parameters, Mapping):
            raise UsageError(f"tools[{i}].function.parameters must be a JSON Schema object")
        specs[name] = dict(parameters)
    if choice is None:
        choice = "auto"
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise UsageError(f"tool_choice must be auto, none, required or a function, got {choice!r}")
        if choice == "required" and not specs:
            raise UsageError("tool_choice is required but no tools are offered")
        return ToolChoice(choice, specs, parallel=parallel)
    function = choice.get("function") if isinstance(choice, Mapping) else None
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(name, str):
        raise UsageError('a named tool_choice is {"type": "function", "function": {"name": NAME}}')
    if name not in specs:
        raise UsageError(
            f"tool_choice names {name!r}, which is not among the tools ({', '.join(specs) or 'none'})"
        )
    return ToolChoice("named", specs, name=name, parallel=False)


def _literal(text: str) -> str:
    return json.dumps(text)  # a lark string literal: JSON escapes


def _schema(schema: Mapping[str, Any]) -> str:
    return json.dumps({**schema, "x-guidance": _JSON_STYLE})


def call_head(name: str) -> str:
    """The text of a call up to its arguments."""
    return f'{CALL_OPEN}{{"name": {json.dumps(name)}, "arguments": '


def tool_grammar(choice: ToolChoice, answer_schema: Mapping[str, Any] | None = None) -> str:
    """The llguidance (lark) grammar of an answer under ``choice``: text or well-formed calls."""
    names = [choice.name] if choice.name is not None else list(choice.tools)
    lines = ["%llguidance {}"]
    alternatives = []
    for i, name in enumerate(names):
        alternatives.append(f"call_{i}")
        lines.append(f"call_{i}: {_literal(call_head(name))} args_{i} {_literal('}' + CALL_CLOSE)}")
        lines.append(f"args_{i}: %json {_schema(choice.tools[name])}")
    lines.append("call: " + " | ".join(alternatives))
    lines.append("calls: call" + (' ("\\n" call)*' if choice.parallel else ""))
    if choice.mode == "auto":
        if answer_schema is not None:
            lines.append(f"text: %json {_schema(answer_schema)}")
        else:  # free text, but not text that starts like a call
            lines.append(r"text: /([^<][\s\S]*)?/")
        lines.append("start: text | calls")
    else:
        lines.append("start: calls")
    return "\n".join(lines)


def parse_tool_calls(text: str) -> tuple[str, list[ToolCall]]:
    """The text outside ``<tool_call>`` blocks and the calls in them (blocks that are not a JSON
    object with a string ``name`` stay in the text). ``arguments`` is JSON text, as OpenAI sends it."""
    calls: list[ToolCall] = []
    kept: list[str] = []
    last = 0
    for match in _BLOCK.finditer(text):
        try:
            body = json.loads(match.group(1))
        except ValueError:
            continue
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            continue
        arguments = body.get("arguments", {})
        raw = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
        calls.append(ToolCall(id=f"call_{uuid.uuid4().hex[:24]}", name=body["name"], arguments=raw))
        kept.append(text[last : match.start()])
        last = match.end()
    kept.append(text[last:])
    return "".join(kept).strip() if calls else text, calls


@functools.lru_cache(maxsize=8)
def _pieces(tokenizer: Any) -> tuple[str, ...]:
    """Each token's text on its own (to see which tokens would cross into a call's arguments)."""
    return tuple(tokenizer.decode([i], skip_special_tokens=False) for i in range(tokenizer.vocab_size))


class ToolCallConstraint:
    """The ``Constraint`` of an answer with tools: ``tool_grammar`` through llguidance, and, for
    tools with decode rails, the rails' constraint on their arguments while they are written."""

    def __init__(
        self,
        choice: ToolChoice,
        tokenizer: Any,
        answer_schema: Mapping[str, Any] | None = None,
        tool_rails: Mapping[str, DecodeRailsHook] | None = None,
    ) -> None:
        self.choice = choice
        self.grammar = GrammarConstraint(tool_grammar(choice, answer_schema), tokenizer, what="tools")
        self.tool_rails = {n: h for n, h in (tool_rails or {}).items() if n in choice.tools}
        self._arguments = {n: JsonSchemaConstraint(choice.tools[n], tokenizer) for n in self.tool_rails}

    def start(self, tokenizer: Any) -> ConstraintState:
        """A state for one sequence (the ``Constraint`` protocol)."""
        state = self.grammar.start(tokenizer)
        if not self.tool_rails:
            return state
        return _RailedCalls(self, state, tokenizer)

    def arguments_constraint(self, name: str) -> Constraint:
        """The arguments' schema constraint narrowed by the tool's decode rails."""
        return self.tool_rails[name].constrain(self._arguments[name])


class _RailedCalls:
    """A sequence under the tool grammar whose railed calls' arguments also pass the rails' mask.

    The rails' constraint reads the arguments from their first character, so a token may not
    run from a call's head into its arguments: the head ends on a token boundary.
    """

    def __init__(self, owner: ToolCallConstraint, outer: MatcherState, tokenizer: Any) -> None:
        self.owner = owner
        self.outer = outer
        self.tokenizer = tokenizer
        self.pieces = _pieces(tokenizer)
        self.heads = {call_head(n): n for n in owner.tool_rails}
        self.ids: list[int] = []
        self.text = ""
        self.inner: ConstraintState | None = None  # the rails' state while arguments are written
        self.args_from = 0  # where the current arguments start in ``text``

    def _tail(self) -> str:
        """The text since the last call opened ('' when no call is open)."""
        at = self.text.rfind(CALL_OPEN)
        return "" if at < 0 else self.text[at:]

    def allowed_tokens(self) -> Any:
        mask = np.array(self.outer.allowed_tokens(), dtype=np.int32)
        if self.inner is not None:
            inner = self.inner.allowed_tokens()
            if inner is not None:
                words = np.asarray(inner, dtype=np.int64).astype(np.int32).reshape(-1)
                mask[: words.size] &= words[: mask.size]
                mask[words.size :] = 0
            return mask
        tail = self._tail()
        heads = [h for h in self.heads if h.startswith(tail) and len(tail) < len(h)] if tail else []
        if heads:  # inside a railed call's head: no token may run past its end
            words = mask.view(np.uint32)
            for token in np.flatnonzero(np.unpackbits(mask.view(np.uint8), bitorder="little")):
                grown = tail + (self.pieces[token] if token < len(self.pieces) else "")
                if any(grown.startswith(h) and len(grown) > len(h) for h in heads):
                    words[token // 32] &= ~np.uint32(1 << (token % 32))
        return mask

    def advance(self, token_id: int) -> None:
        self.outer.advance(token_id)
        self.ids.append(token_id)
        piece = self.pieces[token_id] if token_id < len(self.pieces) else "\ufffd"
        if "\ufffd" in piece:  # a character split across tokens: only the whole text decodes it
            self.text = self.tokenizer.decode(self.ids, skip_special_tokens=False)
        else:  # the common case: one piece more, not the whole answer decoded again per token
            self.text += piece
        if self.inner is not None:
            self.inner.advance(token_id)
            if _closed(self.text[self.args_from :]):
                self.inner = None
            return
        tail = self._tail()
        name = self.heads.get(tail)
        if name is not None:
            self.inner = self.owner.arguments_constraint(name).start(self.tokenizer)
            self.args_from = len(self.text)

    def is_finished(self) -> bool:
        return self.outer.is_finished()


def _closed(arguments: str) -> bool:
    """True once ``arguments`` is a whole JSON object."""
    try:
        return isinstance(json.loads(arguments), dict)
    except ValueError:
        return False
