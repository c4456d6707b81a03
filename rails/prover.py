"""Static reasoning over declared global variables: the five statuses of DESIGN §5.

The flow layer declares one path per port (``declare("analyst.order", Order)``), joins
wires (``equate``), adds the rails that hold upstream as labelled hypotheses
(``assume``) and asks for each rail's status (``prove``). Every hypothesis sits behind
an assumption literal, so one solver answers every query and unsat cores name labels.

Statuses, in the order they are decided:

1. ``unsupported``: the rail has no exact Z3 form, or Z3 answered ``unknown``
   (timeout, non-linear arithmetic...); ``reason`` says which.
2. ``vacuous``: the hypotheses contradict each other (the port is unreachable; ``core``
   lists the contradicting labels), or types and wires alone imply the rail.
3. ``conflict``: hypotheses + rail are unsatisfiable; ``core`` is a minimal set of
   hypothesis labels that contradict the rail.
4. ``proved``: the hypotheses imply the rail (``core``: the hypotheses the proof used).
5. ``enforced``: otherwise; ``counterexample`` maps each declared path to a value that
   passes every hypothesis and breaks the rail. It is re-checked with the runtime
   evaluator and the declared types (``checked``); a counterexample that leans on an
   uninterpreted predicate and fails that check gives ``unsupported`` instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import z3

from workbench.errors import UsageError
from workbench.types import Bool, Enum, Float, Int, List, Record, Str, Type

from . import ir
from .feasible import FeasibleRange, feasible_range
from .parser import sort_of_type
from .rail import Rail, leaf_sort
from .regex import UnsupportedRegex, to_z3
from .z3terms import UnsupportedRail
from .z3values import ValueNotRepresentable, from_model, python_to_z3, real_val

__all__ = ["STATUSES", "ProofResult", "Prover"]

STATUSES = ("proved", "enforced", "conflict", "vacuous", "unsupported")


@dataclass(frozen=True)
class ProofResult:
    """The status of one rail, with the evidence for it."""

    status: str
    counterexample: dict[str, Any] | None = None
    core: tuple[str, ...] = ()
    reason: str = ""
    checked: bool = False
    smtlib: str = field(default="", repr=False)

    @property
    def conflict_with(self) -> tuple[str, ...]:
        """The labels a conflicting rail contradicts (empty unless ``conflict``)."""
        return self.core if self.status == "conflict" else ()


@dataclass
class _Leaf:
    term: z3.ExprRef
    typ: Type


@dataclass
class _Hyp:
    label: str
    literal: z3.BoolRef
    formula: z3.BoolRef
    kind: str  # type | wire | assume
    rail: Rail | None = None
    bind: Mapping[str, str] | None = None
    abstractions: tuple[str, ...] = ()


class Prover:
    """Typed global variables, labelled hypotheses, and queries with a timeout each.

    One Z3 context per prover: use a prover from one thread at a time.
    """

    def __init__(self, timeout_ms: int = 2000) -> None:
        self.timeout_ms = timeout_ms
        self.ctx = z3.Context()
        self.solver = z3.Solver(ctx=self.ctx)
        self.solver.set("timeout", timeout_ms)
        self._leaves: dict[str, _Leaf] = {}
        self._declared: dict[str, Type] = {}
        self._hyps: dict[str, _Hyp] = {}

    # -- building -----------------------------------------------------------------------
    def declare(self, path: str, typ: Type) -> None:
        """Declare a global value (a port) ``path`` of type ``typ``: one Z3 variable per
        leaf field, and the type's bounds as hypothesis ``type:<path>``."""
        if path in self._declared:
            raise UsageError(f"{path!r} is declared twice")
        if not isinstance(typ, Type):
            raise UsageError(f"declare({path!r}) needs a workbench.types.Type, got {typ!r}")
        self._declared[path] = typ
        facts: list[z3.BoolRef] = []
        notes: list[str] = []
        self._declare_leaves(path, typ, facts, notes)
        if facts:
            self._add(f"type:{path}", z3.And(*facts), "type")

    def _declare_leaves(self, path: str, typ: Type, facts: list, notes: list[str]) -> None:
        if isinstance(typ, Record):
            for key, sub in typ.fields:
                self._declare_leaves(f"{path}.{key}", sub, facts, notes)
            return
        term = z3.Const(path, leaf_sort(sort_of_type(typ), self.ctx))
        self._leaves[path] = _Leaf(term, typ)
        facts.extend(self._type_facts(term, typ, notes))

    def _type_facts(self, term: z3.ExprRef, typ: Type, notes: list[str]) -> list[z3.BoolRef]:
        out: list[z3.BoolRef] = []
        if isinstance(typ, Int):
            if typ.ge is not None:
                out.append(term >= typ.ge)
            if typ.le is not None:
                out.append(term <= typ.le)
        elif isinstance(typ, Float):
            for key, op in (("ge", "__ge__"), ("gt", "__gt__"), ("le", "__le__"), ("lt", "__lt__")):
                bound = getattr(typ, key)
                if bound is not None:
                    out.append(getattr(term, op)(real_val(bound, self.ctx)))
        elif isinstance(typ, Str):
            if typ.max_len is not None:
                out.append(z3.Length(term) <= typ.max_len)
            if typ.pattern is not None:
                try:
                    out.append(z3.InRe(term, to_z3(typ.pattern, self.ctx)))
                except UnsupportedRegex as exc:
                    notes.append(f"pattern {typ.pattern!r} not modelled: {exc}")
        elif isinstance(typ, List):
            length = term if z3.is_int(term) else z3.Length(term)
            out.append(length >= 0)
            if typ.max_items is not None:
                out.append(length <= typ.max_items)
        return out

    def equate(self, path_a: str, path_b: str) -> None:
        """A wire: the values at ``path_a`` and ``path_b`` are equal (label ``wire:a=b``)."""
        a_leaves, b_leaves = self._leaves_under(path_a), self._leaves_under(path_b)
        if [p[len(path_a) :] for p in a_leaves] != [p[len(path_b) :] for p in b_leaves]:
            raise UsageError(f"cannot equate {path_a!r} and {path_b!r}: their fields differ")
        eqs = []
        for pa, pb in zip(a_leaves, b_leaves):
            ta, tb = self._leaves[pa].term, self._leaves[pb].term
            if ta.sort() != tb.sort():
                if z3.is_arith(ta) and z3.is_arith(tb):
                    ta, tb = z3.ToReal(ta) if z3.is_int(ta) else ta, z3.ToReal(tb) if z3.is_int(tb) else tb
                else:
                    raise UsageError(f"cannot equate {pa!r} and {pb!r}: {ta.sort()} vs {tb.sort()}")
            eqs.append(ta == tb)
        self._add(f"wire:{path_a}={path_b}", z3.And(*eqs), "wire")

    def assume(self, rail: Rail, bind: Mapping[str, str], label: str) -> None:
        """Add ``rail`` (its root names bound to declared paths) as hypothesis ``label``.

        A rail the solver cannot state exactly is still used where sound: its
        uninterpreted parts only weaken it.
        """
        try:
            formula, abstractions = rail.to_z3(self.ctx, self._leaf_for(rail, bind))
        except (UnsupportedRail, ValueNotRepresentable) as exc:
            raise UsageError(f"rail '{rail.name}' cannot be assumed: {exc}") from None
        self._add(label, formula, "assume", rail, dict(bind), tuple(abstractions))

    def _add(self, label: str, formula: z3.BoolRef, kind: str, rail=None, bind=None, abstractions=()) -> None:
        if label in self._hyps:
            raise UsageError(f"hypothesis label {label!r} is used twice")
        literal = z3.Bool(f"[{label}]", self.ctx)
        self.solver.add(z3.Implies(literal, formula))
        self._hyps[label] = _Hyp(label, literal, formula, kind, rail, bind, abstractions)

    def _leaves_under(self, path: str) -> list[str]:
        if path not in self._declared and path not in self._leaves:
            found = [p for p in self._leaves if p.startswith(path + ".")]
            if not found:
                raise UsageError(f"{path!r} is not declared")
            return found
        if path in self._leaves:
            return [path]
        return [p for p in self._leaves if p.startswith(path + ".")]

    def _leaf_for(self, rail: Rail, bind: Mapping[str, str]):
        missing = sorted(rail.names - set(bind))
        if missing:
            raise UsageError(f"rail '{rail.name}': bind has no path for {missing[0]!r}")

        def leaf(var: ir.Var) -> z3.ExprRef:
            path = ".".join((bind[var.root], *var.fields))
            found = self._leaves.get(path)
            if found is None:
                raise UsageError(
                    f"rail '{rail.name}': {var.path!r} is bound to {path!r}, which is not declared"
                )
            term = found.term
            want = var.sort.kind
            if want == "real" and z3.is_int(term):
                return z3.ToReal(term)
            if (want == "int" and not z3.is_int(term)) or (want == "real" and not z3.is_arith(term)):
                raise UsageError(
                    f"rail '{rail.name}': {var.path!r} is {want} but {path!r} is {found.typ.describe()}"
                )
            return term

        return leaf

    # -- queries ------------------------------------------------------------------------
    def labels(self) -> list[str]:
        """Every hypothesis label, in the order added."""
        return list(self._hyps)

    def _active(self, using: Iterable[str] | None) -> list[_Hyp]:
        if using is None:
            return list(self._hyps.values())
        wanted = set(using)
        unknown = sorted(wanted - set(self._hyps))
        if unknown:
            raise UsageError(f"unknown hypothesis label {unknown[0]!r}")
        return [h for h in self._hyps.values() if h.kind != "assume" or h.label in wanted]

    def _check(self, literals: list[z3.BoolRef]) -> z3.CheckSatResult:
        return self.solver.check(*literals)

    def _minimal_core(self, literals: list[z3.BoolRef], fixed: list[z3.BoolRef]) -> list[z3.BoolRef]:
        """Deletion-based minimisation of the solver's last unsat core."""
        core = [lit for lit in self.solver.unsat_core() if any(lit.eq(x) for x in literals)]
        i = 0
        while i < len(core):
            trial = core[:i] + core[i + 1 :]
            if self._check(trial + fixed) == z3.unsat:
                core = [lit for lit in self.solver.unsat_core() if any(lit.eq(x) for x in trial)]
                core = [c for c in trial if any(c.eq(x) for x in core)]
            else:
                i += 1
        return core

    def prove(
        self, rail: Rail, bind: Mapping[str, str], *, using: Iterable[str] | None = None
    ) -> ProofResult:
        """The status of ``rail`` at the paths ``bind`` maps its names to.

        ``using`` restricts the ``assume``d hypotheses to these labels (type and wire
        hypotheses always apply); ``None`` uses all of them.
        """
        try:
            goal, abstractions = rail.to_z3(self.ctx, self._leaf_for(rail, bind))
        except (UnsupportedRail, ValueNotRepresentable) as exc:
            return ProofResult("unsupported", reason=str(exc))
        hyps = self._active(using)
        lits = [h.literal for h in hyps]
        by_lit = {h.literal.get_id(): h.label for h in hyps}

        def labels(core: list[z3.BoolRef]) -> tuple[str, ...]:
            return tuple(by_lit[c.get_id()] for c in core if c.get_id() in by_lit)

        def unknown(what: str) -> ProofResult:
            return ProofResult(
                "unsupported", reason=f"{what}: z3 says unknown ({self.solver.reason_unknown()})"
            )

        self.solver.push()
        try:
            pos, neg = z3.Bool("[goal]", self.ctx), z3.Bool("[not goal]", self.ctx)
            self.solver.add(z3.Implies(pos, goal), z3.Implies(neg, z3.Not(goal)))
            res = self._check(lits)
            if res == z3.unknown:
                return unknown("hypotheses")
            if res == z3.unsat:
                core = labels(self._minimal_core(lits, []))
                return ProofResult(
                    "vacuous", core=core, reason="the hypotheses contradict each other: unreachable"
                )
            structural = [h.literal for h in hyps if h.kind != "assume"]
            if self._check([*structural, neg]) == z3.unsat:
                return ProofResult("vacuous", reason="always true by types and wires alone")
            res = self._check([*lits, pos])
            if res == z3.unknown:
                return unknown("rail with hypotheses")
            if res == z3.unsat:
                core = labels(self._minimal_core(lits, [pos]))
                return ProofResult(
                    "conflict", core=core, reason="no value passes the hypotheses and this rail"
                )
            res = self._check([*lits, neg])
            if res == z3.unknown:
                return unknown("implication")
            if res == z3.unsat:
                used = labels([c for c in self.solver.unsat_core() if not c.eq(neg)])
                return ProofResult("proved", core=used)
            model = self.solver.model()
        finally:
            self.solver.pop()
        example = self._counterexample(model)
        problem = self._confirm(example, rail, bind, hyps)
        if problem is None:
            return ProofResult("enforced", counterexample=example, checked=True)
        leaning = [a for h in hyps for a in h.abstractions] + abstractions
        if leaning:
            return ProofResult("unsupported", counterexample=example, reason=f"{problem}; {leaning[0]}")
        return ProofResult("enforced", counterexample=example, checked=False, reason=problem)

    # -- counterexamples ----------------------------------------------------------------
    def _counterexample(self, model: z3.ModelRef) -> dict[str, Any]:
        return {path: self._value(path, typ, model) for path, typ in self._declared.items()}

    def _value(self, path: str, typ: Type, model: z3.ModelRef) -> Any:
        if isinstance(typ, Record):
            return {key: self._value(f"{path}.{key}", sub, model) for key, sub in typ.fields}
        term = self._leaves[path].term
        val = model.eval(term, model_completion=True)
        if isinstance(typ, List):
            if z3.is_int(term):
                return [_default(typ.item)] * max(0, val.as_long())
            n = model.eval(z3.Length(term), model_completion=True).as_long()
            kind = sort_of_type(typ.item).kind
            return [from_model(model.eval(term[i], model_completion=True), kind) for i in range(n)]
        return from_model(val, sort_of_type(typ).kind)

    def _confirm(
        self, example: dict[str, Any], rail: Rail, bind: Mapping[str, str], hyps: list[_Hyp]
    ) -> str | None:
        """Why ``example`` is not a real counterexample, or None when it is one."""
        for path, typ in self._declared.items():
            try:
                typ.validate(example[path], path)
            except Exception as exc:
                return f"counterexample breaks a declared type ({exc})"
        for h in hyps:
            if h.rail is not None and h.bind is not None and not h.rail.holds(_values(example, h.bind)):
                return f"counterexample breaks hypothesis {h.label!r} at runtime"
        if rail.holds(_values(example, bind)):
            return "counterexample does not break the rail at runtime"
        return None

    # -- feasibility --------------------------------------------------------------------
    def feasible_range(
        self,
        path: str,
        *,
        using: Iterable[str] | None = None,
        fixed: Mapping[str, Any] | None = None,
    ) -> FeasibleRange:
        """Smallest and largest value of the numeric leaf ``path`` (the length, for a
        string leaf) over everything the hypotheses allow, with ``fixed`` leaves
        pinned to known values (e.g. fields already decoded)."""
        return feasible_range(self, path, using=using, fixed=fixed)

    def feasible(
        self, fixed: Mapping[str, Any] | None = None, *, using: Iterable[str] | None = None
    ) -> bool | None:
        """Can every hypothesis still hold with the leaves in ``fixed`` pinned?
        ``None`` when Z3 cannot tell in time."""
        lits = [h.literal for h in self._active(using)]
        self.solver.push()
        try:
            for eq in self.pins(fixed or {}):
                self.solver.add(eq)
            res = self._check(lits)
        finally:
            self.solver.pop()
        return None if res == z3.unknown else res == z3.sat

    def pins(self, fixed: Mapping[str, Any]) -> list[z3.BoolRef]:
        """Equalities pinning leaf paths to plain values."""
        out = []
        for path, value in fixed.items():
            leaf = self._leaves.get(path)
            if leaf is None:
                raise UsageError(f"{path!r} is not a declared leaf")
            sort = sort_of_type(leaf.typ)
            if sort.kind in ("list", "record"):
                raise UsageError(f"cannot pin {path!r}: only primitive leaves can be fixed")
            out.append(leaf.term == python_to_z3(value, sort.kind, self.ctx, sort.enum))
        return out


def _values(example: Mapping[str, Any], bind: Mapping[str, str]) -> dict[str, Any]:
    out = {}
    for root, path in bind.items():
        if path in example:
            out[root] = example[path]
            continue
        for top, val in example.items():
            if path.startswith(top + "."):
                for key in path[len(top) + 1 :].split("."):
                    val = val[key]
                out[root] = val
                break
    return out


def _default(typ: Type) -> Any:
    """The simplest value of a type (used to fill lists Z3 only knows the length of)."""
    if isinstance(typ, Record):
        return {k: _default(t) for k, t in typ.fields}
    if isinstance(typ, Int):
        return typ.ge if typ.ge is not None else (min(0, typ.le) if typ.le is not None else 0)
    if isinstance(typ, Float):
        return float(typ.ge if typ.ge is not None else 0.0)
    if isinstance(typ, Bool):
        return False
    if isinstance(typ, Enum):
        return typ.values[0]
    if isinstance(typ, List):
        return []
    return ""
