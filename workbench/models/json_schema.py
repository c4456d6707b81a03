"""``response_schema`` as a token constraint: JSON valid for a schema, token by token.

Built on llguidance (the JSON-Schema-to-grammar compiler and token masks behind several
inference servers), through the ``Constraint`` protocol of ``workbench.models.base``. Both
the OpenAI-compatible server (``response_format``) and the local runtime (an llm node's
``response_schema``) use it, until the decoding layer's type-and-rail constraints land.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

import numpy as np

from workbench.errors import UsageError

__all__ = ["GrammarConstraint", "JsonSchemaConstraint", "MatcherState", "json_constraint_available"]

log = logging.getLogger("workbench.models")


def json_constraint_available() -> bool:
    """True when llguidance is installed, so schemas can become token constraints."""
    try:
        import llguidance  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=64)
def _grammar(schema_json: str) -> str:
    """llguidance grammar of a JSON schema (cached: clients repeat their schemas)."""
    import llguidance

    # Fixed separators, no free whitespace: the bytes json.dumps writes, and a small model
    # cannot wander off into endless blank space.
    try:
        return llguidance.LLMatcher.grammar_from_json_schema(
            schema_json,
            overrides={"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "},
        )
    except (ValueError, TypeError) as exc:
        raise UsageError(f"response_format schema is not usable: {exc}") from None


@functools.lru_cache(maxsize=8)
def _ll_tokenizer(tokenizer: Any) -> Any:
    """llguidance's view of a runtime ``Tokenizer`` (built from its tokenizer.json)."""
    import llguidance

    backend = getattr(tokenizer, "backend", None)
    if backend is None or not hasattr(backend, "to_str"):
        raise UsageError("this model's tokenizer cannot be constrained (no tokenizers.Tokenizer backend)")
    return llguidance.LLTokenizer(backend.to_str(), eos_token=list(tokenizer.eos_token_ids) or None)


class MatcherState:
    """One sequence's position in the grammar (the ``ConstraintState`` protocol)."""

    def __init__(self, matcher: Any) -> None:
        self.matcher = matcher

    def allowed_tokens(self) -> Any:
        return np.frombuffer(self.matcher.compute_bitmask(), dtype=np.int32)

    def advance(self, token_id: int) -> None:
        if not self.matcher.consume_token(token_id):
            log.warning("constraint rejected token %d: %s", token_id, self.matcher.get_error())

    def is_finished(self) -> bool:
        return self.matcher.is_stopped() or self.matcher.is_error()


class GrammarConstraint:
    """A ``Constraint`` from an llguidance grammar (lark syntax, ``%json`` schemas inside), such
    as the grammar of tool calls. Built and checked against ``tokenizer`` up front: ``start``
    runs inside the runtime's batch, where an error would fail every request in the batch,
    not just this one."""

    # What a missing llguidance or a grammar it refuses is reported as (subclasses reword).
    install_hint = "constraining {what} needs the llguidance package (pip install llguidance)"
    unusable = "the {what} are not usable as a grammar: {error}"

    def __init__(self, grammar: str, tokenizer: Any, *, what: str = "grammar") -> None:
        try:
            import llguidance
        except ImportError:
            raise UsageError(self.install_hint.format(what=what)) from None
        self._llguidance = llguidance
        self.what = what
        self.grammar = grammar
        self.start(tokenizer)

    def start(self, tokenizer: Any) -> MatcherState:
        """A matcher at the start of the grammar, for one sequence."""
        matcher = self._llguidance.LLMatcher(_ll_tokenizer(tokenizer), self.grammar, log_level=0)
        if matcher.is_error():
            raise UsageError(self.unusable.format(what=self.what, error=matcher.get_error()))
        return MatcherState(matcher)


class JsonSchemaConstraint(GrammarConstraint):
    """A ``Constraint`` that lets the model write only JSON valid for ``schema`` (llguidance)."""

    install_hint = (
        "response_format with a JSON schema needs the llguidance package on the server "
        "(pip install llguidance); without it this server cannot guarantee the format"
    )
    unusable = "response_format schema is not usable: {error}"

    def __init__(self, schema: dict[str, Any], tokenizer: Any) -> None:
        self.schema = schema
        super().__init__(_grammar(json.dumps(schema, sort_keys=False)), tokenizer, what="schema")
