"""Tools of the ``desk`` example agent: quotes from a fixed table and a paper-trading book.

``LEDGER`` records every fill in this process, so a test (or a notebook) can see exactly
which orders ran.
"""

from __future__ import annotations

from typing import Any

from workbench.runtime.trust import safe_tool

__all__ = ["LEDGER", "PRICES", "buy", "quote"]

PRICES = {"BOLT": 12.5, "ACME": 80.0, "GLOBX": 3.2}
LEDGER: list[dict[str, Any]] = []


@safe_tool
def quote(ticker: str) -> dict[str, Any]:
    """The last price of ``ticker``; an unknown ticker raises (the agent is told the error)."""
    if ticker not in PRICES:
        raise KeyError(f"no quote for {ticker}")
    return {"price": PRICES[ticker]}


@safe_tool
def buy(ticker: str, qty: int, price: float) -> dict[str, Any]:
    """Buy ``qty`` shares of ``ticker`` at ``price`` on paper; returns how many were filled."""
    LEDGER.append({"ticker": ticker, "qty": qty, "price": price})
    return {"filled": qty}
