"""A node's decode rails in Z3: what the next field may still be, given what is already fixed.

``DecodeRails`` is built once per llm node from its ``enforce: decode`` rails and the fields of
its answer. Each rail is sorted into one of two ways of enforcing it:

- ``mask``: it translates to Z3 exactly and reads only fields of the answer and values known
  before generation (node inputs, flow inputs; constants are literals already). While the
  model writes, the fields already written and the known values are substituted as literals
  (so ``order.qty * order.price <= cash`` is linear in ``price`` once ``qty`` is written) and
  Z3 answers: the range of a number field (``z3.Optimize``), the members of an enum or bool
  field still possible, whether a finished value keeps the rest satisfiable;
- ``reject``: anything else (list or record values, ``len`` of a string, parts Z3 only
  approximates). The runtime checks it after generation and re-generates a bounded number
  of times.

Answers are cached per (known values, fixed fields): a repeated state costs a dict lookup.
One Z3 context per ``DecodeRails``, used under a lock (the model's worker thread and the
event loop may both ask).
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import z3

from workbench.errors import UsageError
from workbench.rails import Rail
from workbench.rails.feasible import feasible_range
from workbench.rails.ir import Arith, Call, Pow, Var, exact, walk
from workbench.rails.parser import sort_of_type
from workbench.rails.rail import leaf_sort
from workbench.rails.z3terms import UnsupportedRail
from workbench.rails.z3values import ValueNotRepresentable, python_to_z3
from workbench.types import Bool, Enum, Float, Int, Record, Str, Type

from .linear import Bound, NotLinear, Span, Spans, intersect, solve, union
from .prefix import Interval

__all__ = ["DecodeConflict", "DecodeRails", "Field", "answer_fields"]

Fixed = tuple[tuple[str, Any], ...]  # (rail path, value), sorted by path


class DecodeConflict(UsageError):
    """The decode rails admit no answer at all with these inputs (``rails`` names a minimal set)."""

    def __init__(self, rails: Sequence[str], message: str) -> None:
        super().__init__(message)
        self.rails = tuple(rails)


class Field:
    """One field of the answer: its JSON key, the path rails read it by, and its type."""

    def __init__(self, key: str, path: str, typ: Type) -> None:
        self.key, self.path, self.typ = key, path, typ
        self.kind = sort_of_type(typ).kind

    def members(self) -> list[tuple[Any, str]]:
        """(value, JSON text) of every value of a bool or enum field."""
        if isinstance(self.typ, Bool):
            return [(True, "true"), (False, "false")]
        assert isinstance(self.typ, Enum)
        return [(v, f'"{v}"') for v in self.typ.values]


def answer_fields(outputs: Mapping[str, Type]) -> list[Field]:
    """The answer's fields: an llm node with one record output writes that record (rails read
    ``port.key``); with several outputs it writes one object keyed by port. Fields that are
    not plain values (lists, nested records) are left out: rails on them are checked after."""
    if len(outputs) == 1:
        ((port, typ),) = outputs.items()
        if not isinstance(typ, Record):
            return []
        pairs = [(key, f"{port}.{key}", sub) for key, sub in typ.fields]
    else:
        pairs = [(port, port, typ) for port, typ in outputs.items()]
    return [Field(k, p, t) for k, p, t in pairs if isinstance(t, Int | Float | Str | Enum | Bool)]


class DecodeRails:
    """Decode rails of one node, sorted into ``mask`` and ``reject``, with cached Z3 answers."""

    def __init__(
        self, rails: Sequence[tuple[str, Rail]], fields: Sequence[Field], *, timeout_ms: int = 1000
    ) -> None:
        self.fields = {f.key: f for f in fields}
        self.by_path = {f.path: f for f in fields}
        self.rails = list(rails)
        self.timeout_ms = timeout_ms
        self.ctx = z3.Context()
        self._cache: dict[Any, Any] = {}
        # the rails mask's verdicts per decoding context (``constraint``), shared by requests
        self.masks: dict[Any, Any] = {}
        self._z3cache: dict[Any, Any] = {}
        self._lock = threading.Lock()
        out_roots = {f.path.split(".")[0] for f in fields}
        self.how: dict[str, str] = {}
        self.why: dict[str, str] = {}
        for name, rail in self.rails:
            reason = self._unmaskable(rail, out_roots)
            self.how[name] = "reject" if reason else "mask"
            if reason:
                self.why[name] = reason
        self.masked = [(n, r) for n, r in self.rails if self.how[n] == "mask"]
        self.paths = {n: frozenset(v.path for v in r.vars()) for n, r in self.masked}  # leaves each reads
        # paths the masked rails read: other fields cannot change an answer, so they are left
        # out of the cache keys (a new ticker must not cost a new Z3 query on the budget)
        self.read = frozenset(v.path for _, r in self.masked for v in r.vars())
        # which rails can narrow each field: those that read it
        self.narrowing = {
            f.key: tuple(n for n, r in self.masked if any(v.path == f.path for v in r.vars())) for f in fields
        }

    def _unmaskable(self, rail: Rail, out_roots: set[str]) -> str:
        """Why ``rail`` cannot become masks ('' when it can)."""
        for node in walk(rail.expr):
            if isinstance(node, Call) and node.fn == "len":
                return "it reads a length"
        for var in rail.vars():
            if var.sort.kind in ("list", "record"):
                return f"{var.path} is a {var.sort.kind}"
            if var.root in out_roots and var.path not in self.by_path:
                return f"{var.path} is not a plain field of the answer"
        try:
            _, abstractions = rail.to_z3(
                self.ctx, lambda v: z3.Const(v.path, leaf_sort(v.sort, self.ctx)), {}
            )
        except (UnsupportedRail, ValueNotRepresentable) as exc:
            return f"no exact Z3 form ({exc})"
        if abstractions:
            return "Z3 only approximates it (" + ", ".join(abstractions) + ")"
        return ""

    # ---- binding known values -------------------------------------------------------------
    def known(self, values: Mapping[str, Any]) -> tuple[Fixed, dict[str, str]]:
        """The known leaves the masked rails read (from ``values``: inputs and flow inputs), and
        the rails that must be checked after generation instead (a value missing or not plain)."""
        pins: dict[str, Any] = {}
        demoted: dict[str, str] = {}
        for name, rail in self.masked:
            for var in rail.vars():
                if var.path in self.by_path:
                    continue
                value: Any = values
                for part in (var.root, *var.fields):
                    value = value.get(part) if isinstance(value, Mapping) else None
                if value is None or isinstance(value, list | dict):
                    demoted[name] = f"{var.path} is not a known plain value"
                else:
                    pins[var.path] = value
        return tuple(sorted(pins.items())), demoted

    def conflict(self, known: Fixed, skip: Sequence[str] = ()) -> None:
        """Raise ``DecodeConflict`` when the masked rails admit no answer with ``known`` pinned."""
        key = ("conflict", known, tuple(skip))
        with self._lock:
            if key in self._cache:
                core = self._cache[key]
            else:
                solver = z3.Solver(ctx=self.ctx)
                solver.set("timeout", self.timeout_ms)
                solver.add(*self._type_facts(dict(known)))
                fixed = dict(known)
                for name, rail in self.masked:
                    if name not in skip:
                        solver.assert_and_track(self._formula(rail, fixed), z3.Bool(f"rail:{name}", self.ctx))
                core = None
                if solver.check() == z3.unsat:
                    core = sorted(str(c)[5:] for c in solver.unsat_core())
                else:  # the first decoding steps ask the same (or less): answered already
                    self._cache[("sat", known, tuple(skip))] = True
                    for gkey, _, _ in self._groups(known, skip)[1]:
                        self._cache[gkey] = True
                self._cache[key] = core
        if core:
            shown = ", ".join(f"{p}={v!r}" for p, v in known)
            raise DecodeConflict(
                core,
                f"the decode rails {', '.join(repr(c) for c in core)} contradict each other with "
                f"{shown or 'these inputs'}: no answer satisfies them all",
            )

    # ---- questions asked while decoding ---------------------------------------------------
    def feasible(self, fixed: Fixed, skip: tuple[str, ...] = ()) -> bool:
        """Can every masked rail still hold with the leaves in ``fixed`` pinned? (unknown: yes)

        Rails whose leaves are all pinned are evaluated in Python; the others are split into
        groups that share no open leaf, each answered (and cached) on the pinned leaves it
        reads only: exactly without Z3 when one number is left open (``linear.solve``), else
        by Z3. So a new ticker costs nothing on the budget rail, and a written ``qty`` with
        only ``price`` open costs microseconds."""
        key = ("sat", fixed, skip)
        with self._lock:
            if key not in self._cache:
                self._cache[key] = self._decide(fixed, skip)
            return bool(self._cache[key])

    def _decide(self, fixed: Fixed, skip: tuple[str, ...]) -> bool:
        env: dict[str, Any] = {}
        for path, value in fixed:
            *roots, leaf = path.split(".")
            node = env
            for part in roots:
                node = node.setdefault(part, {})
            node[leaf] = value
        ground, groups = self._groups(fixed, skip)
        if not all(rail.holds(env) for _, rail in ground):
            return False
        for gkey, rails, opened in groups:
            if gkey not in self._cache:
                self._cache[gkey] = self._group_feasible(rails, opened, dict(gkey[2]))
            if not self._cache[gkey]:
                return False
        return True

    def _groups(self, fixed: Fixed, skip: Sequence[str]) -> tuple[list[tuple[str, Rail]], list[Any]]:
        """The rails with every leaf pinned, and the others in groups that share no open leaf:
        ``(cache key, rails, open leaves)``, keyed on the pinned leaves the group reads."""
        values = dict(fixed)
        ground: list[tuple[str, Rail]] = []
        groups: list[tuple[list[tuple[str, Rail]], set[str]]] = []
        for name, rail in self.masked:
            if name in skip:
                continue
            opened = {p for p in self.paths[name] if p not in values}
            if not opened:
                ground.append((name, rail))
                continue
            joined = [g for g in groups if g[1] & opened]
            rails = [(name, rail)] + [r for g in joined for r in g[0]]
            groups = [g for g in groups if g not in joined] + [(rails, opened.union(*(g[1] for g in joined)))]
        keyed = []
        for rails, opened in groups:
            reads = frozenset().union(*(self.paths[n] for n, _ in rails))
            sub = tuple((p, v) for p, v in fixed if p in reads)
            keyed.append((("group", tuple(sorted(n for n, _ in rails)), sub), rails, opened))
        return ground, keyed

    def _group_feasible(self, rails: list[tuple[str, Rail]], opened: set[str], fixed: dict[str, Any]) -> bool:
        if len(opened) == 1:
            spans = self._spans(rails, next(iter(opened)), fixed)
            if spans is not None:
                return bool(spans)
        solver = z3.Solver(ctx=self.ctx)
        solver.set("timeout", self.timeout_ms)
        solver.add(*[self._formula(r, fixed) for _, r in rails], *self._type_facts(fixed, opened))
        return bool(solver.check() != z3.unsat)

    def _spans(self, rails: Sequence[tuple[str, Rail]], path: str, fixed: Mapping[str, Any]) -> Spans | None:
        """The exact values of the numeric field ``path`` that keep ``rails`` (within its type),
        or None when that is not linear (Z3 decides then). Integer fields: spans with an integer."""
        f = self.by_path.get(path)
        if f is None or f.kind not in ("int", "real"):
            return None
        try:
            spans = type_spans(f.typ)
            for _, rail in rails:
                spans = intersect(spans, solve(rail.expr, path, fixed))
        except NotLinear:
            return None
        return tuple(s for s in spans if f.kind == "real" or has_integer(s))

    def _pinned(self, f: Field, values: Mapping[str, Any], skip: tuple[str, ...]) -> Spans | None:
        """Values of ``f`` that keep its group of rails with the group's other open fields pinned
        at sample values of their types (``type_samples``): exact per sample, so their union
        lies inside the true feasible set and a partial number in it can always be completed
        (``qty * price <= 50`` with ``price >= 1``: ``qty <= 50``, from price = 1). None when
        the group is not linear in ``f`` once pinned, or has more than two other open fields."""
        groups = self._groups(tuple(sorted(values.items())), skip)[1]
        group = next((g for g in groups if f.path in g[2]), None)
        if group is None:
            return None
        _, rails, opened = group
        others = sorted(opened - {f.path})
        if len(others) > 2 or any(p not in self.by_path for p in others):
            return None
        found: Spans | None = None
        for pins in itertools.product(*(type_samples(self.by_path[p].typ) for p in others)):
            spans = self._spans(rails, f.path, {**values, **dict(zip(others, pins, strict=True))})
            if spans is not None:
                found = spans if found is None else union(found, spans)
        return found

    def interval(self, fixed: Fixed, key: str, skip: tuple[str, ...] = ()) -> Interval | None:
        """The feasible range of numeric field ``key`` (None: no value at all)."""
        ck = ("range", fixed, key, skip)
        if ck in self._cache:
            result: Interval | None = self._cache[ck]
            return result
        found = self._interval(fixed, key, skip) if self.feasible(fixed, skip) else None
        with self._lock:
            self._cache[ck] = found
        return found

    def _interval(self, fixed: Fixed, key: str, skip: tuple[str, ...]) -> Interval | None:
        f = self.fields[key]
        values = dict(fixed)
        reading = [(n, r) for n, r in self.masked if n not in skip and f.path in self.paths[n]]
        opened = {p for n, _ in reading for p in self.paths[n] if p not in values}
        if opened == {f.path}:
            with self._lock:
                spans = self._spans(reading, f.path, values)
            if spans is not None:
                return hull(spans)
        if not reading:
            return hull(type_spans(f.typ))
        if any(_open_product(r.expr, opened) for _, r in reading):
            # A product of two open fields (qty * price before either is written): Z3's
            # optimiser gives up only at its timeout (~1 s a side). The other factors are
            # pinned at sample values of their types instead (``_pinned``); only where that is
            # not linear either is the field left to its type (the finished value is still
            # checked exactly, but a partial one is not).
            with self._lock:
                pinned = self._pinned(f, values, skip)
            return hull(type_spans(f.typ)) if pinned is None else (hull(pinned[:1]) if pinned else None)
        with self._lock:
            term = z3.Const(f.path, leaf_sort(sort_of_type(f.typ), self.ctx))
            formulas = self._formulas(values, skip)
            if any(_nonlinear(g) for g in formulas):
                # A product of two open fields (qty * price before either is written): Z3's
                # optimiser gives up only at its timeout (~1 s a side), and a bound found there
                # would rarely narrow anything. Leave the field to its type; once the other
                # factor is written the formula is linear and narrows exactly.
                return Interval()
            found = feasible_range(self.ctx, term, formulas, self.timeout_ms)
        if found.status == "infeasible":
            return None
        if found.status == "feasible":
            return Interval(found.lo, found.hi, found.lo_strict, found.hi_strict)
        return Interval()  # unknown (non-linear with several open fields, timeout): do not narrow

    def members(self, fixed: Fixed, key: str, skip: tuple[str, ...] = ()) -> tuple[str, ...]:
        """JSON texts of the values of bool/enum field ``key`` that keep the rails satisfiable."""
        f = self.fields[key]
        return tuple(
            text
            for value, text in f.members()
            if self.feasible(tuple(sorted((*fixed, (f.path, value)))), skip)
        )

    # ---- Z3 -------------------------------------------------------------------------------
    def _formula(self, rail: Rail, fixed: Mapping[str, Any]) -> z3.BoolRef:
        def leaf(var: Var) -> z3.ExprRef:
            if var.path in fixed:
                return python_to_z3(fixed[var.path], var.sort.kind, self.ctx, var.sort.enum)
            return z3.Const(var.path, leaf_sort(var.sort, self.ctx))

        formula, _ = rail.to_z3(self.ctx, leaf, self._z3cache)
        return formula

    def _formulas(self, fixed: Mapping[str, Any], skip: tuple[str, ...]) -> list[z3.BoolRef]:
        rails = [self._formula(r, fixed) for n, r in self.masked if n not in skip]
        return rails + self._type_facts(fixed)

    def _type_facts(self, fixed: Mapping[str, Any], only: set[str] | None = None) -> list[z3.BoolRef]:
        """Bounds of the answer's number fields not yet written (of those in ``only`` if given)."""
        out: list[z3.BoolRef] = []
        for f in self.fields.values():
            if (
                f.path in fixed
                or not isinstance(f.typ, Int | Float)
                or (only is not None and f.path not in only)
            ):
                continue
            term = z3.Const(f.path, leaf_sort(sort_of_type(f.typ), self.ctx))
            for attr, op in (("ge", "__ge__"), ("gt", "__gt__"), ("le", "__le__"), ("lt", "__lt__")):
                bound = getattr(f.typ, attr, None)
                if bound is not None:
                    lit = (
                        z3.IntVal(bound, self.ctx)
                        if isinstance(f.typ, Int)
                        else python_to_z3(bound, "real", self.ctx)
                    )
                    out.append(getattr(term, op)(lit))
        return out


