"""``explain``: the audit text behind ``workbench check --explain RAIL``.

The known weak point of SMT-checked guardrails is a wrong translation, not the solver,
so the reviewer sees the rail, the exact SMT-LIB it became, every hypothesis it was
checked under (with its own SMT-LIB) and the verdict with its evidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import z3

from .prover import ProofResult, Prover
from .rail import Rail

__all__ = ["explain", "standalone_prover"]


def standalone_prover(rail: Rail, timeout_ms: int = 2000) -> tuple[Prover, dict[str, str]]:
    """A prover with one declared path per name the rail uses (typed from its scope)."""
    prover = Prover(timeout_ms=timeout_ms)
    bind = {}
    for root in sorted(rail.names):
        prover.declare(root, rail.scope.names[root])
        bind[root] = root
    return prover, bind


def _indent(text: str, pad: str = "    ") -> str:
    return "\n".join(pad + line for line in text.strip().splitlines())


def explain(
    rail: Rail,
    prover: Prover | None = None,
    bind: Mapping[str, str] | None = None,
    *,
    using: Iterable[str] | None = None,
    result: ProofResult | None = None,
) -> str:
    """Human-readable audit of one rail: text, SMT-LIB, hypotheses, verdict.

    Without a ``prover`` the rail is checked against its scope's types alone.
    """
    if prover is None:
        prover, bind = standalone_prover(rail)
    bind = dict(bind or {root: root for root in rail.names})
    if result is None:
        result = prover.prove(rail, bind, using=using)
    lines = [f"rail '{rail.name}': {rail.text}"]
    if bind:
        lines.append("names: " + ", ".join(f"{k} -> {v}" for k, v in sorted(bind.items())))
    lines += ["SMT-LIB:", _indent(rail.to_smtlib(bind).split("\n", 1)[1])]
    wired = prover.wired(rail, bind)
    if wired:
        lines.append("wires (one variable for both ends):")
        lines += [f"  {leaf} is {rep}" for leaf, rep in wired]
        lines += ["as checked:", _indent(prover.translate(rail, bind).sexpr())]
    hyps = prover.relevant(rail, bind, using)
    lines.append(f"hypotheses ({len(hyps)}):")
    for label, kind, hyp_rail, formula in hyps:
        what = f"rail '{hyp_rail.name}': {hyp_rail.text}" if hyp_rail is not None else kind
        lines.append(f"  [{label}] {what}")
        lines.append(_indent(z3.simplify(formula).sexpr(), "      "))
    lines.append(f"verdict: {result.status}")
    if result.core:
        title = {"conflict": "contradicts", "vacuous": "contradicting", "proved": "proved from"}.get(
            result.status, "core"
        )
        lines.append(f"  {title}: {', '.join(result.core)}")
    if result.counterexample is not None:
        lines.append(f"  counterexample{'' if result.checked else ' (unconfirmed)'}:")
        for path, value in result.counterexample.items():
            lines.append(f"    {path} = {value!r}")
    if result.reason:
        lines.append(f"  reason: {result.reason}")
    return "\n".join(lines)
