"""Pending approvals: a tool call marked ``approve: true`` waits in the run view for a person.

The run view hands ``PendingApprovals.ask`` to the executor as its ``approve=`` callback
(an async one: the run's event loop goes on while a call waits). Each call gets a card:
the agent node, the tool, the call id and the exact arguments that will be sent (already
checked against the tool's types and rails), shown as text. *Approve* sends them as they
are; *Send edited* sends the JSON in the editor, which the runtime checks against the
types and rails again (a refusal shows in the run's tool calls, the call does not run);
*Deny* sends the reason back to the model. Calls made in one turn are asked one at a time
by the runtime, each decided on its own. Cancelling the run cancels the wait: the card
goes away and nothing hangs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import panel as pn

from workbench.runtime.agent import Approve, Decision, Deny, Edit

from .text import message, text_pane

__all__ = ["ApprovalCard", "PendingApprovals"]

DEFAULT_REASON = "no reason given in the workbench app"  # the model hears "denied: " + this


class ApprovalCard:
    """One pending call: what it will send, an editor for the arguments, three buttons."""

    def __init__(
        self,
        node: str,
        tool: str,
        call_id: str,
        arguments: dict[str, Any],
        decide: Callable[[Decision], None],
    ) -> None:
        self.node, self.tool, self.call_id = node, tool, call_id
        self._decide = decide
        shown = json.dumps(arguments, indent=2, ensure_ascii=False, default=str)
        self.header = text_pane(
            f"{node}.{tool} waits for your approval (call {call_id}); it will send:",
            style="info",
            css_classes=["wb-approval-header"],
        )
        self.arguments = text_pane(shown, pre=True, css_classes=["wb-approval-arguments"])
        self.editor = pn.widgets.TextAreaInput(
            label="arguments to send instead (JSON)",
            value=shown,
            height=110,
            sizing_mode="stretch_width",
            css_classes=["wb-approval-edit"],
        )
        self.reason = pn.widgets.TextInput(
            placeholder="why not (sent to the model on Deny)",
            sizing_mode="stretch_width",
            css_classes=["wb-approval-reason"],
        )
        self.problem = text_pane(css_classes=["wb-approval-problem"])
        self.buttons = [
            pn.widgets.Button(label="Approve", color="success", width=90, css_classes=["wb-approve"]),
            pn.widgets.Button(label="Send edited", width=110, css_classes=["wb-edit"]),
            pn.widgets.Button(label="Deny", color="danger", width=80, css_classes=["wb-deny"]),
        ]
        approve, edit, deny = self.buttons
        approve.on_click(lambda _e: self.approve())
        # value_input: what is typed now (value follows only when the box loses focus)
        edit.on_click(lambda _e: self.edit(self.editor.value_input or self.editor.value or ""))
        deny.on_click(lambda _e: self.deny(self.reason.value_input or self.reason.value or ""))
        self.view = pn.Column(
            self.header,
            self.arguments,
            self.editor,
            pn.Row(*self.buttons),
            self.reason,
            self.problem,
            sizing_mode="stretch_width",
            css_classes=["wb-approval"],
            styles={"border": "2px solid #7c3aed", "border-radius": "6px", "padding": "4px"},
        )

    def approve(self) -> None:
        """Send the call with the arguments shown."""
        self._send(Approve())

    def edit(self, text: str) -> None:
        """Send the call with the arguments in ``text`` (JSON); a parse error stays on the card."""
        try:
            arguments = json.loads(text)
        except ValueError as exc:
            message(self.problem, f"not JSON: {exc}; nothing was sent", "error")
            return
        if not isinstance(arguments, dict):
            message(self.problem, "the arguments must be a JSON object; nothing was sent", "error")
            return
        self._send(Edit(arguments))

    def deny(self, reason: str = "") -> None:
        """Do not run the call; the model is told ``reason``."""
        self._send(Deny(reason.strip() or DEFAULT_REASON))

    def _send(self, decision: Decision) -> None:
        for button in self.buttons:
            button.disabled = True
        self._decide(decision)


class PendingApprovals(pn.viewable.Viewer):
    """The calls waiting for a decision, one card each; ``ask`` is the executor's approver.

    ``on_wait(node, call_id, waits)`` is told when a call starts and stops waiting.
    """

    def __init__(self, on_wait: Callable[[str, str, bool], None] | None = None, **params: Any) -> None:
        super().__init__(**params)
        self.on_wait = on_wait or (lambda _n, _c, _w: None)
        self.cards: list[ApprovalCard] = []
        self.column = pn.Column(sizing_mode="stretch_width", css_classes=["wb-approvals"])

    async def ask(self, node: str, tool: str, call_id: str, arguments: dict[str, Any]) -> Decision:
        """Show the call and wait for Approve, Edit or Deny (an ``Approver`` for the executor)."""
        loop = asyncio.get_running_loop()
        decided: asyncio.Future[Decision] = loop.create_future()

        def settle(decision: Decision) -> None:
            if not decided.done():
                decided.set_result(decision)

        def decide(decision: Decision) -> None:
            # Button callbacks may run on Panel's worker threads: hand the decision to the loop.
            loop.call_soon_threadsafe(settle, decision)

        card = ApprovalCard(node, tool, call_id, arguments, decide)
        self.cards.append(card)
        self.column.append(card.view)
        self.on_wait(node, call_id, True)
        try:
            return await decided  # a cancelled run cancels this wait too
        finally:
            self.cards.remove(card)
            self.column.remove(card.view)
            self.on_wait(node, call_id, False)

    def __panel__(self) -> Any:
        return self.column