def _open_product(expr: Any, opened: set[str]) -> bool:
    """Whether the rail multiplies or divides two terms that both read an open field."""

    def reads(x: Any) -> bool:
        return any(isinstance(v, Var) and v.path in opened for v in walk(x))

    for node in walk(expr):
        if (
            isinstance(node, Arith)
            and node.op in ("*", "/", "//", "%")
            and reads(node.left)
            and reads(node.right)
        ):
            return True
        if isinstance(node, Pow) and node.exponent > 1 and reads(node.base):
            return True
    return False


def type_spans(typ: Type) -> Spans:
    """The values a number type allows, as spans."""
    lo: Bound = None
    hi: Bound = None
    for attr, closed in (("ge", True), ("gt", False)):
        bound = getattr(typ, attr, None)
        if bound is not None and (lo is None or Fraction(exact(bound)) >= lo[0]):
            lo = (Fraction(exact(bound)), closed)
    for attr, closed in (("le", True), ("lt", False)):
        bound = getattr(typ, attr, None)
        if bound is not None and (hi is None or Fraction(exact(bound)) <= hi[0]):
            hi = (Fraction(exact(bound)), closed)
    span = Span(lo, hi)
    return () if span.empty() else (span,)


def type_samples(typ: Type) -> list[Fraction | int]:
    """A few values a number type allows: the ends of its range (just inside an open end), and
    0, 1, -1, a million and minus a million where allowed (a product's other factor pinned at
    each of them bounds this one as loosely as such a sample can)."""
    spans = type_spans(typ)
    if not spans:
        return []
    (span,) = spans
    integer = isinstance(typ, Int)
    picks = [Fraction(v) for v in (0, 1, -1, 10**6, -(10**6))]
    for end, step in ((span.lo, 1), (span.hi, -1)):
        if end is not None:
            value, closed = end
            if integer:
                picks.append(Fraction(math.ceil(value) if step == 1 else math.floor(value)))
                picks.append(Fraction(math.floor(value) + 1 if step == 1 else math.ceil(value) - 1))
            else:
                picks.append(value if closed else value + Fraction(step, 1000))
    if span.lo is not None and span.hi is not None and not integer:
        picks.append((span.lo[0] + span.hi[0]) / 2)
    inside = intersect(spans, tuple(Span((v, True), (v, True)) for v in picks))
    values = sorted({s.lo[0] for s in inside if s.lo is not None})
    return [int(v) for v in values if v.denominator == 1] if integer else list(values)


