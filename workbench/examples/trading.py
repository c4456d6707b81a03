"""Tools of the ``trader`` example flow."""

from __future__ import annotations

from typing import Any

from workbench.runtime.trust import safe_tool

__all__ = ["risk_check"]


@safe_tool
def risk_check(proposed: dict[str, Any], cash: float) -> dict[str, Any]:
    """Approve ``proposed``, cutting its quantity so that quantity * price stays within ``cash``."""
    order = dict(proposed)
    if order["side"] == "buy" and order["qty"] * order["price"] > cash:
        order["qty"] = int(cash // order["price"])
    return {"approved": order}
