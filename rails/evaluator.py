"""The compiled runtime evaluator: IR -> nested Python closures (no ``eval``, no text).

Exact semantics, float speed. Rails mean exact rationals (a float stands for the
shortest decimal that round-trips to it, ``ir.exact``). Integer, string, enum and bool
operations are exact in Python already. A comparison with a real side is first decided
in floating point together with a rigorous error bound; only when the two sides are
closer than the bound (ties such as ``0.1 + 0.2 == 0.3``, or cancellation) is it
recomputed with ``fractions.Fraction``.

Error bound (u = 2**-53): every real term ``t`` evaluates to ``(t_hat, M)`` with
``|t_hat - t| <= K_t * u * M`` where ``K_t`` is fixed at compile time and ``M`` is the
value of ``t`` with every leaf replaced by its absolute value and ``-`` by ``+``:

- leaf, constant: ``M = |x|``, ``K = 1`` (decimal -> double rounds once);
- ``a + b``, ``a - b``: ``M = Ma + Mb``, ``K = max(Ka, Kb) + 2``;
- ``a * b``: ``M = Ma * Mb``, ``K = Ka + Kb + 2``; ``x ** k`` likewise, k - 1 times;
- ``a / b``: needs ``|b_hat| > 2 e_b`` (``e_b = Kb u Mb``), then
  ``M = (Ma + |q_hat| Mb) / (|b_hat| - e_b) + |q_hat|``, ``K = max(Ka, Kb) + 2``;
- ``abs``, ``-``: unchanged; ``min``/``max``: ``M = max``, ``K = max``.

Subnormal leaves and products that underflow carry absolute rather than relative
error, so they (and overflow) abandon the fast path (``_Inexact``). A comparison is
decided in floats when ``|a_hat - b_hat| > 4 (Ka + Kb + 2) u (Ma + Mb) + 1e-300``.
The differential tests in ``tests/rails/test_differential.py`` hold this against Z3.

Division by zero makes the smallest enclosing atom false, exactly as the Z3 backend's
definedness guard does; inside an atom boolean operators evaluate every operand so
that a division is never skipped by short-circuiting (Z3 has no short-circuit).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any

from . import ir
from .builtins import PREDICATES
from .errors import RailValueError
from .ir import Expr

__all__ = ["compile_bool", "compile_explainer"]

Fn = Callable[[Mapping[str, Any]], Any]
_U = 2.0**-53
_MIN_NORMAL = 2.2250738585072014e-308
_TINY = 1e-300
_OPS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
# (verdict when a > b by more than the bound, verdict when a < b by more than the bound)
_DECIDED = {
    "==": (False, False),
    "!=": (True, True),
    "<": (False, True),
    "<=": (False, True),
    ">": (True, False),
    ">=": (True, False),
}


class _Inexact(Exception):
    """The float fast path cannot bound its error here; use exact arithmetic."""


def _exact_leaf(x: Any) -> Any:
    if type(x) is float:
        if x != x or x in (float("inf"), float("-inf")):
            raise RailValueError(f"{x} is not a finite number")
        return Fraction(repr(x))
    if isinstance(x, bool) or not isinstance(x, int | Fraction):
        raise RailValueError(f"{x!r} is not a number")
    return x


def _getter(var: ir.Var) -> Fn:
    root, fields = var.root, var.fields
    if not fields:
        return lambda v: v[root]
    if len(fields) == 1:
        (f1,) = fields
        return lambda v: v[root][f1]
    if len(fields) == 2:
        f1, f2 = fields

        return lambda v: v[root][f1][f2]

    def deep(v: Mapping[str, Any]) -> Any:
        x = v[root]
        for f in fields:
            x = x[f]
        return x

    return deep


class _Compiler:
    def __init__(self, eager: bool) -> None:
        self.eager = eager

    # -- booleans and plain (non-real) values -----------------------------------------
    def plain(self, e: Expr) -> Fn:
        if isinstance(e, ir.Const):
            value = e.value
            return lambda v: value
        if isinstance(e, ir.Var):
            return _getter(e)
        if isinstance(e, ir.Atom):
            f = _Compiler(eager=True).plain(e.expr)
            if not e.partial:
                return f

            def guarded(v: Mapping[str, Any]) -> bool:
                try:
                    return f(v)
                except ZeroDivisionError:
                    return False

            return guarded
        if isinstance(e, ir.BoolOp):
            return self.boolop(e)
        if isinstance(e, ir.Not):
            a = self.plain(e.arg)
            return lambda v: not a(v)
        if isinstance(e, ir.Implies):
            a, b = self.plain(e.left), self.plain(e.right)
            if self.eager:

                def implies_eager(v: Mapping[str, Any]) -> bool:
                    x, y = a(v), b(v)
                    return (not x) or y

                return implies_eager
            return lambda v: (not a(v)) or b(v)
        if isinstance(e, ir.Compare):
            return self.compare(e)
        if isinstance(e, ir.Member):
            return self.member(e)
        if isinstance(e, ir.Call):
            return self.call(e)
        if e.sort == ir.REAL:  # a real in a plain position (never reached by sort rules)
            return self.exact(e)
        if isinstance(e, ir.Arith):
            a, b = self.plain(e.left), self.plain(e.right)
            op = {"+": operator.add, "-": operator.sub, "*": operator.mul, "//": operator.floordiv}.get(e.op)
            if e.op == "%":
                op = operator.mod
            assert op is not None, e.op
            return lambda v: op(a(v), b(v))
        if isinstance(e, ir.Neg):
            a = self.plain(e.arg)
            return lambda v: -a(v)
        if isinstance(e, ir.Pow):
            a, k = self.plain(e.base), e.exponent
            return lambda v: a(v) ** k
        raise AssertionError(f"no evaluator for {type(e).__name__}")

    def boolop(self, e: ir.BoolOp) -> Fn:
        fs = [self.plain(a) for a in e.args]
        if self.eager:
            agg = all if e.op == "and" else any
            return lambda v: agg([f(v) for f in fs])
        f = fs[-1]
        for g in reversed(fs[:-1]):
            f = _and(g, f) if e.op == "and" else _or(g, f)
        return f

    def compare(self, e: ir.Compare) -> Fn:
        op = _OPS[e.op]
        if ir.REAL not in (e.left.sort, e.right.sort):
            a, b = e.left, e.right
            if isinstance(b, ir.Const):
                fa, cb = self.plain(a), b.value
                return lambda v: op(fa(v), cb)
            fa, fb = self.plain(a), self.plain(b)
            return lambda v: op(fa(v), fb(v))
        if isinstance(e.left, ir.Var) and isinstance(e.right, ir.Const):
            leaf_vs_const = self.leaf_vs_const(e)
            if leaf_vs_const is not None:
                return leaf_vs_const
        (fa, ka), (fb, kb) = self.fast(e.left), self.fast(e.right)
        xa, xb = self.exact(e.left), self.exact(e.right)
        coef = 4 * (ka + kb + 2) * _U
        above, below = _DECIDED[e.op]

        def real_compare(v: Mapping[str, Any]) -> bool:
            try:
                x, mx = fa(v)
                y, my = fb(v)
                d = x - y
                tol = coef * (mx + my) + _TINY
                if d > tol:
                    return above
                if d < -tol:
                    return below
            except (_Inexact, OverflowError):
                pass
            return op(xa(v), xb(v))

        return real_compare

    def leaf_vs_const(self, e: ir.Compare) -> Fn | None:
        """``x op c`` for a float leaf needs no error bound: rounding is monotone, so
        ``x > float(c)`` implies ``dec(x) > c`` (and likewise for ``<``); only
        ``x == float(c)`` needs the exact comparison. Ints compare exactly anyway."""
        assert isinstance(e.left, ir.Var) and isinstance(e.right, ir.Const)  # the caller checked
        op, c = _OPS[e.op], e.right.value
        try:
            cf = float(c)
        except OverflowError:
            return None
        if cf in (float("inf"), float("-inf")):
            return None
        g = _getter(e.left)
        above, below = _DECIDED[e.op]

        def leaf_compare(v: Mapping[str, Any]) -> bool:
            x = g(v)
            if type(x) is float:
                if x > cf:
                    return above
                if x < cf:
                    return below
            return op(_exact_leaf(x), c)

        return leaf_compare

    def member(self, e: ir.Member) -> Fn:
        item, cont, neg = e.item, e.container, e.negated
        numeric = item.sort.numeric
        fi = self.exact(item) if numeric else self.plain(item)
        if isinstance(cont, tuple):
            consts = [c for c in cont if isinstance(c, ir.Const)]
            if len(consts) == len(cont):
                pool = frozenset(c.value for c in consts)
                return (lambda v: fi(v) not in pool) if neg else (lambda v: fi(v) in pool)
            fs = [self.exact(c) if numeric else self.plain(c) for c in cont]

            def in_literal(v: Mapping[str, Any]) -> bool:
                x = fi(v)
                found = x in [f(v) for f in fs]  # evaluate all: a division must not be skipped
                return found != neg

            return in_literal
        if isinstance(cont, ir.Const):
            pool = frozenset(cont.value)
            return (lambda v: fi(v) not in pool) if neg else (lambda v: fi(v) in pool)
        fc = self.plain(cont)
        if numeric and cont.sort.kind == "list":

            def in_numbers(v: Mapping[str, Any]) -> bool:
                return (fi(v) in [_exact_leaf(x) for x in fc(v)]) != neg

            return in_numbers
        return (lambda v: fi(v) not in fc(v)) if neg else (lambda v: fi(v) in fc(v))

    def call(self, e: ir.Call) -> Fn:
        fn, args = e.fn, e.args
        if e.sort == ir.REAL:
            return self.exact(e)
        if fn == "len":
            a = self.plain(args[0])
            return lambda v: len(a(v))
        if fn == "matches":
            s, fullmatch = self.plain(args[0]), e.regex.fullmatch
            return lambda v: fullmatch(s(v)) is not None
        if fn in ("startswith", "endswith"):
            s, p = self.plain(args[0]), self.plain(args[1])
            if fn == "startswith":
                return lambda v: s(v).startswith(p(v))
            return lambda v: s(v).endswith(p(v))
        if fn in PREDICATES:
            s, pred = self.plain(args[0]), PREDICATES[fn]
            return lambda v: pred(s(v))
        fs = [self.plain(a) for a in args]
        if fn == "abs":
            (a,) = fs
            return lambda v: abs(a(v))
        agg = min if fn == "min" else max
        return lambda v: agg([f(v) for f in fs])

    # -- reals: exact -----------------------------------------------------------------
    def exact(self, e: Expr) -> Fn:
        if isinstance(e, ir.Const):
            value = e.value
            return lambda v: value
        if isinstance(e, ir.Var):
            g = _getter(e)
            return lambda v: _exact_leaf(g(v))
        if e.sort == ir.INT and not isinstance(e, ir.Call | ir.Arith | ir.Neg | ir.Pow):
            return self.plain(e)
        if isinstance(e, ir.Arith):
            a, b = self.exact(e.left), self.exact(e.right)
            if e.op == "/":
                return lambda v: Fraction(a(v)) / b(v)
            op = {
                "+": operator.add,
                "-": operator.sub,
                "*": operator.mul,
                "//": operator.floordiv,
                "%": operator.mod,
            }[e.op]
            return lambda v: op(a(v), b(v))
        if isinstance(e, ir.Neg):
            a = self.exact(e.arg)
            return lambda v: -a(v)
        if isinstance(e, ir.Pow):
            a, k = self.exact(e.base), e.exponent
            return lambda v: a(v) ** k
        if isinstance(e, ir.Call):
            if e.fn == "len":
                return self.plain(e)
            fs = [self.exact(a) for a in e.args]
            if e.fn == "abs":
                (a,) = fs
                return lambda v: abs(a(v))
            agg = min if e.fn == "min" else max
            return lambda v: agg([f(v) for f in fs])
        raise AssertionError(f"no exact evaluator for {type(e).__name__}")

    # -- reals: fast float with an error bound ----------------------------------------
    def fast(self, e: Expr) -> tuple[Fn, int]:
        """Closure giving ``(value, magnitude)`` in floats, and the static ``K``."""
        if isinstance(e, ir.Const):
            try:
                x = float(e.value)
            except OverflowError:
                return _raise_inexact, 1
            pair = (x, abs(x))
            if pair[1] and pair[1] < _MIN_NORMAL:
                return _raise_inexact, 1
            return (lambda v: pair), 1
        if isinstance(e, ir.Var) or (
            e.sort == ir.INT and not isinstance(e, ir.Arith | ir.Neg | ir.Pow | ir.Call)
        ):
            g = _getter(e) if isinstance(e, ir.Var) else self.plain(e)

            def leaf(v: Mapping[str, Any]) -> tuple[float, float]:
                x = g(v)
                if type(x) is not float:
                    x = float(x)
                m = abs(x)
                if m < _MIN_NORMAL and m:
                    raise _Inexact
                return x, m

            return leaf, 1
        if e.sort == ir.INT:  # exact int arithmetic, then one rounding to float
            g = self.plain(e)

            def int_term(v: Mapping[str, Any]) -> tuple[float, float]:
                x = float(g(v))
                return x, abs(x)

            return int_term, 1
        if isinstance(e, ir.Arith):
            return self.fast_arith(e)
        if isinstance(e, ir.Neg):
            a, k = self.fast(e.arg)

            def neg(v: Mapping[str, Any]) -> tuple[float, float]:
                x, m = a(v)
                return -x, m

            return neg, k
        if isinstance(e, ir.Pow):
            return self.fast_pow(e)
        if isinstance(e, ir.Call):
            parts = [self.fast(a) for a in e.args]
            fs, k = [p[0] for p in parts], max(p[1] for p in parts)
            if e.fn == "abs":
                f = fs[0]

                def fabs(v: Mapping[str, Any]) -> tuple[float, float]:
                    x, m = f(v)
                    return abs(x), m

                return fabs, k
            agg = min if e.fn == "min" else max

            def minmax(v: Mapping[str, Any]) -> tuple[float, float]:
                pairs = [f(v) for f in fs]
                return agg(p[0] for p in pairs), max(p[1] for p in pairs)

            return minmax, k
        raise AssertionError(f"no fast evaluator for {type(e).__name__}")

    def fast_arith(self, e: ir.Arith) -> tuple[Fn, int]:
        (a, ka), (b, kb) = self.fast(e.left), self.fast(e.right)
        if e.op in ("+", "-"):
            sub = e.op == "-"

            def addsub(v: Mapping[str, Any]) -> tuple[float, float]:
                x, mx = a(v)
                y, my = b(v)
                return (x - y if sub else x + y), mx + my

            return addsub, max(ka, kb) + 2
        if e.op == "*":

            def mul(v: Mapping[str, Any]) -> tuple[float, float]:
                x, mx = a(v)
                y, my = b(v)
                r = x * y
                if abs(r) < _MIN_NORMAL and x and y:
                    raise _Inexact  # underflow: the error is no longer relative
                return r, mx * my

            return mul, ka + kb + 2
        assert e.op == "/", e.op
        ceb = kb * _U

        def div(v: Mapping[str, Any]) -> tuple[float, float]:
            x, mx = a(v)
            y, my = b(v)
            eb = ceb * my
            ay = abs(y)
            if ay <= 2 * eb or ay < _MIN_NORMAL:
                raise _Inexact  # the divisor may be (close to) zero
            q = x / y
            aq = abs(q)
            if aq < _MIN_NORMAL and x:
                raise _Inexact
            return q, (mx + aq * my) / (ay - eb) + aq

        return div, max(ka, kb) + 2

    def fast_pow(self, e: ir.Pow) -> tuple[Fn, int]:
        a, k = self.fast(e.base)
        n = e.exponent
        if n == 0:
            return (lambda v: (a(v), (1.0, 1.0))[1]), 1

        def power(v: Mapping[str, Any]) -> tuple[float, float]:
            x, m = a(v)
            r, mr = x, m
            for _ in range(n - 1):
                r *= x
                mr *= m
            if abs(r) < _MIN_NORMAL and x:
                raise _Inexact
            return r, mr

        return power, n * k + 2 * n


def _raise_inexact(v: Mapping[str, Any]) -> tuple[float, float]:
    raise _Inexact


def _and(f: Fn, g: Fn) -> Fn:
    return lambda v: f(v) and g(v)


def _or(f: Fn, g: Fn) -> Fn:
    return lambda v: f(v) or g(v)


def compile_bool(e: Expr) -> Fn:
    """A closure ``values -> bool`` for a parsed rail (its ``Atom`` skeleton)."""
    return _Compiler(eager=False).plain(e)


def compile_explainer(e: Expr, text: str) -> Callable[[Mapping[str, Any]], list[str]]:
    """A closure giving the source texts of the atoms that make a false rail false
    (and/or/implies followed; a false ``not X`` is reported as its own text)."""
    compiler = _Compiler(eager=False)

    def build(node: Expr) -> Callable[[Mapping[str, Any], list[str]], None]:
        if isinstance(node, ir.Atom):
            f, atom_text = compiler.plain(node), node.text

            def atom(v: Mapping[str, Any], out: list[str]) -> None:
                if not f(v):
                    out.append(atom_text)

            return atom
        if isinstance(node, ir.BoolOp):
            parts = [(compiler.plain(a), build(a)) for a in node.args]

            def boolop(v: Mapping[str, Any], out: list[str]) -> None:
                for f, explain in parts:
                    if not f(v):
                        explain(v, out)

            return boolop
        if isinstance(node, ir.Implies):
            return build(node.right)
        not_text = text[node.span[0] : node.span[1]]
        return lambda v, out: out.append(not_text)

    root = build(e)

    def explain(values: Mapping[str, Any]) -> list[str]:
        out: list[str] = []
        root(values, out)
        return out

    return explain
