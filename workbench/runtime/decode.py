"""``enforce: decode`` at an llm node: rails as token masks, with check-and-resample behind them.

Built once per llm node from the flow's rails on its output ports. Per run, ``bind`` pins the
known values (node inputs, flow inputs, constants), refuses rails that contradict each other
with them (``NodeError`` naming the rails, before any token is generated) and returns the
constraint a local model decodes with. Rails that cannot become masks, and backends that take
no masks (remote OpenAI-compatible models), are enforced by checking the answer and
generating again, a bounded number of times; the runtime's rail check after the node stays
the guarantee. The span says which way each rail was enforced: ``workbench.decode.rails``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from workbench.decoding import DecodeConflict, DecodeRails, RailsConstraint, answer_fields
from workbench.errors import NodeError
from workbench.flow.model import Node, PortRef
from workbench.rails import RailValueError

if TYPE_CHECKING:
    from workbench.flow.port_rails import FlowRail
    from workbench.spans import Span

__all__ = ["DEFAULT_ATTEMPTS", "DecodeEnforcer"]

DEFAULT_ATTEMPTS = 3  # generations per run when a decode rail is broken (max_attempts overrides)


class DecodeEnforcer:
    """One llm node's decode rails: the Z3 plan for masks and the check behind them."""

    def __init__(self, node: Node, rails: list[FlowRail]) -> None:
        self.node = node
        self.rails = rails
        self.plan = DecodeRails([(r.name, r.rail) for r in rails], answer_fields(node.outputs))
        self.attempts = max((r.max_attempts or DEFAULT_ATTEMPTS) for r in rails)

    @classmethod
    def for_node(cls, node: Node, enforcer: Any) -> DecodeEnforcer | None:
        """The node's decode rails (None when it has none or rails are off)."""
        if enforcer is None:
            return None
        rails = [
            r
            for port in node.outputs
            for r in enforcer.by_port.get(PortRef(node.name, port), [])
            if r.enforce == "decode"
        ]
        return cls(node, rails) if rails else None

    @classmethod
    def for_tool(cls, node: Node, tool: str, arguments: Any, rails: list[FlowRail]) -> DecodeEnforcer | None:
        """An agent tool's decode rails (``on: NODE.TOOL``): its arguments are the answer, read as
        ``TOOL.field`` (None when it has none, or no arguments to shape)."""
        decode = [r for r in rails if r.enforce == "decode"]
        if not decode or arguments is None:
            return None
        return cls(Node(f"{node.name}.{tool}", "tool", outputs={tool: arguments}), decode)

    def bind_tool(self, env: Mapping[str, Any], model: Any, span: Span) -> RailsConstraint | None:
        """``bind`` for a tool's calls: rails that contradict each other with these values leave
        the calls unshaped (the runtime's check refuses such a call), they do not end the node."""
        try:
            return self.bind(env, model, span)
        except NodeError:
            return None

    def bind(self, env: Mapping[str, Any], model: Any, span: Span) -> RailsConstraint | None:
        """The constraint for one generation (None for a backend without masks); records how
        each rail is enforced on ``span``. Raises ``NodeError`` when the rails contradict each
        other with these values."""
        known, demoted = self.plan.known(env)
        try:
            self.plan.conflict(known, tuple(demoted))
        except DecodeConflict as exc:
            raise NodeError(self.node.name, str(exc)) from None
        constraint: RailsConstraint | None = RailsConstraint(self.plan, known, tuple(demoted))
        if constraint is not None and getattr(model, "supports_decode_rails", False):
            report = constraint.report()
        else:
            report = {name: "reject" for name in self.plan.how}
            span.attributes["workbench.decode.backend"] = (
                "no token masks on this backend: checked after generation"
            )
            constraint = None
        span.attributes["workbench.decode.rails"] = json.dumps(report)
        reasons = {n: self.plan.why.get(n) or demoted.get(n) for n, how in report.items() if how == "reject"}
        if any(reasons.values()):
            span.attributes["workbench.decode.reject_reasons"] = json.dumps(
                {n: r for n, r in reasons.items() if r}
            )
        return constraint

    def broken(self, env: Mapping[str, Any], outputs: Mapping[str, Any]) -> list[str]:
        """Names of the decode rails the answer ``outputs`` breaks."""
        values = {**env, **outputs}
        out = []
        for r in self.rails:
            try:
                ok = r.rail.holds(values)
            except RailValueError:
                ok = False
            if not ok:
                out.append(r.name)
        return out
