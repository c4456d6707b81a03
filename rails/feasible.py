"""Feasible ranges with ``z3.Optimize``: how large or small may a field still be?

The constrained-decoding layer asks this while a model writes a message: with the
fields decoded so far pinned, which values of the next numeric field can still satisfy
every rail? Bounds come back exact (``Fraction``/``int``), with strictness (a rail
``x < 10`` gives ``hi=10, hi_strict=True``) and ``None`` for unbounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import z3

from workbench.errors import UsageError

__all__ = ["FeasibleRange", "feasible_range"]


@dataclass(frozen=True)
class FeasibleRange:
    """``status``: ``feasible``, ``infeasible`` (no value at all) or ``unknown``
    (timeout; ``reason`` says why). ``lo``/``hi`` are ``None`` when unbounded."""

    status: str
    lo: int | Fraction | None = None
    hi: int | Fraction | None = None
    lo_strict: bool = False
    hi_strict: bool = False
    reason: str = ""

    def contains(self, value: int | float | Fraction) -> bool:
        """Is ``value`` inside the range (ignoring integrality)?"""
        if self.status != "feasible":
            return False
        q = Fraction(repr(value)) if isinstance(value, float) else Fraction(value)
        if self.lo is not None and (q < self.lo or (self.lo_strict and q == self.lo)):
            return False
        return not (self.hi is not None and (q > self.hi or (self.hi_strict and q == self.hi)))


def _bound(value: z3.ExprRef) -> tuple[int | Fraction | None, bool]:
    """Read an optimum: a number, ``oo`` (unbounded) or ``k +/- epsilon`` (strict)."""
    text = str(value)
    if "oo" in text:
        return None, False
    strict = "epsilon" in text
    if strict:
        eps = [c for c in _consts(value) if c.decl().name() == "epsilon"]
        value = z3.simplify(z3.substitute(value, *[(e, z3.RealVal(0, value.ctx)) for e in eps]))
    if z3.is_int_value(value):
        return value.as_long(), strict
    if z3.is_rational_value(value):
        q = value.as_fraction()
        return (int(q) if q.denominator == 1 else q), strict
    raise UsageError(f"cannot read optimum {text}")


def _consts(t: z3.ExprRef) -> list[z3.ExprRef]:
    if z3.is_const(t) and t.decl().kind() == z3.Z3_OP_UNINTERPRETED:
        return [t]
    return [c for child in t.children() for c in _consts(child)]


def feasible_range(
    ctx: z3.Context, term: z3.ExprRef, formulas: list[z3.BoolRef], timeout_ms: int
) -> FeasibleRange:
    """Optimise ``term`` (a number; the length of a string or sequence) both ways under
    ``formulas``. See ``Prover.feasible_range``."""
    if z3.is_string(term) or z3.is_seq(term):
        term = z3.Length(term)
    elif not z3.is_arith(term):
        raise UsageError(f"{term} is not numeric, a string or a list")
    out: dict[str, tuple[int | Fraction | None, bool]] = {}
    for sense in ("lo", "hi"):
        opt = z3.Optimize(ctx=ctx)
        opt.set("timeout", timeout_ms)
        opt.add(*formulas)
        handle = opt.minimize(term) if sense == "lo" else opt.maximize(term)
        res = opt.check()
        if res == z3.unsat:
            return FeasibleRange("infeasible", reason="no value satisfies the hypotheses")
        if res == z3.unknown:
            return FeasibleRange("unknown", reason=f"z3 says unknown ({opt.reason_unknown()})")
        out[sense] = _bound(handle.value())
    (lo, lo_strict), (hi, hi_strict) = out["lo"], out["hi"]
    return FeasibleRange("feasible", lo, hi, lo_strict, hi_strict)
