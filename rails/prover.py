"""Static reasoning over declared global variables: the five statuses of a rail.

The flow layer declares one path per port (``declare("analyst.order", Order)``), joins
wires (``equate``), adds the rails that hold upstream as labelled hypotheses
(``assume``) and asks for each rail's status (``prove``).

What keeps this fast at flow scale (a 50-node flow with 100 rails):

- a wire between leaves of the same sort *aliases* them (union-find): both ends are
  one Z3 variable, so a chain of pass-through nodes collapses and the same rail
  upstream and downstream becomes the same Z3 term. Only an int -> float wire, or two
  enums with different values, is an equation (labelled ``wire:a=b``);
- each query only sees its *cone*: the leaves connected to the rail's leaves through
  shared variables and hypotheses, and the hypotheses on them. Unconnected hypotheses
  cannot change the verdict (they share no variable) unless they are contradictory by
  themselves, which is reported when the rail that made them so is itself proved;
- the status is first asked of a plain solver (hypotheses asserted, so Z3 may solve
  equalities away); a solver with one literal per hypothesis, for unsat cores, is only
  built when the answer is unsat (``query.py``).

Statuses, by precedence:

1. ``unsupported``: the rail has no exact Z3 form, or Z3 answered ``unknown``
   (timeout, non-linear arithmetic...); ``reason`` says which.
2. ``vacuous``: the hypotheses contradict each other (the port is unreachable; ``core``
   lists the contradicting labels), or types and wires alone imply the rail.
3. ``conflict``: hypotheses + rail are unsatisfiable; ``core`` is a minimal set of
   hypothesis labels that contradict the rail.
4. ``proved``: the hypotheses imply the rail (``core``: the hypotheses the proof used).
5. ``enforced``: otherwise; ``counterexample`` maps each declared path the cone touches
   to a whole value (all record fields) that passes every hypothesis and breaks the
   rail. It is re-checked with the runtime evaluator and the declared types
   (``checked``); a counterexample that leans on an uninterpreted predicate and fails
   that check gives ``unsupported`` instead.

Rails that each get ``enforced`` may still admit no value together (checked at one port,
they block every run): ``together`` asks that of a set of hypotheses, with a minimal
core when none does, and ``components`` splits a set into groups that share no variable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import z3

from workbench.errors import UsageError
from workbench.types import Enum, Float, Int, List, Record, Str, Type

from . import ir
from .counterexample import confirm, model_value
from .feasible import FeasibleRange, feasible_range
from .parser import sort_of_type
from .query import Query, minimal_core
from .rail import Rail, leaf_sort
from .regex import UnsupportedRegex, to_z3
from .z3terms import UnsupportedRail
from .z3values import ValueNotRepresentable, enum_sort, python_to_z3, real_val

__all__ = ["STATUSES", "JointResult", "ProofResult", "Prover"]

STATUSES = ("proved", "enforced", "conflict", "vacuous", "unsupported")


@dataclass(frozen=True)
class ProofResult:
    """The status of one rail, with the evidence for it."""

    status: str
    counterexample: dict[str, Any] | None = None
    core: tuple[str, ...] = ()
    reason: str = ""
    checked: bool = False

    @property
    def conflict_with(self) -> tuple[str, ...]:
        """The labels a conflicting rail contradicts (empty unless ``conflict``)."""
        return self.core if self.status == "conflict" else ()


@dataclass(frozen=True)
class JointResult:
    """Whether some hypotheses can hold at once (``Prover.together``).

    ``status``: ``satisfiable`` (``witness``: a value per declared path they touch that
    passes them all; ``checked`` when the runtime evaluator agrees), ``conflict`` (``core``:
    a minimal set of contradicting labels, some of them among those asked about),
    ``unreachable`` (the other hypotheses contradict on their own; ``core``) or
    ``unknown`` (``reason``)."""

    status: str
    core: tuple[str, ...] = ()
    witness: dict[str, Any] | None = None
    reason: str = ""
    checked: bool = False


@dataclass
class _Leaf:
    term: z3.ExprRef
    typ: Type
    owner: str  # the declared path this leaf belongs to


@dataclass
class _Hyp:
    key: str  # unique; equals the label except for per-leaf type facts
    label: str  # what cores report: type:<declared path>, wire:a=b, or the assume label
    kind: str  # type | wire | assume
    leaves: frozenset[str]  # leaf paths it mentions
    build: Callable[[], tuple[z3.BoolRef, list[str]]]
    literal: z3.BoolRef
    rail: Rail | None = None
    bind: Mapping[str, str] | None = None
    beyond_length: frozenset[str] = frozenset()  # string leaves used other than by len()
    cache: tuple[int, z3.BoolRef, tuple[str, ...]] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class _Goal:
    formula: z3.BoolRef
    leaves: frozenset[str]
    beyond_length: frozenset[str]


class Prover:
    """Typed global variables, labelled hypotheses, and queries with a timeout each.

    One Z3 context per prover: use a prover from one thread at a time.
    """

    def __init__(self, timeout_ms: int = 2000) -> None:
        self.timeout_ms = timeout_ms
        self.ctx = z3.Context()
        self._leaves: dict[str, _Leaf] = {}
        self._declared: dict[str, Type] = {}
        self._parent: dict[str, str] = {}
        self._hyps: dict[str, _Hyp] = {}
        self._epoch = 0  # bumped by every alias, so cached translations are rebuilt
        self._cache: dict = {}  # Z3 literals and regexes shared by every translation
        self._roots: tuple[tuple[int, int], dict[str, list[_Hyp]]] = ((-1, -1), {})

    # -- variables ----------------------------------------------------------------------
    def declare(self, path: str, typ: Type) -> None:
        """Declare a global value (a port) ``path`` of type ``typ``: one Z3 variable per
        leaf field, and the type's bounds as hypothesis ``type:<path>``."""
        if path in self._declared or path in self._leaves:
            raise UsageError(f"{path!r} is declared twice")
        if not isinstance(typ, Type):
            raise UsageError(f"declare({path!r}) needs a workbench.types.Type, got {typ!r}")
        self._declared[path] = typ
        leaves: list[str] = []
        self._declare_leaves(path, path, typ, leaves)
        for leaf in leaves:  # one fact per leaf, so a query only pulls in the leaves it needs
            typ = self._leaves[leaf].typ
            beyond = frozenset({leaf}) if isinstance(typ, Str) and typ.pattern is not None else frozenset()
            build = self._type_builder(leaf)
            self._add(f"type:{leaf}", "type", frozenset({leaf}), build, label=f"type:{path}", beyond=beyond)

    def _type_builder(self, leaf: str) -> Callable[[], tuple[z3.BoolRef, list[str]]]:
        def build() -> tuple[z3.BoolRef, list[str]]:
            notes: list[str] = []
            facts = self._type_facts(self.term(leaf), self._leaves[leaf].typ, notes)
            return (z3.And(*facts) if facts else z3.BoolVal(True, self.ctx)), notes

        return build

    def _declare_leaves(self, owner: str, path: str, typ: Type, out: list[str]) -> None:
        if isinstance(typ, Record):
            for key, sub in typ.fields:
                self._declare_leaves(owner, f"{path}.{key}", sub, out)
            return
        term = z3.Const(path, leaf_sort(sort_of_type(typ), self.ctx))
        self._leaves[path] = _Leaf(term, typ, owner)
        self._parent[path] = path
        out.append(path)

    def _find(self, leaf: str) -> str:
        root = leaf
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[leaf] != root:  # path compression
            self._parent[leaf], leaf = root, self._parent[leaf]
        return root

    def term(self, leaf: str) -> z3.ExprRef:
        """The Z3 variable standing for leaf ``leaf`` (shared by everything wired to it)."""
        return self._leaves[self._find(leaf)].term

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
                    real = z3.ToReal(term) if z3.is_int(term) else term
                    out.append(getattr(real, op)(real_val(bound, self.ctx)))
        elif isinstance(typ, Str):
            if typ.max_len is not None:
                out.append(z3.Length(term) <= typ.max_len)
            if typ.pattern is not None:
                try:
                    out.append(z3.InRe(term, to_z3(typ.pattern, self.ctx)))
                except UnsupportedRegex as exc:  # leaving it out only weakens the hypothesis
                    notes.append(f"pattern {typ.pattern!r} not modelled: {exc}")
        elif isinstance(typ, List):
            length = term if z3.is_int(term) else z3.Length(term)
            out.append(length >= 0)
            if typ.max_items is not None:
                out.append(length <= typ.max_items)
        return out

    def _leaves_under(self, path: str) -> list[str]:
        if path in self._leaves:
            return [path]
        found = [p for p in self._leaves if p.startswith(path + ".")]
        if not found:
            raise UsageError(f"{path!r} is not declared")
        return found

    def equate(self, path_a: str, path_b: str) -> None:
        """A wire: the values at ``path_a`` and ``path_b`` are equal. Leaves of one sort
        become one variable; an int meeting a float, or two enums with different value
        sets, become an equation labelled ``wire:a=b``."""
        a_leaves, b_leaves = self._leaves_under(path_a), self._leaves_under(path_b)
        if [p[len(path_a) :] for p in a_leaves] != [p[len(path_b) :] for p in b_leaves]:
            raise UsageError(f"cannot equate {path_a!r} and {path_b!r}: their fields differ")
        mixed: list[tuple[str, str]] = []
        for pa, pb in zip(a_leaves, b_leaves):
            ta, tb = self._leaves[pa].term, self._leaves[pb].term
            if ta.sort() == tb.sort():
                ra, rb = self._find(pa), self._find(pb)
                if ra != rb:
                    self._parent[rb] = ra
                    self._epoch += 1
            elif (z3.is_arith(ta) and z3.is_arith(tb)) or all(
                isinstance(self._leaves[p].typ, Enum) for p in (pa, pb)
            ):
                mixed.append((pa, pb))
            else:
                raise UsageError(f"cannot equate {pa!r} and {pb!r}: {ta.sort()} vs {tb.sort()}")
        if mixed:
            leaves = frozenset(p for pair in mixed for p in pair)
            self._add(
                f"wire:{path_a}={path_b}", "wire", leaves, lambda: (z3.And(*map(self._same, mixed)), [])
            )

    def _same(self, pair: tuple[str, str]) -> z3.BoolRef:
        """Equality of two leaves of different sorts (an int arriving at a float port, or
        two enum sorts: equal when both hold the same value name)."""
        (pa, pb), (ta, tb) = pair, (self.term(pair[0]), self.term(pair[1]))
        if z3.is_arith(ta):
            return _as_float(ta, tb) if z3.is_int(ta) else _as_float(tb, ta)
        ea, eb = self._leaves[pa].typ, self._leaves[pb].typ
        assert isinstance(ea, Enum) and isinstance(eb, Enum)
        ca, cb = enum_sort(ea, self.ctx)[1], enum_sort(eb, self.ctx)[1]
        common = [v for v in ea.values if v in eb.values]
        return (
            z3.Or(*[z3.And(ta == ca[v], tb == cb[v]) for v in common])
            if common
            else z3.BoolVal(False, self.ctx)
        )

    # -- hypotheses ---------------------------------------------------------------------
    def assume(self, rail: Rail, bind: Mapping[str, str], label: str) -> None:
        """Add ``rail`` (its root names bound to declared paths) as hypothesis ``label``.

        A rail with uninterpreted parts is still used: they only weaken it (sound).
        """
        bind = dict(bind)
        leaves = self._rail_leaves(rail, bind)
        if label in self._hyps or label.startswith(("type:", "wire:")):
            raise UsageError(f"hypothesis label {label!r} is used twice or reserved")
        beyond = _bound_paths(rail.strings_beyond_length(), bind)
        build = lambda: self._translate(rail, bind)
        self._add(label, "assume", leaves, build, rail=rail, bind=bind, beyond=beyond)

    def _add(
        self,
        key: str,
        kind: str,
        leaves: frozenset[str],
        build: Callable[[], tuple[z3.BoolRef, list[str]]],
        *,
        label: str | None = None,
        rail: Rail | None = None,
        bind: Mapping[str, str] | None = None,
        beyond: frozenset[str] = frozenset(),
    ) -> None:
        if key in self._hyps:
            raise UsageError(f"hypothesis label {key!r} is used twice")
        literal = z3.Bool(f"[{key}]", self.ctx)
        self._hyps[key] = _Hyp(key, label or key, kind, leaves, build, literal, rail, bind, beyond)

    def _formula(self, hyp: _Hyp) -> tuple[z3.BoolRef, tuple[str, ...]]:
        if hyp.cache is None or hyp.cache[0] != self._epoch:
            try:
                formula, abstractions = hyp.build()
            except (UnsupportedRail, ValueNotRepresentable) as exc:
                raise UsageError(f"hypothesis {hyp.label!r} cannot be stated in Z3: {exc}") from None
            hyp.cache = (self._epoch, formula, tuple(abstractions))
        return hyp.cache[1], hyp.cache[2]

    def _rail_leaves(self, rail: Rail, bind: Mapping[str, str]) -> frozenset[str]:
        missing = sorted(rail.names - set(bind))
        if missing:
            raise UsageError(f"rail '{rail.name}': bind has no path for {missing[0]!r}")
        leaves = set()
        for var in rail.vars():
            path = ".".join((bind[var.root], *var.fields))
            if path not in self._leaves:
                where = f"rail '{rail.name}': {var.path!r} is bound to {path!r}"
                raise UsageError(f"{where}, which is not declared")
            leaves.add(path)
        return frozenset(leaves)

    def _translate(self, rail: Rail, bind: Mapping[str, str]) -> tuple[z3.BoolRef, list[str]]:
        def leaf(var: ir.Var) -> z3.ExprRef:
            path = ".".join((bind[var.root], *var.fields))
            found = self._leaves[path]
            term = self.term(path)
            want = var.sort.kind
            if want == "real" and z3.is_int(term):
                return z3.ToReal(term)
            if (want == "int" and not z3.is_int(term)) or (want == "real" and not z3.is_arith(term)):
                raise UsageError(
                    f"rail '{rail.name}': {var.path!r} is {want}, {path!r} is {found.typ.describe()}"
                )
            return term

        return rail.to_z3(self.ctx, leaf, self._cache)

    def translate(self, rail: Rail, bind: Mapping[str, str]) -> z3.BoolRef:
        """The Z3 formula of ``rail`` as the prover checks it (wired leaves merged)."""
        self._rail_leaves(rail, bind)
        return self._translate(rail, dict(bind))[0]

    def wired(self, rail: Rail, bind: Mapping[str, str]) -> list[tuple[str, str]]:
        """``(leaf, representative)`` for each leaf of the rail that a wire merged into
        another declared leaf's variable."""
        out = []
        for leaf in sorted(self._rail_leaves(rail, bind)):
            rep = self._find(leaf)
            if rep != leaf:
                out.append((leaf, rep))
        return out

    def labels(self) -> list[str]:
        """Every hypothesis label, in the order added."""
        return list(dict.fromkeys(h.label for h in self._hyps.values()))

    def _active(self, using: Iterable[str] | None) -> list[_Hyp]:
        if using is None:
            return list(self._hyps.values())
        wanted = set(using)
        unknown = sorted(wanted - {h.label for h in self._hyps.values()})
        if unknown:
            raise UsageError(f"unknown hypothesis label {unknown[0]!r}")
        return [h for h in self._hyps.values() if h.kind != "assume" or h.label in wanted]

    def _by_root(self) -> dict[str, list[_Hyp]]:
        """Every hypothesis under the variable of each leaf it mentions (rebuilt only after
        a wire or a new hypothesis: every query walks it)."""
        key = (self._epoch, len(self._hyps))
        if self._roots[0] != key:
            by_root: dict[str, list[_Hyp]] = {}
            for h in self._hyps.values():
                for leaf in h.leaves:
                    by_root.setdefault(self._find(leaf), []).append(h)
            self._roots = (key, by_root)
        return self._roots[1]

    def _cone(self, leaves: Iterable[str], hyps: list[_Hyp]) -> list[_Hyp]:
        """The hypotheses among ``hyps`` connected to ``leaves`` through shared (wired)
        variables."""
        by_root, allowed = self._by_root(), {h.key for h in hyps}
        seen: set[str] = set()
        chosen: set[str] = set()
        todo = list(leaves)
        while todo:
            root = self._find(todo.pop())
            if root in seen:
                continue
            seen.add(root)
            for h in by_root.get(root, ()):
                if h.key in allowed and h.key not in chosen:
                    chosen.add(h.key)
                    todo.extend(h.leaves)
        return [h for h in hyps if h.key in chosen]

    def components(self, labels: Iterable[str], *, using: Iterable[str] | None = None) -> list[list[str]]:
        """The ``assume``d hypotheses ``labels`` grouped by the variables they share,
        directly or through the hypotheses in use (``using``, types, wires): hypotheses in
        different groups hold or fail independently of each other."""
        wanted, members = self._members(labels)
        active = self._active(None if using is None else [*using, *wanted])
        groups: list[list[str]] = []
        placed: set[str] = set()
        for h in members:
            if h.label in placed:
                continue
            roots = {self._find(leaf) for c in self._cone(h.leaves, active) for leaf in c.leaves}
            group = [
                m.label
                for m in members
                if m.label not in placed and (m is h or any(self._find(leaf) in roots for leaf in m.leaves))
            ]
            placed.update(group)
            groups.append(group)
        return groups

    def _members(self, labels: Iterable[str]) -> tuple[list[str], list[_Hyp]]:
        """``labels`` without repeats, and their ``assume``d hypotheses."""
        wanted = list(dict.fromkeys(labels))
        members = [h for h in self._hyps.values() if h.kind == "assume" and h.label in wanted]
        missing = sorted(set(wanted) - {h.label for h in members})
        if missing:
            raise UsageError(f"unknown hypothesis label {missing[0]!r}")
        return wanted, members

    def relevant(
        self, rail: Rail, bind: Mapping[str, str], using: Iterable[str] | None = None
    ) -> list[tuple[str, str, Rail | None, z3.BoolRef]]:
        """``(label, kind, rail or None, Z3 formula)`` of each hypothesis ``prove`` uses
        (type facts of one declared path merged under its label)."""
        hyps = self._cone(self._rail_leaves(rail, bind), self._active(using))
        merged: dict[str, tuple[str, Rail | None, list[z3.BoolRef]]] = {}
        for h in hyps:
            formula = self._formula(h)[0]
            if z3.is_true(formula):
                continue
            merged.setdefault(h.label, (h.kind, h.rail, []))[2].append(formula)
        return [
            (label, kind, r, z3.And(*fs) if len(fs) > 1 else fs[0]) for label, (kind, r, fs) in merged.items()
        ]

    def _query(self, hyps: list[_Hyp], goal: _Goal | None = None, plain: bool = False) -> Query:
        """A solver for one question over ``hyps`` (and a goal, behind literals).

        Strings used only through ``len()`` and ``max_len`` in this question become
        integers (see ``Query``)."""
        strings = {
            self._find(leaf) for h in hyps for leaf in h.leaves if isinstance(self._leaves[leaf].typ, Str)
        }
        beyond = {self._find(leaf) for h in hyps for leaf in h.beyond_length}
        if goal is not None:
            strings |= {self._find(leaf) for leaf in goal.leaves if isinstance(self._leaves[leaf].typ, Str)}
            beyond |= {self._find(leaf) for leaf in goal.beyond_length}
        only_length = [self._leaves[root].term for root in sorted(strings - beyond)]
        formulas = [(h, self._formula(h)[0]) for h in hyps]
        return Query(self.ctx, self.timeout_ms, formulas, goal.formula if goal else None, plain, only_length)

    # -- queries ------------------------------------------------------------------------
    def prove(
        self, rail: Rail, bind: Mapping[str, str], *, using: Iterable[str] | None = None
    ) -> ProofResult:
        """The status of ``rail`` at the paths ``bind`` maps its names to.

        ``using`` restricts the ``assume``d hypotheses to these labels (type and wire
        hypotheses always apply); ``None`` uses all of them.
        """
        bind = dict(bind)
        leaves = self._rail_leaves(rail, bind)
        active = self._active(using)
        try:
            goal, abstractions = self._translate(rail, bind)
        except (UnsupportedRail, ValueNotRepresentable) as exc:
            return ProofResult("unsupported", reason=str(exc))
        cone = self._cone(leaves, active)
        target = _Goal(goal, leaves, _bound_paths(rail.strings_beyond_length(), bind))
        # Fast questions first, on a plain solver (hypotheses asserted, so Z3 may solve
        # equalities away); labelled literals, for cores, only once the answer is unsat.
        fast = self._query(cone, target, plain=True)
        res = fast.check(fast.neg)
        if res == z3.unknown:
            return _unknown("implication", fast)
        if res == z3.sat:
            model = fast.solver.model()  # the counterexample, unless the rail conflicts
            res = fast.check(fast.pos)
            if res == z3.unknown:
                return _unknown("rail with hypotheses", fast)
            if res == z3.sat:
                return self._enforced(rail, bind, leaves, cone, active, abstractions, model, fast.lengths)
            return self._conflict(cone, target)
        return self._proved_or_vacuous(cone, target)

    def _labelled(self, cone: list[_Hyp], goal: _Goal | None) -> tuple[Query, list[z3.BoolRef], Callable]:
        query = self._query(cone, goal)
        by_id = {h.literal.get_id(): h.label for h in query.hyps}

        def labels(core: list[z3.BoolRef]) -> tuple[str, ...]:
            return tuple(dict.fromkeys(by_id[c.get_id()] for c in core if c.get_id() in by_id))

        return query, [h.literal for h in query.hyps], labels

    def _conflict(self, cone: list[_Hyp], goal: _Goal) -> ProofResult:
        query, lits, labels = self._labelled(cone, goal)
        res = query.check(*lits, query.pos)
        if res != z3.unsat:
            return _unknown("rail with hypotheses (labelled)", query)
        core = labels(minimal_core(query, lits, [query.pos]))
        return ProofResult("conflict", core=core, reason="no value passes the hypotheses and this rail")

    def _proved_or_vacuous(self, cone: list[_Hyp], goal: _Goal) -> ProofResult:
        """The hypotheses imply the rail: say why (types alone, unreachable, or a proof)."""
        query, lits, labels = self._labelled(cone, goal)
        if query.check(*lits, query.neg) != z3.unsat:
            return _unknown("implication (labelled)", query)
        used = labels(list(query.solver.unsat_core()))
        if query.check(*[h.literal for h in query.hyps if h.kind != "assume"], query.neg) == z3.unsat:
            return ProofResult("vacuous", reason="always true by types and wires alone")
        res = query.check(*lits)
        if res == z3.unknown:
            return _unknown("hypotheses", query)
        if res == z3.unsat:
            core = labels(minimal_core(query, lits, []))
            reason = "the hypotheses contradict each other: unreachable"
            return ProofResult("vacuous", core=core, reason=reason)
        return ProofResult("proved", core=used)

    def together(
        self, labels: Iterable[str], *, using: Iterable[str] | None = None, witness: bool = True
    ) -> JointResult:
        """Can the ``assume``d hypotheses ``labels`` (say, every rail on one port) hold at
        once, with the ``using`` hypotheses (all of them if ``None``) and every type and
        wire? Rails that each pass their hypotheses may still admit no value together.

        Only the cone of ``labels`` is asked about. A ``conflict`` core is minimal and
        names at least one of ``labels``; when the other hypotheses contradict on their own
        the answer is ``unreachable``. ``witness=False`` skips building the witness.
        """
        wanted, members = self._members(labels)
        active = self._active(None if using is None else [*using, *wanted])
        leaves = frozenset().union(*(h.leaves for h in members))
        cone = self._cone(leaves, active)
        fast = self._query(cone, plain=True)
        res = fast.check()
        if res == z3.unknown:
            return JointResult("unknown", reason=_unknown("hypotheses together", fast).reason)
        if res == z3.sat:
            if not witness:
                return JointResult("satisfiable")
            built = self._example(fast.solver.model(), fast.lengths, cone, active, leaves)
            if isinstance(built, str):
                return JointResult("satisfiable", reason=f"witness could not be completed ({built})")
            example, rest = built
            problem = confirm(
                example, {p: self._declared[p] for p in example}, self._checkable(cone + rest, example)
            )
            return JointResult("satisfiable", witness=example, reason=problem or "", checked=problem is None)
        query, lits, names = self._labelled(cone, None)
        others = [h.literal for h in query.hyps if h.label not in wanted]
        res = query.check(*others)
        if res == z3.unsat:
            core = names(minimal_core(query, others, []))
            return JointResult("unreachable", core=core, reason="the other hypotheses contradict each other")
        if res == z3.unknown or query.check(*lits) != z3.unsat:
            return JointResult("unknown", reason=_unknown("hypotheses together (labelled)", query).reason)
        core = names(minimal_core(query, lits, []))
        return JointResult("conflict", core=core, reason="no value passes these hypotheses together")

    def _enforced(
        self,
        rail: Rail,
        bind: dict[str, str],
        leaves: frozenset[str],
        cone: list[_Hyp],
        active: list[_Hyp],
        abstractions: list[str],
        model: z3.ModelRef,
        lengths: dict[str, z3.ArithRef],
    ) -> ProofResult:
        """A counterexample over whole declared records, re-checked at runtime."""
        built = self._example(model, lengths, cone, active, leaves)
        if isinstance(built, str):
            return ProofResult("enforced", reason=f"counterexample could not be completed ({built})")
        example, rest = built
        types = {p: self._declared[p] for p in example}
        problem = confirm(example, types, self._checkable(cone + rest, example), rail, bind)
        if problem is None:
            return ProofResult("enforced", counterexample=example, checked=True)
        leaning = [a for h in cone + rest for a in self._formula(h)[1]] + list(abstractions)
        if leaning:
            return ProofResult("unsupported", counterexample=example, reason=f"{problem}; {leaning[0]}")
        return ProofResult("enforced", counterexample=example, checked=False, reason=problem)

    def _example(
        self,
        model: z3.ModelRef,
        lengths: dict[str, z3.ArithRef],
        cone: list[_Hyp],
        active: list[_Hyp],
        leaves: frozenset[str],
    ) -> tuple[dict[str, Any], list[_Hyp]] | str:
        """Whole declared records from ``model`` (which covers ``cone`` and ``leaves``), and
        the hypotheses of the fields completed outside it; or why they cannot be completed.

        The other fields of the records the cone touches share no variable with it, so
        their values come from a separate model of their own cone (no goal): together
        they satisfy every hypothesis on them.
        """
        roots = {self._find(leaf) for h in cone for leaf in h.leaves} | {self._find(leaf) for leaf in leaves}
        owners = {self._leaves[leaf].owner for h in cone for leaf in h.leaves}
        owners |= {self._leaves[leaf].owner for leaf in leaves}
        missing = [
            leaf
            for leaf, info in self._leaves.items()
            if info.owner in owners and self._find(leaf) not in roots
        ]
        rest: list[_Hyp] = []
        other = model
        if missing:
            rest = self._cone(missing, active)
            second = self._query(rest, plain=True)
            res = second.check()
            if res != z3.sat:
                return "z3 says unknown" if res == z3.unknown else "the other fields have no value"
            other = second.solver.model()
            lengths = {**lengths, **second.lengths}

        def model_for(leaf: str) -> z3.ModelRef:
            return model if self._find(leaf) in roots else other

        # strings the query only knew by their length: any string of that length will do
        override = {}
        for leaf, info in self._leaves.items() if lengths else ():
            n = lengths.get(self._find(leaf))  # keyed by the root leaf, the variable's name
            if n is not None and info.owner in owners:
                override[leaf] = "a" * model_for(leaf).eval(n, model_completion=True).as_long()
        paths = [p for p in self._declared if p in owners]
        return {p: model_value(p, self._declared[p], model_for, self.term, override) for p in paths}, rest

    def _checkable(
        self, hyps: list[_Hyp], example: Mapping[str, Any]
    ) -> list[tuple[str, Rail, Mapping[str, str]]]:
        """The assumed rails among ``hyps`` whose ports are all in ``example`` (the rest of a
        completion's cone holds by construction, on ports outside the example)."""
        return [
            (h.label, h.rail, h.bind)
            for h in hyps
            if h.rail is not None
            and h.bind is not None
            and {self._leaves[x].owner for x in h.leaves} <= example.keys()
        ]

    # -- feasibility --------------------------------------------------------------------
    def feasible_range(
        self, path: str, *, using: Iterable[str] | None = None, fixed: Mapping[str, Any] | None = None
    ) -> FeasibleRange:
        """Smallest and largest value of the numeric leaf ``path`` (the length, for a
        string or list leaf) that every hypothesis still allows, with the leaves in
        ``fixed`` pinned to known values (e.g. fields already decoded)."""
        if path not in self._leaves:
            raise UsageError(f"{path!r} is not a declared leaf")
        fixed = dict(fixed or {})
        formulas = self._cone_formulas([path, *fixed], using) + self.pins(fixed)
        return feasible_range(self.ctx, self.term(path), formulas, self.timeout_ms)

    def feasible(
        self, fixed: Mapping[str, Any] | None = None, *, using: Iterable[str] | None = None
    ) -> bool | None:
        """Can every hypothesis still hold with the leaves in ``fixed`` pinned?
        ``None`` when Z3 cannot tell in time."""
        fixed = dict(fixed or {})
        solver = z3.Solver(ctx=self.ctx)
        solver.set("timeout", self.timeout_ms)
        solver.add(*self._cone_formulas(list(fixed), using), *self.pins(fixed))
        res = solver.check()
        return None if res == z3.unknown else res == z3.sat

    def _cone_formulas(self, leaves: list[str], using: Iterable[str] | None) -> list[z3.BoolRef]:
        for leaf in leaves:
            if leaf not in self._leaves:
                raise UsageError(f"{leaf!r} is not a declared leaf")
        return [self._formula(h)[0] for h in self._cone(leaves, self._active(using))]

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
            try:
                out.append(self.term(path) == python_to_z3(value, sort.kind, self.ctx, sort.enum))
            except (ValueNotRepresentable, KeyError, TypeError, ValueError) as exc:
                raise UsageError(f"cannot pin {path!r} to {value!r}: {exc}") from None
        return out


