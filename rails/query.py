"""One solver for one question, as the prover asks it (see ``_Query``)."""

from __future__ import annotations

from typing import Any

import z3

from . import watchdog

__all__ = ["Query", "minimal_core"]


def minimal_core(query: Query, literals: list[z3.BoolRef], fixed: list[z3.BoolRef]) -> list[z3.BoolRef]:
    """Deletion-based minimisation of the solver's last unsat core (each try timed out
    like every query; a try that cannot decide keeps the literal)."""
    ids = {x.get_id() for x in literals}
    core = [c for c in query.solver.unsat_core() if c.get_id() in ids]
    i = 0
    while i < len(core):
        trial = core[:i] + core[i + 1 :]
        if query.check(*trial, *fixed) == z3.unsat:
            keep = {c.get_id() for c in query.solver.unsat_core()}
            core = [c for c in trial if c.get_id() in keep]
        else:
            i += 1
    return core


class Query:
    """One solver for one question: each distinct hypothesis formula behind its literal,
    the goal behind ``pos``/``neg``, and two guards.

    - Strings used only through their length become integers: Z3's string solver can
      take minutes (past its own timeout) to build a long witness string, e.g. for
      ``len(news) > 1000``; an integer length has no such problem.
    - Every check also has a watchdog that interrupts the context if Z3 overruns its
      timeout, so no query can hang the process.
    """

    def __init__(
        self,
        ctx: z3.Context,
        timeout_ms: int,
        formulas: list[tuple[Any, z3.BoolRef]],
        goal: z3.BoolRef | None,
        plain: bool = False,
        only_length: list[z3.ExprRef] | None = None,
    ) -> None:
        self.ctx, self.timeout_ms = ctx, timeout_ms
        self.solver = z3.Solver(ctx=ctx)
        self.solver.set("timeout", timeout_ms)
        distinct: dict[int, tuple[Any, z3.BoolRef]] = {}
        for h, f in formulas:
            if f.get_id() not in distinct and not z3.is_true(f):
                distinct[f.get_id()] = (h, f)
        self.hyps = [h for h, _ in distinct.values()]
        fs = [f for _, f in distinct.values()] + ([goal] if goal is not None else [])
        only_length = only_length or []
        self.lengths = {t.decl().name(): z3.Int(f"len({t.decl().name()})", ctx) for t in only_length}
        if self.lengths:
            subs = [(z3.Length(t), self.lengths[t.decl().name()]) for t in only_length]
            fs = [z3.substitute(f, *subs) for f in fs]
        if goal is not None:
            goal = fs.pop()
        for h, f in zip(self.hyps, fs):
            # plain: no cores wanted, so Z3 may solve equalities away (much faster)
            self.solver.add(f if plain else z3.Implies(h.literal, f))
        for n in self.lengths.values():
            self.solver.add(n >= 0)
        self.pos, self.neg = z3.Bool("[goal]", ctx), z3.Bool("[not goal]", ctx)
        if goal is not None:
            self.solver.add(z3.Implies(self.pos, goal), z3.Implies(self.neg, z3.Not(goal)))

    def check(self, *literals: z3.BoolRef) -> z3.CheckSatResult:
        """``solver.check`` under a watchdog (timeout + 50% + 0.5 s)."""
        job = watchdog.arm(self.timeout_ms * 1.5 / 1000 + 0.5, self.ctx)
        try:
            return self.solver.check(*literals)
        finally:
            watchdog.disarm(job)
