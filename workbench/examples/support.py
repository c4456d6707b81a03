"""Tools of the ``triage`` example flow: a support ticket in, a prioritised reply out.

Deterministic text rules, so the flow runs anywhere with no model; swap ``classify`` for
an llm node to compare a model against the rules.
"""

from __future__ import annotations

import re
from typing import Any

from workbench.runtime.trust import safe_tool

__all__ = ["classify", "prioritise", "redact", "summarise"]

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"\+?\d[\d ()-]{7,}\d")
_KEYWORDS = {
    "billing": ("invoice", "charge", "refund", "payment", "billing", "price"),
    "bug": ("error", "crash", "broken", "bug", "fails", "exception"),
}
_URGENT = ("urgent", "asap", "down", "outage", "immediately", "production")


@safe_tool
def redact(ticket: str) -> dict[str, Any]:
    """Replace e-mail addresses and phone numbers with placeholders."""
    text = _EMAIL.sub("[email]", ticket)
    return {"text": _PHONE.sub("[phone]", text)}


@safe_tool
def classify(text: str) -> dict[str, Any]:
    """Pick a category by keywords and an urgency from 0 to 3."""
    lower = text.lower()
    scores = {cat: sum(word in lower for word in words) for cat, words in _KEYWORDS.items()}
    best = max(scores, key=lambda cat: scores[cat])
    category = best if scores[best] else "other"
    urgency = min(3, sum(word in lower for word in _URGENT) + (1 if "!" in text else 0))
    return {"category": category, "urgency": urgency}


@safe_tool
def prioritise(urgency: int, tier: str) -> dict[str, Any]:
    """Priority from urgency, raised for paying tiers (enterprise at least 2)."""
    bonus = {"free": 0, "pro": 1, "enterprise": 2}[tier]
    return {"priority": min(3, max(urgency, bonus))}


@safe_tool
def summarise(text: str, category: str, priority: int) -> dict[str, Any]:
    """A short reply record: category, priority and the first sentence of the ticket."""
    first = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0]
    summary = first if len(first) <= 120 else first[:117] + "..."
    return {"reply": {"category": category, "priority": priority, "summary": summary}}