def has_integer(s: Span) -> bool:
    """Does the span hold an integer?"""
    if s.lo is None or s.hi is None:
        return True
    (a, ca), (b, cb) = s.lo, s.hi
    first = math.ceil(a) if ca or a != math.ceil(a) else math.ceil(a) + 1
    return first < b or (first == b and cb)


def hull(spans: Spans) -> Interval | None:
    """The smallest interval holding every span (None for no span)."""
    if not spans:
        return None
    lo, hi = spans[0].lo, spans[-1].hi
    return Interval(
        None if lo is None else lo[0], None if hi is None else hi[0],
        lo is not None and not lo[1], hi is not None and not hi[1],
    )  # fmt: skip


_PRODUCTS = (z3.Z3_OP_MUL, z3.Z3_OP_DIV, z3.Z3_OP_IDIV, z3.Z3_OP_MOD, z3.Z3_OP_POWER)


def _open_consts(t: z3.ExprRef) -> bool:
    """Whether ``t`` mentions an unknown (an uninterpreted constant)."""
    if z3.is_const(t):
        return t.decl().kind() == z3.Z3_OP_UNINTERPRETED
    return any(_open_consts(c) for c in t.children())


def _nonlinear(t: z3.ExprRef) -> bool:
    """Whether ``t`` multiplies or divides two terms that both hold unknowns."""
    products = z3.is_app(t) and t.decl().kind() in _PRODUCTS
    if products and sum(1 for c in t.children() if _open_consts(c)) >= 2:
        return True
    return any(_nonlinear(c) for c in t.children())