def _as_float(i: z3.ArithRef, x: z3.ArithRef) -> z3.BoolRef:
    """``x`` is what rails read at a float port that got the int ``i``: the shortest
    decimal of ``float(i)``. That is ``i`` up to 2**53. Beyond, it is an even integer
    within a relative error of 2**-51 of ``i`` (rounding to a double, then to the shortest
    decimal, each moves it by at most half a unit in the last place): that is what is
    stated (sound; exact rounding would cost a case per binade). The even integers just
    above 2**53 are doubles, so counterexamples there are values a run can hold."""
    big, slack, real = 2**53, 2**51, z3.ToReal(i)
    half = x / 2
    return z3.Or(
        z3.And(i >= -big, i <= big, x == real),
        z3.And(
            z3.Or(i > big, i < -big),
            half == z3.ToReal(z3.ToInt(half)),
            z3.If(i > big, x * slack >= real * (slack - 1), x * slack <= real * (slack - 1)),
            z3.If(i > big, x * slack <= real * (slack + 1), x * slack >= real * (slack + 1)),
        ),
    )


def _bound_paths(paths: Iterable[str], bind: Mapping[str, str]) -> frozenset[str]:
    """Rail-side paths (``order.ticker``) as declared paths (``analyst.order.ticker``)."""
    out = set()
    for path in paths:
        root, _, rest = path.partition(".")
        out.add(f"{bind[root]}.{rest}" if rest else bind[root])
    return frozenset(out)


def _unknown(what: str, query: Query) -> ProofResult:
    reason = query.solver.reason_unknown()
    return ProofResult("unsupported", reason=f"{what}: z3 says unknown ({reason})")
