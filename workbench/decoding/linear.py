"""Rails with one unknown number left, solved exactly without Z3.

Once every field but one is written, a rail such as ``order.qty * order.price <= cash`` is
linear in the field still open (``3 * price <= 7``). ``solve`` reads the rail's IR with the
known values substituted and returns the exact set of values the open field may take, as a
union of intervals: comparisons of linear terms become half-lines, ``and``/``or``/``not``
become intersection, union and complement. Anything else (a product of the unknown with
itself, ``abs``, ``len``, membership tests on the unknown...) raises ``NotLinear`` and the
caller asks Z3. This is the common shape while decoding (the last field a rail reads), and it
costs microseconds where a Z3 query costs milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from workbench.rails.ir import (
    Arith,
    Atom,
    BoolOp,
    Compare,
    Const,
    Expr,
    Implies,
    Member,
    Neg,
    Not,
    Pow,
    Var,
    exact,
)

__all__ = ["Bound", "NotLinear", "Span", "Spans", "intersect", "solve", "union"]

Bound = tuple[Fraction, bool] | None  # (value, closed); None: unbounded


class NotLinear(Exception):
    """The rail is not a boolean combination of linear comparisons in the open field."""


@dataclass(frozen=True)
class Span:
    """One interval of a value set: ``lo``/``hi`` as ``(value, closed)``, None for infinite."""

    lo: Bound
    hi: Bound

    def empty(self) -> bool:
        """Holds no value at all."""
        if self.lo is None or self.hi is None:
            return False
        (a, ca), (b, cb) = self.lo, self.hi
        return a > b or (a == b and not (ca and cb))


Spans = tuple[Span, ...]  # disjoint, in order
ALL: Spans = (Span(None, None),)
NONE: Spans = ()


def _lo_key(b: Bound) -> tuple[int, Fraction, int]:
    # order of lower bounds: -inf first; at equal values a closed bound comes first
    return (0, Fraction(0), 0) if b is None else (1, b[0], 0 if b[1] else 1)


def _hi_key(b: Bound) -> tuple[int, Fraction, int]:
    # order of upper bounds: at equal values an open bound comes first; +inf last
    return (2, Fraction(0), 0) if b is None else (1, b[0], 1 if b[1] else 0)


def intersect(a: Spans, b: Spans) -> Spans:
    """Values in both sets."""
    out = []
    for x in a:
        for y in b:
            span = Span(max(x.lo, y.lo, key=_lo_key), min(x.hi, y.hi, key=_hi_key))
            if not span.empty():
                out.append(span)
    return tuple(sorted(out, key=lambda s: _lo_key(s.lo)))


def complement(a: Spans) -> Spans:
    """Values not in the set."""
    out: list[Span] = []
    lo: Bound = None
    for s in a:
        if s.lo is not None:
            gap = Span(lo, (s.lo[0], not s.lo[1]))
            if not gap.empty():
                out.append(gap)
        if s.hi is None:
            return tuple(out)
        lo = (s.hi[0], not s.hi[1])
    out.append(Span(lo, None))
    return tuple(out)


def union(a: Spans, b: Spans) -> Spans:
    """Values in either set."""
    return complement(intersect(complement(a), complement(b)))


@dataclass(frozen=True)
class _Lin:
    """``a * x + b`` for the open field ``x``."""

    a: Fraction
    b: Fraction


def _half(op: str, lin: _Lin) -> Spans:
    """Values of ``x`` with ``a * x + b  op  0``."""
    a, b = lin.a, lin.b
    if a == 0:
        truth = {"<": b < 0, "<=": b <= 0, ">": b > 0, ">=": b >= 0, "==": b == 0, "!=": b != 0}[op]
        return ALL if truth else NONE
    root = -b / a
    if a < 0:  # dividing by a negative flips the comparison
        op = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)
    point = (Span((root, True), (root, True)),)
    return {
        "<": (Span(None, (root, False)),),
        "<=": (Span(None, (root, True)),),
        ">": (Span((root, False), None),),
        ">=": (Span((root, True), None),),
        "==": point,
        "!=": complement(point),
    }[op]


class _Solver:
    def __init__(self, path: str, fixed: Mapping[str, Any]) -> None:
        self.path, self.fixed = path, fixed

    def term(self, e: Expr) -> Any:
        """A constant (number, str, bool, tuple) or a ``_Lin`` in the open field."""
        if isinstance(e, Const):
            return e.value
        if isinstance(e, Var):
            if e.path == self.path:
                return _Lin(Fraction(1), Fraction(0))
            if e.path not in self.fixed:
                raise NotLinear(f"{e.path} is open too")
            value = self.fixed[e.path]
            return exact(value) if isinstance(value, float) else value
        if isinstance(e, Neg):
            return self._arith("-", 0, self.term(e.arg))
        if isinstance(e, Arith):
            return self._arith(e.op, self.term(e.left), self.term(e.right))
        if isinstance(e, Pow):
            base = self.term(e.base)
            if isinstance(base, _Lin):
                raise NotLinear("a power of the open field")
            return base**e.exponent
        raise NotLinear(type(e).__name__)

    def _arith(self, op: str, x: Any, y: Any) -> Any:
        if not isinstance(x, _Lin) and not isinstance(y, _Lin):
            if op == "+":
                return x + y
            if op == "-":
                return x - y
            if op == "*":
                return x * y
            if op == "/" and isinstance(x, int | Fraction) and isinstance(y, int | Fraction) and y != 0:
                return Fraction(x) / Fraction(y)
            raise NotLinear(f"constant {op}")
        lx = x if isinstance(x, _Lin) else _Lin(Fraction(0), Fraction(x))
        ly = y if isinstance(y, _Lin) else _Lin(Fraction(0), Fraction(y))
        if op == "+":
            return _Lin(lx.a + ly.a, lx.b + ly.b)
        if op == "-":
            return _Lin(lx.a - ly.a, lx.b - ly.b)
        if op == "*" and (lx.a == 0 or ly.a == 0):
            k, lin = (lx.b, ly) if lx.a == 0 else (ly.b, lx)
            return _Lin(k * lin.a, k * lin.b)
        if op == "/" and ly.a == 0 and ly.b != 0:
            return _Lin(lx.a / ly.b, lx.b / ly.b)
        raise NotLinear(f"{op} on the open field")

    def spans(self, e: Expr) -> Spans:
        """The values of the open field for which the boolean ``e`` holds."""
        if isinstance(e, Atom):
            return self.spans(e.expr)
        if isinstance(e, BoolOp):
            parts = [self.spans(a) for a in e.args]
            out = parts[0]
            for p in parts[1:]:
                out = intersect(out, p) if e.op == "and" else union(out, p)
            return out
        if isinstance(e, Not):
            return complement(self.spans(e.arg))
        if isinstance(e, Implies):
            return union(complement(self.spans(e.left)), self.spans(e.right))
        if isinstance(e, Compare):
            left, right = self.term(e.left), self.term(e.right)
            if isinstance(left, _Lin) or isinstance(right, _Lin):
                return _half(e.op, self._arith("-", left, right))
            return ALL if _compare(e.op, left, right) else NONE
        if isinstance(e, Member):
            item = self.term(e.item)
            if isinstance(item, _Lin) or not isinstance(e.container, Const):
                raise NotLinear("membership")
            inside = item in e.container.value
            return ALL if inside != e.negated else NONE
        if isinstance(e, Const) and isinstance(e.value, bool):
            return ALL if e.value else NONE
        if isinstance(e, Var) and e.path in self.fixed:
            return ALL if self.fixed[e.path] else NONE
        raise NotLinear(type(e).__name__)


def _compare(op: str, x: Any, y: Any) -> bool:
    if op == "==":
        return bool(x == y)
    if op == "!=":
        return bool(x != y)
    if isinstance(x, str) or isinstance(y, str):
        raise NotLinear("ordering strings")
    return bool({"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op])


def solve(expr: Expr, path: str, fixed: Mapping[str, Any]) -> Spans:
    """The exact set of values of ``path`` for which ``expr`` holds with ``fixed`` substituted.

    Raises ``NotLinear`` when that set is not read off linear comparisons."""
    return _Solver(path, fixed).spans(expr)
