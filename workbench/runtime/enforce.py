"""Runtime enforcement of rails at ports (docs/architecture.md, "Rail language").

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
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import RailViolation
from workbench.flow.model import Flow, PortRef
from workbench.flow.port_rails import FlowRail, flow_rails
from workbench.spans import Span, Tracer

__all__ = ["RUN_RECORDS", "RailEnforcer", "RailRecord", "violation_message"]


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


# The rail records of the run in progress: checks made inside a node (an agent's tool calls)
# land in the run's result too. Tasks copy the context, so each run sees its own list.
RUN_RECORDS: ContextVar[list[RailRecord] | None] = ContextVar("workbench_run_records", default=None)


def violation_message(record: RailRecord, rail_text: str) -> str:
    """One sentence: the rail, the port, the offending values and the atoms that failed."""
    shown = ", ".join(f"{k}={v!r}" for k, v in record.values.items())
    atoms = "; ".join(record.failed_atoms) or rail_text
    return (
        f"rail '{record.name}' blocked {record.port}: {rail_text!r} does not hold "
        f"(failed: {atoms}) with {shown}"
    )


class RailEnforcer:
    """All of a flow's rails, packs and guarantees, parsed once and grouped by port."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.by_port: dict[PortRef, list[FlowRail]] = {}
        self.guarantees: dict[str, list[FlowRail]] = {}
        for rail in flow_rails(flow):
            if rail.kind == "guarantee":
                self.guarantees.setdefault(rail.port.node or "", []).append(rail)
            else:
                self.by_port.setdefault(rail.port, []).append(rail)

    def has_rails(self, ref: PortRef) -> bool:
        """True when any rail sits on ``ref``."""
        return ref in self.by_port

    def check(
        self,
        rails: list[FlowRail],
        env: Mapping[str, Any],
        port: str,
        tracer: Tracer,
        span: Span | None,
        records: list[RailRecord],
    ) -> list[tuple[FlowRail, RailRecord]]:
        """Check ``rails`` against ``env``; returns the failures (blocking ones are not raised here)."""
        failures = []
        for compiled in rails:
            # holds() is the fast path; only a failure pays for finding the atoms that failed.
            start = time.perf_counter_ns()
            ok = compiled.rail.holds(env)
            us = (time.perf_counter_ns() - start) / 1000
            atoms = () if ok else tuple(compiled.rail.check(env).failed_atoms)
            record = RailRecord(compiled.name, port, "pass" if ok else "fail", compiled.enforce, us, atoms)
            if not ok:
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
    def raise_blocking(failures: list[tuple[FlowRail, RailRecord]], modes: tuple[str, ...]) -> None:
        """Raise ``RailViolation`` for the first failure whose mode is in ``modes``."""
        for compiled, record in failures:
            if compiled.enforce in modes:
                raise RailViolation(violation_message(record, compiled.text))
