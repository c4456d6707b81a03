"""Decode rails of one HTTP request: rails texts over a JSON-schema answer called ``output``.

``workbench serve-model`` takes ``"rails": ["output.qty * output.price <= 50", ...]`` beside a
``json_schema`` response format. The schema becomes a workbench type (``type_of_schema``:
the subset types export: objects with every property required, strings with ``pattern`` /
``maxLength``, integers and numbers with bounds, booleans, string enums, arrays), the rails are
parsed in its scope and compiled for masks. Every rail must be maskable: the server has no
check-and-generate-again behind the masks, so a rail that could only be checked afterwards
is refused rather than silently unenforced.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from workbench.errors import TypeSpecError, UsageError
from workbench.rails import Scope, parse_rail
from workbench.types import Bool, Enum, Float, Int, List, Record, Str, Type

from .constraint import RailsConstraint
from .solver import DecodeConflict, DecodeRails, answer_fields

__all__ = ["ROOT", "request_rails", "type_of_schema"]

ROOT = "output"  # the name rails give the response object


def type_of_schema(schema: Any, where: str = "schema") -> Type:
    """The workbench type a JSON schema describes (``UsageError`` for what types cannot say)."""
    if not isinstance(schema, Mapping):
        raise UsageError(f"{where} must be a JSON schema object")
    try:
        return _convert(schema, where)
    except TypeSpecError as exc:
        raise UsageError(f"{where}: {exc}") from None


def _convert(schema: Mapping[str, Any], where: str) -> Type:
    if "enum" in schema:
        values = schema["enum"]
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            raise UsageError(f"{where}: rails read only enums of strings")
        return Enum(*values)
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties") or {}
        missing = [k for k in props if k not in (schema.get("required") or [])]
        if not props or missing:
            raise UsageError(
                f"{where}: rails need an object whose properties are all required"
                + (f" ({', '.join(missing)} is not)" if missing else "")
            )
        return Record(None, {k: _convert(v, f"{where}.{k}") for k, v in props.items()})
    if kind == "string":
        return Str(max_len=schema.get("maxLength"), pattern=_pattern(schema.get("pattern")))
    if kind == "integer":
        lo, hi = schema.get("minimum"), schema.get("maximum")
        if schema.get("exclusiveMinimum") is not None:
            lo = _tighter(lo, schema["exclusiveMinimum"] + 1, max)
        if schema.get("exclusiveMaximum") is not None:
            hi = _tighter(hi, schema["exclusiveMaximum"] - 1, min)
        return Int(ge=lo, le=hi)
    if kind == "number":
        return Float(ge=schema.get("minimum"), le=schema.get("maximum"),
                     gt=schema.get("exclusiveMinimum"), lt=schema.get("exclusiveMaximum"))  # fmt: skip
    if kind == "boolean":
        return Bool()
    if kind == "array":
        return List(_convert(schema.get("items") or {}, f"{where}[]"), max_items=schema.get("maxItems"))
    raise UsageError(f"{where}: rails cannot read a schema of type {kind!r}")


def _tighter(a: int | None, b: int, pick: Any) -> int:
    return b if a is None else pick(a, b)


def _pattern(pattern: Any) -> str | None:
    """A JSON-schema pattern (a search) as a type's pattern (a full match)."""
    if pattern is None or not isinstance(pattern, str):
        return pattern
    if pattern.startswith("^") and pattern.endswith("$"):
        return f"(?:{pattern[1:-1]})"
    return f".*(?:{pattern}).*"


def request_rails(schema: Mapping[str, Any], rails: Sequence[str]) -> RailsConstraint:
    """The constraint that keeps ``rails`` while writing an answer for ``schema``.

    Raises ``UsageError`` for a rail that does not parse (the message has its column), one
    that cannot be a mask, or rails that contradict each other (``DecodeConflict``)."""
    return RailsConstraint(_plan(json.dumps(schema, sort_keys=True), tuple(rails)), ())


@functools.lru_cache(maxsize=32)
def _plan(schema_json: str, rails: tuple[str, ...]) -> DecodeRails:
    # one plan per (schema, rails): requests that repeat them share its cached Z3 answers
    typ = type_of_schema(json.loads(schema_json), "response_format.json_schema.schema")
    scope = Scope({ROOT: typ}, {})
    parsed = [(f"rails[{i}]", parse_rail(text, scope, name=f"rails[{i}]")) for i, text in enumerate(rails)]
    plan = DecodeRails(parsed, answer_fields({ROOT: typ}))
    unmasked = {n: plan.why[n] for n, how in plan.how.items() if how != "mask"}
    if unmasked:
        raise UsageError(
            "these rails cannot be enforced while decoding: "
            + "; ".join(f"{n} {dict(parsed)[n].text!r} ({why})" for n, why in unmasked.items())
        )
    try:
        plan.conflict(())
    except DecodeConflict as exc:
        named = ", ".join(f"{n} {dict(parsed)[n].text!r}" for n in exc.rails)
        raise DecodeConflict(
            exc.rails, f"the rails {named} contradict each other: no answer satisfies them all"
        ) from None
    return plan
