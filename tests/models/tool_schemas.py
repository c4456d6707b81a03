"""Random tool schemas (a hypothesis strategy) and a checker for the JSON Schema subset they use."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import strategies as st

__all__ = ["tool_schemas", "valid"]


def valid(value: Any, schema: dict[str, Any]) -> bool:
    """Does ``value`` satisfy ``schema`` (objects, bounded numbers, enums, patterns, lengths, booleans)?"""
    if "enum" in schema:
        return value in schema["enum"]
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        if not isinstance(value, dict) or not set(schema.get("required", [])) <= set(value):
            return False
        if schema.get("additionalProperties") is False and not set(value) <= set(props):
            return False
        return all(valid(v, props[k]) for k, v in value.items() if k in props)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in ("integer", "number"):
        if isinstance(value, bool) or not isinstance(value, int if kind == "integer" else (int, float)):
            return False
        checks = {
            "minimum": lambda b: value >= b,
            "maximum": lambda b: value <= b,
            "exclusiveMinimum": lambda b: value > b,
            "exclusiveMaximum": lambda b: value < b,
        }
        return all(check(schema[key]) for key, check in checks.items() if key in schema)
    if kind == "string":
        if not isinstance(value, str):
            return False
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return False
        return "pattern" not in schema or re.search(schema["pattern"], value) is not None
    raise AssertionError(f"the checker does not know {schema}")


_NAMES = st.from_regex(r"[a-z][a-z_]{0,5}", fullmatch=True)


@st.composite
def _leaf(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["integer", "number", "enum", "pattern", "string", "boolean"]))
    if kind in ("integer", "number"):
        low = draw(st.integers(-1000, 1000))
        schema: dict[str, Any] = {"type": kind, "minimum": low}
        if draw(st.booleans()):
            schema["maximum"] = low + draw(st.integers(0, 5000))
        if kind == "number" and draw(st.booleans()):
            schema = {"type": "number", "exclusiveMinimum": low, "maximum": low + 100}
        return schema
    if kind == "enum":
        return {"type": "string", "enum": draw(st.lists(_NAMES, min_size=1, max_size=4, unique=True))}
    if kind == "pattern":
        return {
            "type": "string",
            "pattern": draw(st.sampled_from(["^[A-Z]{1,5}$", "^[a-z]{1,6}-[0-9]{2}$", "^x{0,4}$"])),
        }
    if kind == "string":
        return {"type": "string", "maxLength": draw(st.integers(0, 12))}
    return {"type": "boolean"}


@st.composite
def _object(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    names = draw(st.lists(_NAMES, min_size=0 if depth else 1, max_size=2 if depth else 3, unique=True))
    props = {n: (draw(_object(depth + 1)) if depth == 0 and draw(st.integers(0, 5)) == 0 else draw(_leaf()))
             for n in names}  # fmt: skip
    return {"type": "object", "properties": props, "required": names, "additionalProperties": False}


@st.composite
def tool_schemas(draw: st.DrawFn) -> list[dict[str, Any]]:
    """1-3 tools in OpenAI's form, each with a random parameters schema."""
    names = draw(st.lists(st.from_regex(r"[a-z][a-z_0-9]{0,9}", fullmatch=True), min_size=1, max_size=3,
                          unique=True))  # fmt: skip
    return [{"type": "function", "function": {"name": n, "parameters": draw(_object())}} for n in names]
