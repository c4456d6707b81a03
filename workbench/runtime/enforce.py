"""Runtime enforcement of rails at ports (DESIGN §4-5).

Each rail is compiled once, when the executor plans the flow, by the rails layer's
evaluator; a check is then a call of a few microseconds. The names a rail may use at a
port: the value on the port (by port name), the node's other ports (its inputs, and its
other outputs for an output port), the flow's inputs and the constants. Nearer names
shadow farther ones.

Node ``guarantees`` are checked after the node's outputs exist and always block: a
broken promise is a bug in the node, not something to repair.

Every check becomes a ``rail.check`` event on the node's span (rail, port, verdict,
microseconds) and a ``RailRecord`` in the run result.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import RailViolation
from workbench.flow.model import Flow, PortRef, RailSpec
from workbench.tracing import Span, Tracer
from workbench.types import Type

__all__ = ["CompiledRail", "RailEnforcer", "RailRecord", "violation_message"]


@dataclass
class RailRecord:
    """One rail check: which rail, where, the verdict and what it cost."""

    name: str
    port: str
    verdict: str  # "pass" | "fail"
    enforce: str
    us: float
    failed_atoms: tuple[str, ...] = ()
    values: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json`` output."""
        out = {
            "name": self.name,
            "port": self.port,
            "verdict": self.verdict,
            "enforce": self.enforce,
            "us": round(self.us, 2),
        }
        if self.failed_atoms:
            out["failed_atoms"] = list(self.failed_atoms)
        return out


@dataclass
class CompiledRail:
    """A rail compiled for its port, with the names it reads."""

    spec: RailSpec
    rail: Any  # workbench.rails.Rail
    names: frozenset[str]


def _scope_at(flow: Flow, ref: PortRef) -> dict[str, Type]:
    """Names visible at a port, nearer ones shadowing farther ones."""
    names: dict[str, Type] = dict(flow.inputs)
    if ref.node is None:
        names.update(flow.outputs)
        return names
    node = flow.nodes[ref.node]
    names.update(node.inputs)
    if ref.port in node.outputs:
        names.update(node.outputs)
    names[ref.port] = node.port_type(ref.port)  # type: ignore[assignment]
    return names


def violation_message(record: RailRecord, rail_text: str) -> str:
    """One sentence: the rail, the port, the offending values and the atoms that failed."""
    shown = ", ".join(f"{k}={v!r}" for k, v in record.values.items())
    atoms = "; ".join(record.failed_atoms) or rail_text
    return (
        f"rail '{record.name}' blocked {record.port}: {rail_text!r} does not hold "
        f"(failed: {atoms}) with {shown}"
    )


class RailEnforcer:
    """All of a flow's rails and guarantees, compiled and grouped by port."""

    def __init__(self, flow: Flow) -> None:
        from workbench.rails import Scope, parse_rail

        self.flow = flow
        self.by_port: dict[PortRef, list[CompiledRail]] = {}
        for spec in flow.rails.values():
            rail = parse_rail(spec.check, Scope(_scope_at(flow, spec.on), flow.constants), name=spec.name)
            self.by_port.setdefault(spec.on, []).append(CompiledRail(spec, rail, frozenset(rail.names)))
        self.guarantees: dict[str, list[CompiledRail]] = {}
        for node in flow.nodes.values():
            if not node.guarantees or not node.outputs:
                continue
            first_out = PortRef(node.name, next(iter(node.outputs)))
            for i, text in enumerate(node.guarantees):
                name = f"{node.name}.guarantees[{i}]"
                spec = RailSpec(name, first_out, text, "block")
                rail = parse_rail(text, Scope(_scope_at(flow, first_out), flow.constants), name=name)
                self.guarantees.setdefault(node.name, []).append(
                    CompiledRail(spec, rail, frozenset(rail.names))
                )

    def has_rails(self, ref: PortRef) -> bool:
        """True when any rail sits on ``ref``."""
        return ref in self.by_port

    def check(
        self,
        rails: list[CompiledRail],
        env: Mapping[str, Any],
        port: str,
        tracer: Tracer,
        span: Span | None,
        records: list[RailRecord],
    ) -> list[tuple[CompiledRail, RailRecord]]:
        """Check ``rails`` against ``env``; returns the failures (blocking ones are not raised here)."""
        failures = []
        for compiled in rails:
            start = time.perf_counter_ns()
            verdict = compiled.rail.check(env)
            us = (time.perf_counter_ns() - start) / 1000
            record = RailRecord(
                compiled.spec.name,
                port,
                "pass" if verdict.ok else "fail",
                compiled.spec.enforce,
                us,
                tuple(verdict.failed_atoms),
            )
            if not verdict.ok:
                record.values = {n: env[n] for n in sorted(compiled.names) if n in env}
                failures.append((compiled, record))
            records.append(record)
            if span is not None:
                tracer.add_event(
                    span,
                    "rail.check",
                    {
                        "openinference.span.kind": "GUARDRAIL",
                        "workbench.rail.name": record.name,
                        "workbench.rail.port": port,
                        "workbench.rail.verdict": record.verdict,
                        "workbench.rail.enforce": record.enforce,
                        "workbench.rail.us": us,
                    },
                )
        return failures

    @staticmethod
    def raise_blocking(failures: list[tuple[CompiledRail, RailRecord]], modes: tuple[str, ...]) -> None:
        """Raise ``RailViolation`` for the first failure whose mode is in ``modes``."""
        for compiled, record in failures:
            if compiled.spec.enforce in modes:
                raise RailViolation(violation_message(record, compiled.spec.check))
