"""Z3 models -> plain counterexample messages, and their runtime re-check."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import z3

from workbench.types import Bool, Enum, Float, Int, List, Record, Type

from .parser import sort_of_type
from .rail import Rail
from .z3values import from_model

__all__ = ["confirm", "default_value", "model_value", "values_for"]


def model_value(path: str, typ: Type, model_for: Any, term_of: Any, override: Mapping[str, Any]) -> Any:
    """The plain value of declared ``path``; ``model_for(leaf)`` gives the model that
    holds a leaf and ``term_of(leaf)`` its Z3 term. Records come back as dicts, enums
    as str; ``override`` gives the values of some leaves directly."""
    if isinstance(typ, Record):
        return {
            key: model_value(f"{path}.{key}", sub, model_for, term_of, override) for key, sub in typ.fields
        }
    if path in override:
        return override[path]
    term, model = term_of(path), model_for(path)
    if isinstance(typ, List):
        if z3.is_int(term):
            n = model.eval(term, model_completion=True).as_long()
            return [default_value(typ.item)] * max(0, n)
        n = model.eval(z3.Length(term), model_completion=True).as_long()
        kind = sort_of_type(typ.item).kind
        return [from_model(model.eval(term[i], model_completion=True), kind) for i in range(n)]
    return from_model(model.eval(term, model_completion=True), sort_of_type(typ).kind)


def values_for(example: Mapping[str, Any], bind: Mapping[str, str]) -> dict[str, Any]:
    """The values a rail bound with ``bind`` reads from a counterexample (paths may point
    inside a declared record)."""
    out = {}
    for root, path in bind.items():
        if path in example:
            out[root] = example[path]
            continue
        for top, val in example.items():
            if path.startswith(top + "."):
                for key in path[len(top) + 1 :].split("."):
                    val = val[key]
                out[root] = val
                break
    return out


def confirm(
    example: Mapping[str, Any],
    types: Mapping[str, Type],
    hypotheses: list[tuple[str, Rail, Mapping[str, str]]],
    goal: Rail | None = None,
    bind: Mapping[str, str] | None = None,
) -> str | None:
    """Why ``example`` is not a genuine counterexample (None when it is one): every
    declared type and hypothesis must hold at runtime and the goal (if any) must fail.
    Without a goal, ``example`` is a witness that passes them all."""
    for path, typ in types.items():
        try:
            typ.validate(example[path], path)
        except Exception as exc:
            return f"counterexample breaks a declared type ({exc})"
    for label, rail, rail_bind in hypotheses:
        if not rail.holds(values_for(example, rail_bind)):
            return f"counterexample breaks hypothesis {label!r} at runtime"
    if goal is not None and goal.holds(values_for(example, bind or {})):
        return "counterexample does not break the rail at runtime"
    return None


def default_value(typ: Type) -> Any:
    """The simplest value of a type (fills lists Z3 only knows the length of)."""
    if isinstance(typ, Record):
        return {k: default_value(t) for k, t in typ.fields}
    if isinstance(typ, Int):
        return typ.ge if typ.ge is not None else (min(0, typ.le) if typ.le is not None else 0)
    if isinstance(typ, Float):
        return float(typ.ge if typ.ge is not None else 0.0)
    if isinstance(typ, Bool):
        return False
    if isinstance(typ, Enum):
        return typ.values[0]
    if isinstance(typ, List):
        return []
    return ""
