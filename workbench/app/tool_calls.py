"""An agent's tool calls as they happen, read from the run's own spans.

The agent runtime opens one ``execute_tool`` span per call (the tool, the call id and the
arguments as the model sent them) and one ``apply_guardrail`` span under it per rail
check; when the call span ends it carries the outcome (``workbench.agent.call.status``)
and the tool message (``gen_ai.tool.call.result``). ``ToolCalls`` keeps one line per call
from those spans, so the run view can list them while the run goes on; it is pure
bookkeeping (no Panel), fed by the run view's tracer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workbench.spans import Span

__all__ = ["ToolCall", "ToolCalls"]


@dataclass
class ToolCall:
    """One call as far as it got: ``status`` is ``running``/``waiting`` until the span ends."""

    node: str
    tool: str
    call_id: str
    arguments: str
    status: str = "running"
    result: str = ""
    edited: str | None = None
    failed_rails: list[str] = field(default_factory=list)

    def text(self) -> str:
        """Two lines: the call as sent, then what came of it."""
        head = f"{self.node}.{self.tool}({self.arguments})  [{self.call_id}]"
        if self.edited is not None:
            head += f"\n  edited to {self.edited}"
        if self.status in ("running", "waiting"):
            outcome = "waiting for approval" if self.status == "waiting" else "running..."
        else:
            outcome = self.status
            if self.failed_rails:  # refused by them, or (enforce: observe) only recorded
                rails = ", ".join(self.failed_rails)
                outcome += f" by rail {rails}" if self.status == "refused" else f" (rail {rails} failed)"
            # A denial's tool message starts with its outcome ("denied: <reason>"): say it once.
            outcome += f": {self.result.removeprefix(f'{self.status}: ')}"
        return f"{head}\n  -> {outcome}"


class ToolCalls:
    """Every tool call of one run, in the order they started; ``changed`` says when to redraw."""

    def __init__(self) -> None:
        self.calls: dict[str, ToolCall] = {}  # by execute_tool span id
        self.changed = False

    def started(self, span: Span, node: str) -> None:
        """An ``execute_tool`` span opened under agent node ``node``."""
        attrs = span.attributes
        self.calls[span.span_id] = ToolCall(
            node,
            str(attrs.get("gen_ai.tool.name", "?")),
            str(attrs.get("gen_ai.tool.call.id", "")),
            str(attrs.get("gen_ai.tool.call.arguments", "")),
        )
        self.changed = True

    def ended(self, span: Span) -> None:
        """An ``execute_tool`` span closed: its outcome and tool message."""
        call = self.calls.get(span.span_id)
        if call is None:
            return
        attrs = span.attributes
        call.status = str(attrs.get("workbench.agent.call.status") or span.status_message or "cancelled")
        call.result = str(attrs.get("gen_ai.tool.call.result", span.status_message or ""))
        edited = attrs.get("workbench.agent.call.edited_arguments")
        call.edited = None if edited is None else str(edited)
        self.changed = True

    def rail_checked(self, span: Span) -> None:
        """An ``apply_guardrail`` span closed under a call: remember the rails that failed."""
        call = self.calls.get(span.parent_id or "")
        name = span.attributes.get("workbench.rail.name")
        if call is not None and span.attributes.get("workbench.rail.verdict") == "fail" and name:
            if name not in call.failed_rails:
                call.failed_rails.append(str(name))
            self.changed = True

    def waiting(self, node: str, call_id: str, waits: bool) -> None:
        """The call ``call_id`` of ``node`` waits for a human (or no longer does)."""
        for call in self.calls.values():
            if call.node == node and call.call_id == call_id and call.status in ("running", "waiting"):
                call.status = "waiting" if waits else "running"
                self.changed = True

    def text(self) -> str:
        """Every call, oldest first."""
        return "\n".join(call.text() for call in self.calls.values())

    def summary(self) -> str:
        """What did not run as the model asked, for the run's status line; ``""`` when every
        call ran: ``1 tool call denied, 1 refused by rails`` (only the counts that are not
        zero; ``failed`` counts the others: errors, bad arguments, unknown tools)."""
        ended = [c.status for c in self.calls.values() if c.status not in ("ok", "running", "waiting")]
        if not ended:
            return ""
        denied, refused = ended.count("denied"), ended.count("refused")
        failed = len(ended) - denied - refused
        counts = [(denied, "denied"), (refused, "refused by rails"), (failed, "failed")]
        parts = [(n, what) for n, what in counts if n]
        first, what = parts[0]
        head = f"{first} tool call{'' if first == 1 else 's'} {what}"
        return ", ".join([head, *(f"{n} {what}" for n, what in parts[1:])])
