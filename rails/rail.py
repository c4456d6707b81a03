"""``Rail``: one parsed rail with its two backends, and ``parse_rail``.

A ``Rail`` holds the IR once and compiles the evaluator closure at parse time, so
``Rail.holds`` is one Python call per IR node. The Z3 side is built on demand, in
whatever context the caller owns (Z3 contexts are not thread-safe).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import z3

from . import ir
from .errors import RailValueError
from .evaluator import compile_bool, compile_explainer
from .parser import Scope, parse_ir
from .z3terms import Translator, sort_for

__all__ = ["Rail", "Verdict", "leaf_sort", "parse_rail"]


@dataclass(frozen=True)
class Verdict:
    """Result of a runtime check: ``ok`` and the source text of the atoms that failed."""

    ok: bool
    failed_atoms: tuple[str, ...] = ()
    rail: str = "rail"

    def __bool__(self) -> bool:
        return self.ok

    def message(self) -> str:
        """One line for an error: which rail and which of its conditions failed."""
        if self.ok:
            return f"rail '{self.rail}' holds"
        return f"rail '{self.rail}' failed: " + "; ".join(self.failed_atoms)


@dataclass(frozen=True, eq=False)
class Rail:
    """A parsed, sort-checked rail. Build with ``parse_rail``."""

    name: str
    text: str
    expr: ir.Expr = field(repr=False)
    scope: Scope = field(repr=False)
    names: frozenset[str] = field(default=frozenset())
    constants: frozenset[str] = field(default=frozenset())
    _fn: Callable[[Mapping[str, Any]], bool] = field(kw_only=True, repr=False)
    _explain: Callable[[Mapping[str, Any]], list[str]] = field(kw_only=True, repr=False)

    def holds(self, values: Mapping[str, Any]) -> bool:
        """True when the rail holds on ``values`` (the fastest path: no diagnostics).

        ``values`` maps each root name to a plain value (records as dicts, enums as str).
        """
        try:
            return bool(self._fn(values))
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            raise RailValueError(
                f"rail '{self.name}': cannot check {self._describe(values)}: {exc!r}"
            ) from None

    def check(self, values: Mapping[str, Any]) -> Verdict:
        """The verdict on ``values``, with the failed atoms' source text when false."""
        if self.holds(values):
            return Verdict(True, (), self.name)
        return Verdict(False, tuple(self._explain(values)), self.name)

    def _describe(self, values: Mapping[str, Any]) -> str:
        missing = sorted(self.names - set(values))
        return f"missing value for {missing[0]!r}" if missing else "a value of the wrong shape"

    def vars(self) -> list[ir.Var]:
        """Every leaf the rail reads, in order of appearance, without repeats."""
        seen: dict[str, ir.Var] = {}
        for node in ir.walk(self.expr):
            if isinstance(node, ir.Var):
                seen.setdefault(node.path, node)
        return list(seen.values())

    def strings_beyond_length(self) -> frozenset[str]:
        """Paths of string leaves the rail uses other than inside ``len()`` (the prover
        models strings used only through their length as integers)."""
        inside_len = {
            id(arg)
            for node in ir.walk(self.expr)
            if isinstance(node, ir.Call) and node.fn == "len"
            for arg in node.args
        }
        return frozenset(
            node.path
            for node in ir.walk(self.expr)
            if isinstance(node, ir.Var) and node.sort == ir.STR and id(node) not in inside_len
        )

    def to_z3(
        self, ctx: z3.Context, leaf: Callable[[ir.Var], z3.ExprRef], cache: dict | None = None
    ) -> tuple[z3.BoolRef, list[str]]:
        """The Z3 formula in ``ctx`` (leaves from ``leaf``) and the abstractions it
        needed; ``cache`` (one per context) shares literals and regexes across rails."""
        tr = Translator(ctx, leaf, cache)
        return tr.rail(self.expr), tr.abstractions

    def to_smtlib(self, bind: Mapping[str, str] | None = None) -> str:
        """SMT-LIB 2 text: one declaration per leaf (named by its path, or by the bound
        path when ``bind`` maps root names to paths) and the rail as an assertion."""
        ctx = z3.Context()
        decls: dict[str, z3.ExprRef] = {}

        def leaf(var: ir.Var) -> z3.ExprRef:
            root = (bind or {}).get(var.root, var.root)
            path = ".".join((root, *var.fields))
            if path not in decls:
                decls[path] = z3.Const(path, leaf_sort(var.sort, ctx))
            return decls[path]

        formula, _ = self.to_z3(ctx, leaf)
        solver = z3.Solver(ctx=ctx)
        solver.add(formula)
        return f"; rail '{self.name}': {self.text}\n" + solver.sexpr()


def leaf_sort(sort: ir.Sort, ctx: z3.Context) -> z3.SortRef:
    """Z3 sort of a leaf variable: lists of primitives are sequences, lists of records a
    length (``len`` is all a rail can ask of them)."""
    if sort.kind == "list":
        item = sort.item
        if item is None or item.kind in ("record", "list"):
            return z3.IntSort(ctx)
        return z3.SeqSort(sort_for(item, ctx))
    return sort_for(sort, ctx)


def parse_rail(text: str, scope: Scope, *, name: str = "rail") -> Rail:
    """Parse ``text`` against ``scope``; raises a ``RailError`` subclass naming the column."""
    expr, consts = parse_ir(text, scope, name)
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8")
    names = frozenset(node.root for node in ir.walk(expr) if isinstance(node, ir.Var))
    return Rail(
        name, text, expr, scope, names, consts, _fn=compile_bool(expr), _explain=compile_explainer(expr, text)
    )
