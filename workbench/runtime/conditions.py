"""Conditions of routers and loops: rail-language expressions compiled once, evaluated fast.

A condition is written in the rail language (docs/rails.md) and compiled by the rails
layer's evaluator, so ``order.qty > 100`` means the same in a router, a loop's
``until`` and a rail.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from workbench.types import Type

__all__ = ["Condition", "compile_condition"]

Condition = Callable[[Mapping[str, Any]], bool]


def compile_condition(
    text: str, names: Mapping[str, Type], constants: Mapping[str, Any], label: str
) -> Condition:
    """Compile ``text`` over ``names`` (and ``constants``) into ``env -> bool``."""
    from workbench.rails import Scope, parse_rail

    rail = parse_rail(text, Scope(names, constants), name=label)
    return rail.holds
