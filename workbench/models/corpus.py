"""Synthetic corpus for the built-in tiny model: the example flows' tasks as chat pairs.

Two tool-free tasks, each a user prompt (exactly what the flow's llm node renders) and
the JSON answer the node's single output port expects, and one agent task:

- ``trader``: ``News: ...\\nCash: ...\\nPropose one order as JSON.`` ->
  ``{"side": ..., "ticker": ..., "qty": ..., "price": ...}`` (the ``Order`` type of
  the trader flow, keys in field order). Good news -> buy, bad news -> sell, neutral -> hold.
- ``triage``: ``Ticket: ...\\nClassify the ticket as JSON.`` ->
  ``{"category": ..., "urgency": ...}`` (the triage flow's ``Category`` and urgency 0-3).
- ``desk``: the desk flow's agent node, a whole tool-calling transcript: the agent's
  system message, ``News: ...`` with the cash, a ``quote`` call, its ``tool`` answer, a
  ``buy`` call within the cash on good news (none on bad or neutral news), its answer
  (filled, refused by the ``cap`` rail, or denied by the approver), then the ``Result``
  JSON. Tool calls are written as the tiny model's chat template writes them.

Everything is drawn from a ``random.Random(seed)``, so a seed names a corpus. The
held-out phrasings (``heldout_templates=True``) never occur in training data: the
evaluation reports figures on both the training phrasings (fresh tickers, prices and
cash) and those unseen phrasings.

Order sizing rule (what "sensible" means in the data): spend about a fifth of the cash,
``qty = floor(0.2 * cash / price)`` rounded down to one significant digit (37 -> 30);
when that is 0 on a buy or sell, size to what the whole cash allows; ``hold`` orders
have ``qty`` 0. A small share (``OVERSPEND_RATE``) of orders deliberately break the
budget (qty about 1.5x what the cash allows), because real analysts do, and the flow's
``budget``/``cap`` rails exist to catch exactly that.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DESK_TOOLS",
    "ORDER_SCHEMA",
    "OVERSPEND_RATE",
    "TICKET_SCHEMA",
    "Example",
    "desk_messages",
    "make_corpus",
    "make_desk_example",
    "make_ticket_example",
    "make_trader_example",
    "order_within_cash",
    "trader_prompt",
]

OVERSPEND_RATE = 0.04  # share of trader answers that deliberately exceed the cash

ORDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "side": {"type": "string", "enum": ["buy", "sell", "hold"]},
        "ticker": {"type": "string", "pattern": "^[A-Z]{1,5}$"},
        "qty": {"type": "integer", "minimum": 0},
        "price": {"type": "number", "exclusiveMinimum": 0},
    },
    "required": ["side", "ticker", "qty", "price"],
    "additionalProperties": False,
}

TICKET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": ["billing", "bug", "other"]},
        "urgency": {"type": "integer", "minimum": 0, "maximum": 3},
    },
    "required": ["category", "urgency"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class Example:
    """One chat pair (the user prompt, the JSON answer, the labels behind it), or with
    ``turns`` a whole agent transcript after the prompt: assistant turns (``tool_calls``
    or the final answer ``answer``) and ``tool`` messages, offered ``tools``."""

    task: str
    prompt: str
    answer: str
    labels: dict[str, Any]
    system: str | None = None
    turns: tuple[dict[str, Any], ...] = ()
    tools: tuple[dict[str, Any], ...] = ()

    def messages(self, with_answer: bool = True) -> list[dict[str, Any]]:
        """The example as chat messages (optionally without the assistant turns)."""
        msgs: list[dict[str, Any]] = [{"role": "system", "content": self.system}] if self.system else []
        msgs.append({"role": "user", "content": self.prompt})
        if with_answer:
            msgs += list(self.turns) or [{"role": "assistant", "content": self.answer}]
        return msgs


# --- trader -----------------------------------------------------------------------------

_SYLLABLES = [
    "ac",
    "me",
    "glo",
    "bex",
    "ini",
    "tech",
    "vo",
    "lar",
    "zen",
    "ith",
    "nor",
    "tal",
    "qua",
    "dra",
    "pex",
    "sol",
    "ium",
    "kor",
    "ve",
    "nix",
    "tra",
    "mo",
    "cor",
    "bio",
    "gen",
    "ar",
]
_SUFFIXES = [
    "Corp",
    "Inc",
    "Holdings",
    "Group",
    "Labs",
    "Systems",
    "Energy",
    "Motors",
    "Foods",
    "Pharma",
    "Bank",
    "Mining",
    "Airlines",
    "Retail",
    "Networks",
]

_GOOD = [
    "{T} shares jump {pct}% to ${P} after record quarterly earnings.",
    "{N} ({T}) beats revenue estimates; the stock trades at ${P}.",
    "Analysts upgrade {T} to outperform with shares at ${P}.",
    "{N} wins a major government contract, {T} rises to ${P}.",
    "{T} raises full-year guidance and climbs {pct}% to ${P}.",
    "{N} announces a large buyback; {T} is at ${P}.",
    "Regulators approve {N}'s new drug, sending {T} up {pct}% to ${P}.",
    "{T} surges to ${P} on strong demand for its products.",
    "{N} reports profit well above forecasts. {T} last traded at ${P}.",
    "{T} rallies {pct}% to ${P} after a takeover offer.",
]
_BAD = [
    "{T} plunges {pct}% to ${P} as regulators open a probe.",
    "{N} misses earnings estimates; {T} falls to ${P}.",
    "{N} recalls its flagship product and {T} drops to ${P}.",
    "The CEO of {N} resigns amid an accounting scandal; {T} trades at ${P}.",
    "{T} cuts its forecast and slides {pct}% to ${P}.",
    "Analysts downgrade {T} to sell with shares at ${P}.",
    "{N} loses a key lawsuit, {T} sinks to ${P}.",
    "{T} tumbles to ${P} after a data breach at {N}.",
    "{N} warns of weak demand. {T} last traded at ${P}.",
    "{T} crashes {pct}% to ${P} as a major customer leaves.",
]
_NEUTRAL = [
    "{T} trades flat at ${P} ahead of its annual meeting.",
    "{N} ({T}) names a new board member; shares steady at ${P}.",
    "{T} is unchanged at ${P} in quiet trading.",
    "{N} will report earnings next month; {T} holds at ${P}.",
    "{T} moves sideways at ${P} as investors wait for news.",
    "{N} opens a new office. {T} last traded at ${P}.",
    "{T} ends the session at ${P}, little changed.",
    "{N} confirms its dividend; {T} is steady at ${P}.",
]
# Phrasings kept out of training: the evaluation's "unseen phrasings" set.
_GOOD_HELDOUT = [
    "Strong sales lift {N}: {T} gains {pct}% to ${P}.",
    "{T} soars to ${P} after a record year.",
]
_BAD_HELDOUT = [
    "Weak sales hit {N}: {T} loses {pct}% to ${P}.",
    "{T} falls sharply to ${P} after a profit warning.",
]
_NEUTRAL_HELDOUT = [
    "{T} is flat at ${P} in a calm market.",
    "No change for {N}: {T} stays at ${P}.",
]
_PREFIXES = ["", "", "", "", "Breaking: ", "Update: ", "Markets: ", "Midday: "]
_SUFFIX_NOTES = [
    "",
    "",
    "",
    "",
    " Volume was heavy.",
    " Markets were mixed.",
    " Trading was light.",
    " The wider index rose.",
    " The wider index fell.",
]
_SYSTEMS = [None] * 8 + ["You are a trading analyst.", "Answer with JSON only."]


def _ticker(rng: random.Random) -> str:
    """A random ticker of 2-5 capital letters (most real tickers are 3-4)."""
    n = rng.choices([2, 3, 4, 5], weights=[1, 4, 4, 1])[0]
    return "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(n))


def _company(rng: random.Random) -> str:
    """A made-up company name such as ``Glotech Holdings``."""
    stem = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3)))
    return f"{stem.capitalize()} {rng.choice(_SUFFIXES)}"


def _loguniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _floor_one_digit(n: int) -> int:
    """Round a positive integer down to one significant digit (37 -> 30, 4 -> 4)."""
    if n < 10:
        return n
    scale = 10 ** (len(str(n)) - 1)
    return (n // scale) * scale


def _render_number(value: float, rng: random.Random) -> str:
    """The cash as a template renders it: ``2500.0`` for a float, ``2500`` for an int."""
    if value == int(value) and rng.random() < 0.4:
        return str(int(value))
    return json.dumps(float(value))


def trader_prompt(news: str, cash: str) -> str:
    """The trader flow's analyst prompt, exactly as the flow's template renders it."""
    return f"News: {news}\nCash: {cash}\nPropose one order as JSON."


def order_within_cash(order: dict[str, Any], cash: float) -> bool:
    """True when ``qty * price <= cash`` (the flow's ``budget`` rail)."""
    return order["qty"] * order["price"] <= cash + 1e-9


def make_trader_example(rng: random.Random, heldout_templates: bool = False) -> Example:
    """One trader example: news with a ticker and a price, the cash, and the order."""
    side = rng.choice(["buy", "sell", "hold"])
    if heldout_templates:
        pool = {"buy": _GOOD_HELDOUT, "sell": _BAD_HELDOUT, "hold": _NEUTRAL_HELDOUT}[side]
    else:
        pool = {"buy": _GOOD, "sell": _BAD, "hold": _NEUTRAL}[side]
    ticker = _ticker(rng)
    price = round(_loguniform(rng, 1.0, 900.0), rng.choice([0, 1, 2, 2]))
    price = max(price, 1.0)
    pct = rng.randint(2, 25)
    news = rng.choice(pool).format(T=ticker, N=_company(rng), P=json.dumps(float(price)), pct=pct)
    news = rng.choice(_PREFIXES) + news + rng.choice(_SUFFIX_NOTES)
    cash = round(_loguniform(rng, 100.0, 200000.0), rng.choice([-2, -1, 0, 1, 2]))
    cash = max(cash, 10.0)
    if side == "hold":
        qty = 0
    else:
        qty = _floor_one_digit(int(0.2 * cash // price))
        if qty == 0:
            qty = int(cash // price)
        if rng.random() < OVERSPEND_RATE:
            qty = _floor_one_digit(int(1.5 * cash // price) + 1)
            qty = max(qty, int(cash // price) + 1)
    order = {"side": side, "ticker": ticker, "qty": qty, "price": float(price)}
    prompt = trader_prompt(news, _render_number(cash, rng))
    return Example("trader", prompt, json.dumps(order), {"cash": float(cash), **order}, rng.choice(_SYSTEMS))


# --- triage -----------------------------------------------------------------------------

# Categories and urgency follow the triage example flow's types (Category: billing, bug,
# other; urgency 0-3), so an llm node can stand in for its ``classify`` tool.
_TICKETS: dict[str, list[str]] = {
    "billing": [
        "I was charged twice for my {plan} plan this month.",
        "My invoice for {month} shows the wrong amount.",
        "Please refund the last payment on my {plan} plan.",
        "The card payment for {month} failed but money left my account.",
    ],
    "bug": [
        "The {page} page crashes when I click save.",
        "Export to CSV produces an empty file since {month}.",
        "The app shows an error on the {page} page after the update.",
        "Search returns nothing on the {page} page.",
    ],
    "other": [
        "Please change the email address on my {plan} account.",
        "How do I delete my account and all my data?",
        "It would be great to have a dark mode on the {page} page.",
        "Could you add export to PDF for the {page} page?",
    ],
}
_PAGES = ["dashboard", "reports", "settings", "billing", "profile", "search", "orders"]
_PLANS = ["basic", "pro", "team", "enterprise"]
_MONTHS = ["January", "March", "May", "July", "September", "November"]
# urgency -> phrases that signal it (0: no hurry ... 3: an emergency)
_URGENCY_NOTES = {
    0: ["No rush.", "Whenever you have time."],
    1: ["", "Thanks in advance.", "Thanks."],
    2: ["Please look at this soon.", "This is blocking some of our work."],
    3: ["This is urgent!", "Our whole team is blocked.", "We are losing money."],
}


def make_ticket_example(rng: random.Random) -> Example:
    """One triage example: a support ticket and its category and urgency (0-3)."""
    category = rng.choice(sorted(_TICKETS))
    text = rng.choice(_TICKETS[category]).format(
        page=rng.choice(_PAGES), plan=rng.choice(_PLANS), month=rng.choice(_MONTHS)
    )
    urgency = rng.choice([0, 1, 1, 2, 3])
    text = f"{text} {rng.choice(_URGENCY_NOTES[urgency])}".strip()
    answer = {"category": category, "urgency": urgency}
    return Example("triage", f"Ticket: {text}\nClassify the ticket as JSON.", json.dumps(answer), answer)


# --- desk (an agent with tools) --------------------------------------------------------

# The desk example flow's tools as its agent node offers them, and how the agent asks for
# the answer (a test checks both against workbench.runtime.agent, which writes them).
_TICKER_SCHEMA = {"type": "string", "pattern": "^(?:[A-Z]{1,5})$"}
DESK_TOOLS: tuple[dict[str, Any], ...] = (
    {"type": "function", "function": {
        "name": "quote",
        "parameters": {"type": "object", "properties": {"ticker": _TICKER_SCHEMA},
                       "required": ["ticker"], "additionalProperties": False},
        "description": "The last price of a ticker"}},
    {"type": "function", "function": {
        "name": "buy",
        "parameters": {"type": "object", "properties": {
            "ticker": _TICKER_SCHEMA, "qty": {"type": "integer", "minimum": 1},
            "price": {"type": "number", "exclusiveMinimum": 0}},
            "required": ["ticker", "qty", "price"], "additionalProperties": False},
        "description": "Buy qty shares of a ticker at a price"}},
)  # fmt: skip
_RESULT_SCHEMA = {
    "type": "object",
    "properties": {
        "ticker": _TICKER_SCHEMA,
        "qty": {"type": "integer", "minimum": 0},
        "note": {"type": "string"},
    },
    "required": ["ticker", "qty", "note"],
    "additionalProperties": False,
}
_AGENT_HOWTO = (
    "Use the tools to do the task. When you are done, reply without calling a tool, with "
    "only JSON that matches this JSON Schema: "
)
_DESK_GOOD = [
    "{T} shares jump after a record quarter",
    "{N} ({T}) beats revenue estimates",
    "Analysts upgrade {T} to outperform",
    "{N} wins a major government contract",
    "{T} raises full-year guidance",
    "{N} announces a large buyback",
    "Regulators approve {N}'s new drug, sending {T} up {pct}%",
    "{T} surges on strong demand for its products",
    "{N} reports profit well above forecasts",
    "{T} rallies {pct}% after a takeover offer",
]
_DESK_BAD = [
    "{T} plunges {pct}% as regulators open a probe",
    "{N} misses earnings estimates",
    "{N} recalls its flagship product",
    "{T} cuts its forecast",
    "Analysts downgrade {T} to sell",
    "{T} tumbles after a data breach at {N}",
]
_DESK_NEUTRAL = [
    "{T} trades flat ahead of its annual meeting",
    "{N} ({T}) names a new board member",
    "{T} is unchanged in quiet trading",
    "{N} opens a new office",
]


def desk_messages(news: str, cash: str) -> list[dict[str, str]]:
    """The desk agent's first messages, as the agent node renders them for ``news`` and ``cash``."""
    prompt = (
        f"News: {news}. Cash: {cash}. Look up the price, buy what the news suggests within the "
        "cash, then report what you bought."
    )
    return [
        {"role": "system", "content": _AGENT_HOWTO + json.dumps(_RESULT_SCHEMA)},
        {"role": "user", "content": prompt},
    ]


def _call(ident: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    call = {"id": ident, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
    return {"role": "assistant", "content": None, "tool_calls": [call]}


def _tool(ident: str, content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": ident, "content": content}


def _refusal(ticker: str, qty: int, price: float, cash: float) -> str:
    """The agent's message for a buy the desk's ``cap`` rail refused."""
    rail = "buy.qty * buy.price <= cash"
    args = {"ticker": ticker, "qty": qty, "price": price}
    return (
        f"refused, the call did not run: rail 'cap' blocked desk.buy: {rail!r} does not hold "
        f"(failed: {rail}) with buy={args!r}, cash={cash!r}"
    )


def make_desk_example(rng: random.Random) -> Example:
    """One desk transcript: quote, then (good news) a buy within the cash, then the Result."""
    side = rng.choices(["buy", "sell", "hold"], weights=[6, 2, 2])[0]
    pool = {"buy": _DESK_GOOD, "sell": _DESK_BAD, "hold": _DESK_NEUTRAL}[side]
    ticker = _ticker(rng)
    news = rng.choice(pool).format(T=ticker, N=_company(rng), pct=rng.randint(2, 25))
    price = max(round(_loguniform(rng, 1.0, 900.0), rng.choice([0, 1, 2, 2])), 1.0)
    cash = float(max(round(_loguniform(rng, 100.0, 200000.0), rng.choice([-2, -1, 0, 1, 2])), 10.0))
    turns: list[dict[str, Any]] = [_call("call_1", "quote", {"ticker": ticker})]
    outcome = "quoted"
    qty = 0
    if rng.random() < 0.04:  # a ticker the desk has no quote for
        turns.append(_tool("call_1", f"error: tool 'quote' raised KeyError: 'no quote for {ticker}'"))
        note = f"no quote for {ticker}"
    else:
        turns.append(_tool("call_1", json.dumps({"price": float(price)})))
        qty = _floor_one_digit(int(0.2 * cash // price)) or int(cash // price)
        if side != "buy":
            note, qty = f"no buy: the news is {'bad' if side == 'sell' else 'neutral'}", 0
        elif qty == 0:
            note = f"no buy: {ticker} costs more than the cash"
        else:
            n = 2
            if rng.random() < 0.08:  # an order over the cash, refused by the rail, then a smaller one
                over = max(_floor_one_digit(int(1.5 * cash // price) + 1), int(cash // price) + 1)
                turns.append(_call("call_2", "buy", {"ticker": ticker, "qty": over, "price": float(price)}))
                turns.append(_tool("call_2", _refusal(ticker, over, float(price), cash)))
                n = 3
            turns.append(_call(f"call_{n}", "buy", {"ticker": ticker, "qty": qty, "price": float(price)}))
            if rng.random() < 0.06:
                turns.append(_tool(f"call_{n}", "denied: denied by the approver"))
                note, qty, outcome = "the buy was denied", 0, "denied"
            else:
                turns.append(_tool(f"call_{n}", json.dumps({"filled": qty})))
                note, outcome = f"bought {qty} {ticker} at {json.dumps(float(price))}", "bought"
    result = {"ticker": ticker, "qty": qty, "note": note}
    turns.append({"role": "assistant", "content": json.dumps(result)})
    system, user = desk_messages(news, json.dumps(cash))
    labels = {
        "side": side,
        "ticker": ticker,
        "price": float(price),
        "cash": cash,
        "outcome": outcome,
        **result,
    }
    return Example(
        "desk", user["content"], json.dumps(result), labels, system["content"], tuple(turns), DESK_TOOLS
    )


def make_corpus(
    n: int, seed: int, triage_share: float = 0.15, heldout_templates: bool = False, desk_share: float = 0.0
) -> list[Example]:
    """``n`` examples drawn with ``seed``: mostly trader, ``triage_share`` triage, ``desk_share`` desk."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        draw = rng.random()
        if draw < triage_share:
            out.append(make_ticket_example(rng))
        elif draw < triage_share + desk_share:
            out.append(make_desk_example(rng))
        else:
            out.append(make_trader_example(rng, heldout_templates=heldout_templates))
    return out
