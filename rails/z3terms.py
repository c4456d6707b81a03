"""IR -> Z3 terms, the second backend (proofs, counterexamples, feasibility).

``Translator(ctx, leaf)`` turns a rail's IR into a Z3 boolean; ``leaf(var)`` supplies the
Z3 term of each ``Var`` (the prover maps rail names to declared variables, ``to_smtlib``
and the benchmark declare fresh ones). Exactness notes:

- ints are Z3 ``Int``; reals ``Real``; a float literal is the rational of its shortest
  decimal (``z3values.real_val``), as in the evaluator. ``//`` and ``%`` follow Python
  (floor division), not SMT-LIB's Euclidean ``div``/``mod``.
- an atom that divides is conjoined with "every divisor is non-zero", so division by zero
  makes the atom false, as in the evaluator.
- ``matches`` with a regex outside ``regex.py``'s subset, ``luhn_card`` and
  ``contains_iban`` become uninterpreted functions. That over-approximates, so proofs
  and conflicts stay sound; each use is recorded in ``abstractions`` so the prover can
  refuse to trust a counterexample that depends on one.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import z3

from . import ir
from .builtins import CHECKSUM_PREDICATES, REGULAR_PREDICATES
from .ir import Expr
from .regex import UnsupportedRegex, to_z3
from .z3values import enum_sort, python_to_z3, real_val

__all__ = ["Translator", "UnsupportedRail"]


class UnsupportedRail(Exception):
    """A rail (or value) the Z3 backend cannot state; the message says why."""


def sort_for(sort: ir.Sort, ctx: z3.Context) -> z3.SortRef:
    """The Z3 sort of a primitive rail sort."""
    if sort.kind == "int":
        return z3.IntSort(ctx)
    if sort.kind == "real":
        return z3.RealSort(ctx)
    if sort.kind == "str":
        return z3.StringSort(ctx)
    if sort.kind == "bool":
        return z3.BoolSort(ctx)
    if sort.kind == "enum" and sort.enum is not None:
        return enum_sort(sort.enum, ctx)[0]
    raise UnsupportedRail(f"no Z3 sort for {sort.describe()}")


class Translator:
    """Translate IR to Z3 in one context, remembering what it had to abstract."""

    def __init__(
        self, ctx: z3.Context, leaf: Callable[[ir.Var], z3.ExprRef], cache: dict | None = None
    ) -> None:
        self.ctx, self.leaf = ctx, leaf
        self.abstractions: list[str] = []
        self._cache: dict = {} if cache is None else cache

    def rail(self, e: Expr) -> z3.BoolRef:
        """The Z3 formula of a parsed rail."""
        return self.term(e)

    # -- helpers ----------------------------------------------------------------------
    def _real(self, t: z3.ExprRef) -> z3.ExprRef:
        return z3.ToReal(t) if z3.is_int(t) else t

    def _num_pair(self, a: z3.ExprRef, b: z3.ExprRef) -> tuple[z3.ExprRef, z3.ExprRef]:
        if z3.is_int(a) and z3.is_int(b):
            return a, b
        return self._real(a), self._real(b)

    def const(self, sort: ir.Sort, value: object) -> z3.ExprRef:
        key = ("const", sort.kind, sort.enum.values if sort.enum else None, type(value), value)
        found = self._cache.get(key)
        if found is None:
            try:
                found = self._cache[key] = python_to_z3(value, sort.kind, self.ctx, sort.enum)
            except Exception as exc:
                raise UnsupportedRail(str(exc)) from None
        return found

    def regex(self, pattern: str) -> z3.ReRef:
        key = ("regex", pattern)
        if key not in self._cache:
            self._cache[key] = to_z3(pattern, self.ctx)
        return self._cache[key]

    def _uninterpreted(self, name: str, arg: z3.ExprRef, why: str) -> z3.BoolRef:
        self.abstractions.append(why)
        f = z3.Function(name, z3.StringSort(self.ctx), z3.BoolSort(self.ctx))
        return f(arg)

    # -- terms ------------------------------------------------------------------------
    def term(self, e: Expr) -> z3.ExprRef:
        if isinstance(e, ir.Const):
            return self.const(e.sort, e.value)
        if isinstance(e, ir.Var):
            return self.leaf(e)
        if isinstance(e, ir.Atom):
            body = self.term(e.expr)
            if not e.partial:
                return body
            guards = []
            for node in ir.walk(e.expr):
                if isinstance(node, ir.Arith) and node.op in ("/", "//", "%"):
                    d = self.term(node.right)
                    guards.append(d != (z3.IntVal(0, self.ctx) if z3.is_int(d) else z3.RealVal(0, self.ctx)))
            return z3.And(*guards, body)
        if isinstance(e, ir.BoolOp):
            args = [self.term(a) for a in e.args]
            return z3.And(*args) if e.op == "and" else z3.Or(*args)
        if isinstance(e, ir.Not):
            return z3.Not(self.term(e.arg))
        if isinstance(e, ir.Implies):
            return z3.Implies(self.term(e.left), self.term(e.right))
        if isinstance(e, ir.Arith):
            return self.arith(e)
        if isinstance(e, ir.Neg):
            return -self.term(e.arg)
        if isinstance(e, ir.Pow):
            base = self.term(e.base)
            if e.exponent == 0:
                return z3.IntVal(1, self.ctx) if z3.is_int(base) else z3.RealVal(1, self.ctx)
            out = base
            for _ in range(e.exponent - 1):
                out = out * base
            return out
        if isinstance(e, ir.Compare):
            a, b = self.term(e.left), self.term(e.right)
            if e.left.sort.numeric:
                a, b = self._num_pair(a, b)
            return {
                "==": lambda: a == b,
                "!=": lambda: a != b,
                "<": lambda: a < b,
                "<=": lambda: a <= b,
                ">": lambda: a > b,
                ">=": lambda: a >= b,
            }[e.op]()
        if isinstance(e, ir.Member):
            found = self.member(e)
            return z3.Not(found) if e.negated else found
        if isinstance(e, ir.Call):
            return self.call(e)
        raise UnsupportedRail(f"no Z3 translation for {type(e).__name__}")

    def arith(self, e: ir.Arith) -> z3.ExprRef:
        a, b = self.term(e.left), self.term(e.right)
        if e.sort == ir.STR:
            return z3.Concat(a, b)
        if e.op == "/":
            return self._real(a) / self._real(b)
        if e.op in ("//", "%"):
            floor = z3.If(b >= 0, a / b, (-a) / (-b))  # Python floor division on ints
            return floor if e.op == "//" else a - b * floor
        a, b = self._num_pair(a, b)
        return {"+": a + b, "-": a - b, "*": a * b}[e.op]

    def member(self, e: ir.Member) -> z3.BoolRef:
        item = self.term(e.item)
        cont = e.container
        if isinstance(cont, tuple):
            options = [self.term(c) for c in cont]
        elif isinstance(cont, ir.Const):
            isort = cont.sort.item or e.item.sort
            if e.item.sort.kind == "enum":
                isort = e.item.sort
            options = [self.const(isort, v) for v in cont.value]
        elif cont.sort == ir.STR:
            return z3.Contains(self.term(cont), item)
        else:
            seq = self.term(cont)
            if not z3.is_seq(seq):
                raise UnsupportedRail(f"membership in {cont.sort.describe()} is not modelled")
            elem_sort = seq.sort().basis()
            if elem_sort == z3.RealSort(self.ctx):
                item = self._real(item)
            return z3.Contains(seq, z3.Unit(item))
        if not options:
            return z3.BoolVal(False, self.ctx)
        eqs = []
        for o in options:
            x, y = self._num_pair(item, o) if e.item.sort.numeric else (item, o)
            eqs.append(x == y)
        return z3.Or(*eqs)

    def call(self, e: ir.Call) -> z3.ExprRef:
        fn = e.fn
        args = [self.term(a) for a in e.args] if fn != "matches" else [self.term(e.args[0])]
        if fn == "len":
            (a,) = args
            return a if z3.is_int(a) else z3.Length(a)
        if fn == "abs":
            (a,) = args
            return z3.If(a >= 0, a, -a)
        if fn in ("min", "max"):
            if any(not z3.is_int(a) for a in args):
                args = [self._real(a) for a in args]
            out = args[0]
            for a in args[1:]:
                out = z3.If(a < out, a, out) if fn == "min" else z3.If(a > out, a, out)
            return out
        if fn == "startswith":
            return z3.PrefixOf(args[1], args[0])
        if fn == "endswith":
            return z3.SuffixOf(args[1], args[0])
        if fn == "matches":
            pat = e.args[1]
            assert isinstance(pat, ir.Const)  # the parser takes only a constant pattern
            pattern = pat.value
            try:
                return z3.InRe(args[0], self.regex(pattern))
            except UnsupportedRegex as exc:
                return self._uninterpreted(f"matches {pattern}", args[0], f"matches(.., {pattern!r}): {exc}")
        if fn in REGULAR_PREDICATES:
            anything = z3.Star(z3.AllChar(z3.ReSort(z3.StringSort(self.ctx))))
            return z3.InRe(args[0], z3.Concat(anything, self.regex(REGULAR_PREDICATES[fn]), anything))
        if fn in CHECKSUM_PREDICATES:
            return self._uninterpreted(fn, args[0], f"{fn}() is a checksum Z3 does not model")
        raise UnsupportedRail(f"no Z3 translation for {fn}()")


def real_literal(value: int | float | Fraction, ctx: z3.Context) -> z3.ArithRef:
    """Re-export for callers that build bounds (exact rational of a number)."""
    return real_val(value, ctx)
