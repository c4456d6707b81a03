"""The rails-aware constraint: the schema grammar's mask, narrowed to what the rails still allow.

llguidance keeps the syntax (JSON valid for the answer's schema). On top of its mask, a token
is allowed when the answer so far with the token's text appended (``prefix.scan``) keeps the
decode rails satisfiable with the known values (``DecodeRails.feasible``) and the value being
written can still be completed into a feasible one (a number prefix against the field's
feasible range, an enum or bool prefix against the members still possible).

Cost: deciding that token by token in Python would cost milliseconds a step with a 32k or
128k BPE vocabulary. Instead each step is read as a *context*: the fields written (only the
values the rails read), the field being written, and the text since the last finished value
(a string's content only if a rail reads it). What the rails allow depends on nothing else,
so each context's verdicts are kept (``DecodeRails.masks``, shared by every request on the
plan) as two packed masks, tokens checked and tokens refused, and a repeated context costs
two vector operations. Within a context whole classes of tokens are decided at once
(``vocab``): inside a string, tokens without a quote or backslash cannot finish it; at the
start of a string value a quote and plain text only opens it; inside a number, every digit
token is decided by ``numbers.NumberTokens`` in a few vector operations. Only the few tokens
left (quotes, separators, enum letters) are checked one by one, once per context. The solver
is asked only when a field value is finished (and answers most of those without Z3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.models.base import Constraint, ConstraintState

from .prefix import Interval, Partial, number_prefix_ok, scan
from .solver import DecodeRails, Fixed
from .vocab import TokenTable, token_table

__all__ = ["RailsConstraint", "Step"]

REMOVED_KEPT = 16  # token ids a step keeps of those the rails removed (for the trace's token view)


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
        return _RailsState(self, self.inner.start(tokenizer), tokenizer, token_table(tokenizer))

    def viable(self, partial: Partial | None) -> bool:
        """Can the answer read as ``partial`` still end as one that satisfies the masked rails?"""
        if partial is None:
            return False
        if partial not in self._viable:
            self._viable[partial] = self._check(partial)
        return self._viable[partial]

    def fixed(self, partial: Partial) -> Fixed:
        """The known values and the finished fields the masked rails read, as rail paths."""
        plan = self.plan
        done = [(f.path, v) for k, v in partial.done if (f := plan.fields.get(k)) and f.path in plan.read]
        return tuple(sorted((*self.known, *done)))

    def interval(self, partial: Partial, key: str) -> Interval | None:
        """The feasible range of number field ``key`` after ``partial`` (None: no value)."""
        return self.plan.interval(self.fixed(partial), key, self.skip)

    def _check(self, partial: Partial) -> bool:
        plan = self.plan
        fixed = self.fixed(partial)
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


class _Verdicts:
    """What the rails decided in one context, as packed uint32 masks: the tokens not yet
    checked, and the tokens kept (every token but the refused ones; end-of-sequence always)."""

    def __init__(self, checked: np.ndarray, refused: np.ndarray, eos: np.ndarray) -> None:
        self.unchecked = ~checked
        self.keep = ~refused | eos

    def check(self, t: int, ok: bool) -> None:
        """Record the verdict on token ``t``."""
        bit = np.uint32(1 << (t & 31))
        self.unchecked[t >> 5] &= ~bit
        if not ok:
            self.keep[t >> 5] &= ~bit


_MAX_CONTEXTS = 4096  # per plan; a full cache is dropped (each entry is two vocabulary masks)


class _RailsState:
    """One sequence: the schema state, the answer so far, and the step log."""

    def __init__(self, owner: RailsConstraint, inner: ConstraintState, tokenizer: Any, table: TokenTable):
        self.owner, self.inner, self.tokenizer, self.table = owner, inner, tokenizer, table
        self.text = ""
        self.ids: list[int] = []
        self.eos = table.eos.view(np.uint32)
        self.here: Partial | None = None  # the last reading of the answer (scans resume there)

    def allowed_tokens(self) -> Any:
        table, owner = self.table, self.owner
        words = self._schema_words(self.inner.allowed_tokens())
        here = self.here = scan(self.text, self.here)
        if here is None or not owner.viable(here):
            allowed = words & self.eos
        else:
            verdicts = self._verdicts(here)
            need = words & verdicts.unchecked
            if need.any():
                for t in table.ids(need):
                    verdicts.check(t, owner.viable(scan(self.text + table.pieces[t], here)))
            allowed = words & verdicts.keep
        self._log(here, words, allowed)
        return allowed.view(np.int32)

    def _schema_words(self, schema: Any) -> np.ndarray:
        """The grammar's mask as packed uint32 words, one per 32 tokens of the vocabulary."""
        n = self.table.words
        if schema is None:
            return np.full(n, 0xFFFFFFFF, dtype=np.uint32)
        given = np.asarray(schema)
        given = (given if given.dtype == np.int32 else given.astype(np.int32)).reshape(-1).view(np.uint32)
        if len(given) == n:
            return given
        words = np.zeros(n, dtype=np.uint32)
        words[: min(n, len(given))] = given[:n]
        return words

    def _verdicts(self, here: Partial) -> _Verdicts:
        """The cached verdicts of the context the answer is in (see the module docstring)."""
        owner, table = self.owner, self.table
        plan = owner.plan
        tail = self.text[here.at :]
        f = plan.fields.get(here.key) if here.key is not None else None
        read = tuple((k, v) for k, v in here.done if (g := plan.fields.get(k)) and g.path in plan.read)
        base = (table, owner.known, owner.skip, tuple(k for k, _ in here.done), read)
        value = here.text
        if f is not None and f.kind == "str" and value is not None and value.startswith('"'):
            # inside a string: its content matters only if a rail reads it (and a pending escape)
            content = value[1:]
            escaped = (len(content) - len(content.rstrip("\\"))) % 2 == 1
            opened = tail[: len(tail) - len(content)]
            key: tuple[Any, ...] = ("str", base, opened, content if f.path in plan.read else escaped)
            found = plan.masks.get(key)
            if found is None:
                found = _Verdicts(table.plain.view(np.uint32), np.zeros(table.words, np.uint32), self.eos)
        elif f is not None and f.kind in ("int", "real") and (value is None or not value.startswith('"')):
            # a number: every digit token is decided at once against the field's feasible range
            key = ("num", base, tail)
            found = plan.masks.get(key)
            if found is None:
                rng = owner.interval(here, f.key)
                numbers = table.numbers
                ok = (
                    numbers.allowed(value or "", rng, f.kind == "int") if rng else np.zeros_like(numbers.mask)
                )
                found = _Verdicts(numbers.mask, numbers.mask & ~ok, self.eos)
        else:
            key = ("gen", base, tail)
            found = plan.masks.get(key)
            if found is None:
                checked = np.zeros(table.words, np.uint32)
                if f is not None and f.kind == "str" and value is None:  # a string value opens
                    checked = (table.plain | table.opens).view(np.uint32)
                found = _Verdicts(checked, np.zeros(table.words, np.uint32), self.eos)
        if key not in plan.masks:
            if len(plan.masks) >= _MAX_CONTEXTS:
                plan.masks.clear()
            plan.masks[key] = found
        return found

    def _log(self, here: Partial | None, words: np.ndarray, allowed: np.ndarray) -> None:
        schema_allowed, kept = _count(words), _count(allowed)
        cut: tuple[str, ...] = ()
        if kept < schema_allowed and here is not None:
            key = here.key if here.key is not None else self._next_key(here)
            cut = self.owner.plan.narrowing.get(key or "", ()) or tuple(n for n, _ in self.owner.plan.masked)
        self.owner.steps.append(Step(schema_allowed, kept, cut, _first_ids(words & ~allowed, REMOVED_KEPT)))

    def _next_key(self, here: Partial) -> str | None:
        written = {k for k, _ in here.done}
        return next((k for k in self.owner.plan.fields if k not in written), None)

    def advance(self, token_id: int) -> None:
        self.inner.advance(token_id)
        self.ids.append(token_id)
        piece = self.table.pieces[token_id]
        if "\ufffd" in piece:  # part of a character: decode the whole answer to join its bytes
            self.text = self.tokenizer.decode(self.ids)
        else:
            self.text += piece

    def is_finished(self) -> bool:
        return self.inner.is_finished()


def _first_ids(words: np.ndarray, limit: int) -> tuple[int, ...]:
    """The first ``limit`` token ids (in id order) set in packed uint32 ``words``."""
    out: list[int] = []
    for w in np.flatnonzero(words)[:limit].tolist():  # each word holds at least one
        bits = int(words[w])
        while bits and len(out) < limit:
            low = bits & -bits
            out.append(w * 32 + low.bit_length() - 1)
            bits ^= low
        if len(out) >= limit:
            break
    return tuple(out)


def _count(words: np.ndarray) -> int:
    """Set bits in a packed mask."""
    if hasattr(np, "bitwise_count"):  # numpy 2: five times faster than through a Python int
        return int(np.bitwise_count(words).sum(dtype=np.int64))
    return int.from_bytes(words.tobytes(), "little").bit_count()
