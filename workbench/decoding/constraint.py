"""The rails-aware constraint: the schema grammar's mask, narrowed to what the rails still allow.

llguidance keeps the syntax (JSON valid for the answer's schema). On top of its mask, for
every token the grammar allows, the token's text is appended to the answer so far and the
result is read (``prefix.scan``): every finished field must keep the decode rails satisfiable
with the known values (Z3, ``DecodeRails.feasible``), and the value being written must still
be completable into a feasible one (a number prefix against the field's feasible range, an
enum or bool prefix against the members still possible). Tokens that fail are masked.

Cost: one check per token the grammar allows, each a scan of the short answer plus cached
Z3 answers. With the tiny model's 1,024 byte-level tokens that is cheap; with a 32k BPE
vocabulary inside a free string the grammar allows most of the vocabulary, which is why a
string without a rail on it takes a fast path (a piece with no quote or backslash cannot
finish the value). Numbers and enums allow few tokens. What would scale further: a trie
over token texts, walked once per step, pruning whole subtrees whose prefix is infeasible.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.models.base import Constraint, ConstraintState

from .prefix import Partial, number_prefix_ok, scan
from .solver import DecodeRails, Fixed

__all__ = ["RailsConstraint", "Step"]

REMOVED_KEPT = 16  # token ids a step keeps of those the rails removed (for the trace's token view)


@functools.lru_cache(maxsize=8)
def _pieces(tokenizer: Any) -> tuple[str, ...]:
    """The text of every token on its own (special tokens are '')."""
    return tuple(tokenizer.decode([i]) for i in range(tokenizer.vocab_size))


@dataclass(frozen=True)
class Step:
    """One decode step: tokens the grammar allowed, tokens left after the rails, rails that cut,
    and the first ``REMOVED_KEPT`` token ids (in id order) the rails removed."""

    schema_allowed: int
    allowed: int
    rails: tuple[str, ...]
    removed: tuple[int, ...] = ()


@dataclass
class RailsConstraint:
    """Decode rails bound to one request's known values, wrapping the schema constraint."""

    plan: DecodeRails
    known: Fixed
    skip: tuple[str, ...] = ()  # masked rails demoted for this request (a known value missing)
    inner: Constraint | None = None
    steps: list[Step] = field(default_factory=list)
    _viable: dict[Partial, bool] = field(default_factory=dict)

    def constrain(self, inner: Constraint) -> RailsConstraint:
        """This constraint on top of ``inner`` (the JSON-schema grammar)."""
        self.inner = inner
        return self

    def start(self, tokenizer: Any) -> ConstraintState:
        """A state for one sequence (the ``Constraint`` protocol)."""
        assert self.inner is not None, "constrain() the schema constraint first"
        return _RailsState(
            self, self.inner.start(tokenizer), _pieces(tokenizer), frozenset(tokenizer.eos_token_ids)
        )

    def viable(self, partial: Partial | None) -> bool:
        """Can the answer read as ``partial`` still end as one that satisfies the masked rails?"""
        if partial is None:
            return False
        if partial not in self._viable:
            self._viable[partial] = self._check(partial)
        return self._viable[partial]

    def _check(self, partial: Partial) -> bool:
        plan = self.plan
        done = [(f.path, v) for k, v in partial.done if (f := plan.fields.get(k)) and f.path in plan.read]
        fixed = tuple(sorted((*self.known, *done)))
        if not plan.feasible(fixed, self.skip):
            return False
        f = plan.fields.get(partial.key) if partial.key is not None else None
        if f is None or partial.text is None:
            return True
        if f.kind in ("int", "real"):
            rng = plan.interval(fixed, f.key, self.skip)
            return rng is not None and number_prefix_ok(partial.text, rng, f.kind == "int")
        if f.kind in ("enum", "bool"):
            return any(m.startswith(partial.text) for m in plan.members(fixed, f.key, self.skip))
        return True  # a string: checked whole once its closing quote is written

    def report(self) -> dict[str, str]:
        """How each decode rail was enforced for this request: ``mask`` or ``reject``."""
        return {n: "reject" if n in self.skip else how for n, how in self.plan.how.items()}


class _RailsState:
    """One sequence: the schema state, the answer so far, and the step log."""

    def __init__(
        self, owner: RailsConstraint, inner: ConstraintState, pieces: tuple[str, ...], eos: frozenset[int]
    ):
        self.owner, self.inner, self.pieces, self.eos = owner, inner, pieces, eos
        self.text = ""

    def allowed_tokens(self) -> Any:
        schema = self.inner.allowed_tokens()
        vocab = len(self.pieces)
        if schema is None:
            words = np.full((vocab + 31) // 32, -1, dtype=np.int32)
        else:
            words = np.asarray(schema, dtype=np.int64).astype(np.int32).reshape(-1)
        bits = np.unpackbits(words.view(np.uint8), bitorder="little")
        ids = np.flatnonzero(bits[:vocab])
        here = scan(self.text)
        in_str = (
            here is not None
            and here.text is not None
            and here.text.startswith('"')
            and here.key in self.owner.plan.fields
            and self.owner.plan.fields[here.key].kind == "str"
        )
        keep = np.zeros_like(bits)
        kept = 0
        removed: list[int] = []
        for t in ids.tolist():
            piece = self.pieces[t]
            if t in self.eos or (in_str and '"' not in piece and "\\" not in piece):
                ok = True  # the grammar decides where EOS goes; a piece inside a string cannot end it
            else:
                ok = self.owner.viable(scan(self.text + piece))
            if ok:
                keep[t] = 1
                kept += 1
            elif len(removed) < REMOVED_KEPT:
                removed.append(t)
        cut: tuple[str, ...] = ()
        if kept < len(ids) and here is not None:
            key = here.key if here.key is not None else self._next_key(here)
            cut = self.owner.plan.narrowing.get(key or "", ()) or tuple(n for n, _ in self.owner.plan.masked)
        self.owner.steps.append(Step(len(ids), kept, cut, tuple(removed)))
        return np.packbits(keep, bitorder="little").view(np.int32)

    def _next_key(self, here: Partial) -> str | None:
        written = {k for k, _ in here.done}
        return next((k for k in self.owner.plan.fields if k not in written), None)

    def advance(self, token_id: int) -> None:
        self.inner.advance(token_id)
        self.text += self.pieces[token_id]

    def is_finished(self) -> bool:
        return self.inner.is_finished()
