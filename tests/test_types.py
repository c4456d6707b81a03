"""The type language (docs/architecture.md, "Types"): values, JSON Schema, YAML type expressions,
wire compatibility."""

from __future__ import annotations

import doctest
import math
import random
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import workbench.types
from tests.flow.strategies import types, valid_values, values_for
from workbench.errors import TypeSpecError, ValueValidationError
from workbench.types import (
    Bool,
    Enum,
    Float,
    Int,
    List,
    Record,
    Str,
    Type,
    as_type,
    parse_named_types,
    parse_type,
)

SIDE = Enum("buy", "sell", "hold", name="Side")
ORDER = Record("Order", side=SIDE, ticker=Str(pattern="[A-Z]{1,5}"), qty=Int(ge=0), price=Float(gt=0))
GOOD_ORDER = {"side": "buy", "ticker": "ACME", "qty": 3, "price": 9.5}


def bad(typ: Type, value: Any, path: str = "value") -> str:
    """The message of the error ``typ.validate`` raises for ``value``."""
    with pytest.raises(ValueValidationError) as info:
        typ.validate(value, path)
    assert str(info.value) == f"{info.value.path}: {info.value.reason}"
    return str(info.value)


# -- value validation ---------------------------------------------------------------------------


def test_the_design_example_names_the_field():
    with pytest.raises(ValueValidationError) as info:
        ORDER.validate({**GOOD_ORDER, "qty": 1.5}, "order")
    assert str(info.value) == "order.qty: 1.5 is not an int"
    assert info.value.path == "order.qty"
    assert info.value.reason == "1.5 is not an int"
    assert info.value.exit_code == 2


def test_module_doctest_runs():
    result = doctest.testmod(workbench.types)
    assert result.attempted >= 2 and result.failed == 0


def test_valid_record_is_returned_normalised_in_field_order():
    value = {"price": 2, "qty": 4.0, "ticker": "AB", "side": "sell"}
    out = ORDER.validate(value)
    assert out == {"side": "sell", "ticker": "AB", "qty": 4, "price": 2.0}
    assert list(out) == ["side", "ticker", "qty", "price"]
    assert type(out["qty"]) is int and type(out["price"]) is float


def test_record_paths_missing_extra_and_not_a_mapping():
    assert bad(ORDER, {k: v for k, v in GOOD_ORDER.items() if k != "qty"}, "order") == "order.qty: missing"
    assert bad(ORDER, {**GOOD_ORDER, "colour": "red"}, "order") == "order.colour: unexpected field"
    assert bad(ORDER, [1, 2], "order") == "order: [1, 2] is not a record (expected a mapping)"
    assert bad(ORDER, {**GOOD_ORDER, "side": "short"}) == (
        "value.side: 'short' is not one of ['buy', 'sell', 'hold']"
    )
    # the first bad field in declaration order is the one reported
    assert bad(ORDER, {**GOOD_ORDER, "price": -1, "ticker": "x"}) == (
        "value.ticker: 'x' does not match pattern '[A-Z]{1,5}'"
    )


def test_nested_records_and_lists_give_full_paths():
    book = Record("Book", owner=Str(), orders=List(ORDER, max_items=3), tags=List(List(Int(le=9))))
    value = {"owner": "ann", "orders": [GOOD_ORDER, {**GOOD_ORDER, "qty": -2}], "tags": []}
    assert bad(book, value, "book") == "book.orders[1].qty: -2 is less than the minimum 0"
    value = {"owner": "ann", "orders": [], "tags": [[1], [2, 10]]}
    assert bad(book, value, "book") == "book.tags[1][1]: 10 is greater than the maximum 9"
    value = {"owner": "ann", "orders": [GOOD_ORDER] * 4, "tags": []}
    assert bad(book, value, "book") == "book.orders: has 4 items, more than max_items 3"
    assert bad(book, {"owner": "a", "orders": "xy", "tags": []}, "b") == "b.orders: 'xy' is not a list"
    deep = Record(a=Record(b=Record(c=List(Bool()))))
    assert bad(deep, {"a": {"b": {"c": [True, 0]}}}, "x") == "x.a.b.c[1]: 0 is not a bool"


def test_lists_accept_tuples_and_return_lists():
    assert List(Int()).validate((1, 2.0)) == [1, 2]
    assert List(Int(), max_items=0).validate([]) == []
    assert bad(List(Int(), max_items=0), [1]) == "value: has 1 items, more than max_items 0"
    assert bad(List(Str()), {"a": 1}) == "value: {'a': 1} is not a list"


@pytest.mark.parametrize(
    ("typ", "value", "message"),
    [
        (Int(), True, "value: True is not an int"),
        (Int(), False, "value: False is not an int"),
        (Int(), "3", "value: '3' is not an int"),
        (Int(), None, "value: None is not an int"),
        (Int(), 2.5, "value: 2.5 is not an int"),
        (Int(), math.inf, "value: inf is not an int"),
        (Int(), math.nan, "value: nan is not an int"),
        (Float(), True, "value: True is not a float"),
        (Float(), "1.0", "value: '1.0' is not a float"),
        (Float(), math.nan, "value: nan is not a finite number"),
        (Float(), math.inf, "value: inf is not a finite number"),
        (Float(), -math.inf, "value: -inf is not a finite number"),
        (Bool(), 1, "value: 1 is not a bool"),
        (Bool(), "true", "value: 'true' is not a bool"),
        (Str(), 5, "value: 5 is not a str"),
        (Str(), b"x", "value: b'x' is not a str"),
        (Enum("a", "b"), 1, "value: 1 is not one of ['a', 'b']"),
        (Enum("a", "b"), ["a"], "value: ['a'] is not one of ['a', 'b']"),
        (Enum("a", "b"), "A", "value: 'A' is not one of ['a', 'b']"),
    ],
)
def test_kind_errors(typ, value, message):
    assert bad(typ, value) == message


def test_a_huge_int_is_not_a_finite_float():
    # used to escape as OverflowError from float()
    message = bad(Float(), 10**400)
    assert message.endswith("... is not a finite number") and message.startswith("value: 1000")
    assert Float().validate(10**300) == 1e300


def test_ints_and_integral_floats():
    assert Int().validate(3.0) == 3 and type(Int().validate(3.0)) is int
    assert Int().validate(-(10**30)) == -(10**30)
    assert Int(ge=0, le=0).validate(0) == 0
    assert bad(Int(ge=0, le=10), -1) == "value: -1 is less than the minimum 0"
    assert bad(Int(ge=0, le=10), 11) == "value: 11 is greater than the maximum 10"
    assert bad(Int(ge=0, le=10), 11.0) == "value: 11 is greater than the maximum 10"


def test_float_bounds_inclusive_and_exclusive():
    assert Float(ge=0, le=1).validate(0) == 0.0 and type(Float().validate(0)) is float
    assert Float(ge=0, le=1).validate(1) == 1.0
    assert bad(Float(ge=0), -0.5) == "value: -0.5 is less than the minimum 0"
    assert bad(Float(le=1), 1.5) == "value: 1.5 is greater than the maximum 1"
    assert bad(Float(gt=0), 0) == "value: 0.0 is not greater than 0"
    assert bad(Float(lt=1.5), 1.5) == "value: 1.5 is not less than 1.5"
    assert Float(gt=0, lt=1).validate(0.5) == 0.5
    assert Float(gt=0).validate(5e-324) == 5e-324


def test_str_length_and_full_match_pattern():
    ticker = Str(max_len=5, pattern="[A-Z]{1,5}")
    assert ticker.validate("ACME") == "ACME"
    assert Str(max_len=0).validate("") == ""
    assert bad(Str(max_len=3), "abcd") == "value: 'abcd' is longer than max_len 3"
    assert bad(Str(max_len=2), "ééé") == "value: 'ééé' is longer than max_len 2"  # characters, not bytes
    for text in ("acme", "xACME", "ACMEx", "ACME\n", "", "ABCDEF"):
        with pytest.raises(ValueValidationError, match="does not match pattern"):
            Str(pattern="[A-Z]{1,5}").validate(text)
    # alternation binds inside the full match: 'a|b' must not accept 'ab'
    assert bad(Str(pattern="a|b"), "ab") == "value: 'ab' does not match pattern 'a|b'"
    assert Str(pattern="a|b").validate("b") == "b"


def test_patterns_use_ascii_classes():
    """Regression: ``\\d`` took any Unicode digit here while the prover read it as ``[0-9]``
    (a rail the prover called vacuous then blocked ``"١٢"``). Patterns mean ``re.ASCII``."""
    digits = Str(pattern=r"\d+")
    assert digits.validate("0123456789") == "0123456789"
    for text in ("١٢", "１２", "²", "٠"):
        assert bad(digits, text) == f"value: {text!r} does not match pattern '\\\\d+'"
    assert Str(pattern=r"\w+").validate("aZ_9") == "aZ_9"
    for text in ("é", "ß", "ſ", "\u212a"):
        with pytest.raises(ValueValidationError, match="does not match pattern"):
            Str(pattern=r"\w+").validate(text)
    assert Str(pattern=r"\s+").validate(" \t\n\r\x0b\x0c") == " \t\n\r\x0b\x0c"
    for text in ("\xa0", "\x1c", "\u2028", "\x85"):
        with pytest.raises(ValueValidationError, match="does not match pattern"):
            Str(pattern=r"\s").validate(text)
    # case-insensitivity folds ASCII letters only: no Kelvin sign for k, no long s for s
    assert Str(pattern="(?i)ks").validate("KS") == "KS"
    for text in ("\u212as", "k\u017f"):
        with pytest.raises(ValueValidationError, match="does not match pattern"):
            Str(pattern="(?i)ks").validate(text)
    with pytest.raises(TypeSpecError, match="not a valid regex"):
        Str(pattern="(?u)x")  # Unicode classes cannot be asked for


def test_long_values_are_shortened_in_messages():
    message = bad(Int(), "x" * 500)
    assert len(message) < 100 and message.endswith("... is not an int")


# -- constructing types ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Str(max_len=-1), "str max_len must be a non-negative integer, got -1"),
        (lambda: Str(max_len=True), "str max_len must be a non-negative integer, got True"),
        (lambda: Str(pattern=5), "str pattern must be a string, got 5"),
        (lambda: Int(ge=1.5), "int bound ge must be an integer, got 1.5"),
        (lambda: Int(le=True), "int bound le must be an integer, got True"),
        (lambda: Float(gt=math.nan), "float bound gt must be a finite number, got nan"),
        (lambda: Float(lt="1"), "float bound lt must be a finite number, got '1'"),
        (lambda: Enum(), "enum needs at least one value"),
        (lambda: Enum("a", "a"), "enum values must be distinct, got ['a', 'a']"),
        (lambda: Enum("a", ""), "enum values must be non-empty strings, got ''"),
        (lambda: Enum("a", 1), "enum values must be non-empty strings, got 1"),
        (lambda: Record(), "a record needs at least one field"),
        (lambda: Record("R", {"not id": Int()}), "record field names must be identifiers, got 'not id'"),
        (lambda: Record("R", {"a": Int()}, a=Str()), "record field 'a' is declared twice"),
        (lambda: Record("R", x=5), "record field 'x' must have a type, got 5"),
        (lambda: List(5), "list item must be a type, got 5"),
        (lambda: List(Int(), max_items=-1), "list max_items must be a non-negative integer, got -1"),
    ],
)
def test_bad_constructor_arguments(build, message):
    with pytest.raises(TypeSpecError) as info:
        build()
    assert str(info.value) == message


def test_float_bound_beyond_float_range_is_a_spec_error():
    with pytest.raises(TypeSpecError, match="float bound ge must be a finite number"):
        Float(ge=10**400)


def test_types_compare_structurally_and_ignore_names():
    assert Record("A", x=Int()) == Record("B", x=Int()) == Record(None, {"x": Int()})
    assert hash(Record("A", x=Int())) == hash(Record(x=Int()))
    assert Record(x=Int(), y=Str()) != Record(y=Str(), x=Int())  # field order is significant
    assert Enum("a", "b") != Enum("b", "a")
    assert Enum(["a", "b"]) == Enum("a", "b")
    assert Int(ge=0) != Int() and Float(gt=0) != Float(ge=0)
    assert Record("R", {"a": Int()}, b=Str()).field_types == {"a": Int(), "b": Str()}
    assert list(Record("R", {"a": Int()}, b=Str()).field_types) == ["a", "b"]


def test_as_type_coerces_python_builtins_and_specs():
    assert as_type(int) == Int() and as_type(float) == Float()
    assert as_type(str) == Str() and as_type(bool) == Bool()
    assert as_type(ORDER) is ORDER
    assert as_type({"int": {"ge": 1}}) == Int(ge=1)
    with pytest.raises(TypeSpecError):
        as_type(dict)


def test_describe_is_compact():
    assert Int().describe() == "int"
    assert Int(ge=0).describe() == "{int: {ge: 0}}"
    assert ORDER.describe() == "Order"
    assert List(Str(max_len=3), max_items=2).describe() == "{list: {str: {max_len: 3}}, max_items: 2}"
    assert Record(a=SIDE, b=Enum("x")).describe() == "{a: Side, b: {enum: [x]}}"


# -- JSON Schema --------------------------------------------------------------------------------


def test_json_schema_shapes():
    assert Str(max_len=4, pattern="[a-z]+").to_json_schema() == {
        "type": "string",
        "maxLength": 4,
        "pattern": "^(?:[a-z]+)$",
    }
    assert Int(ge=0, le=9).to_json_schema() == {"type": "integer", "minimum": 0, "maximum": 9}
    assert Float(ge=0, gt=1, le=5, lt=4).to_json_schema() == {
        "type": "number",
        "minimum": 0,
        "exclusiveMinimum": 1,
        "maximum": 5,
        "exclusiveMaximum": 4,
    }
    assert Bool().to_json_schema() == {"type": "boolean"}
    assert SIDE.to_json_schema() == {"type": "string", "enum": ["buy", "sell", "hold"]}
    assert List(Int(), max_items=2).to_json_schema() == {
        "type": "array",
        "items": {"type": "integer"},
        "maxItems": 2,
    }
    schema = ORDER.to_json_schema()
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert list(schema["properties"]) == ["side", "ticker", "qty", "price"]
    assert schema["required"] == ["side", "ticker", "qty", "price"]
    assert schema["properties"]["price"] == {"type": "number", "exclusiveMinimum": 0}


def schema_accepts(schema: dict[str, Any], value: Any) -> bool:
    """A small JSON Schema (2020-12) checker for the keywords ``to_json_schema`` emits."""
    known = {
        "type",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "enum",
        "items",
        "maxItems",
        "properties",
        "required",
        "additionalProperties",
    }
    assert set(schema) <= known, f"unexpected keywords {set(schema) - known}"
    kind = schema["type"]
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "string":
        if not isinstance(value, str):
            return False
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return False
        if "pattern" in schema:
            # ECMA-262 semantics: '$' is the very end (Python's '$' also matches before a final \n)
            assert schema["pattern"].endswith("$")
            if re.search(schema["pattern"][:-1] + r"\Z", value) is None:
                return False
        return "enum" not in schema or value in schema["enum"]
    if kind == "integer":
        if not is_number or (isinstance(value, float) and not value.is_integer()):
            return False
    elif kind == "number":
        if not is_number:
            return False
    elif kind == "boolean":
        return isinstance(value, bool)
    elif kind == "array":
        if not isinstance(value, list):
            return False
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return False
        return all(schema_accepts(schema["items"], v) for v in value)
    elif kind == "object":
        if not isinstance(value, dict):
            return False
        if any(k not in value for k in schema["required"]):
            return False
        if schema.get("additionalProperties") is False and any(k not in schema["properties"] for k in value):
            return False
        return all(schema_accepts(schema["properties"][k], v) for k, v in value.items())
    else:  # pragma: no cover - an unknown type keyword is a failure of the export
        raise AssertionError(kind)
    checks = {
        "minimum": lambda b: value >= b,
        "maximum": lambda b: value <= b,
        "exclusiveMinimum": lambda b: value > b,
        "exclusiveMaximum": lambda b: value < b,
    }
    return all(ok(schema[key]) for key, ok in checks.items() if key in schema)


@st.composite
def type_and_value(draw: st.DrawFn) -> tuple[Type, Any]:
    typ = draw(types)
    return typ, draw(valid_values(typ) | values_for(typ))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(type_and_value())
def test_json_schema_accepts_exactly_what_validate_accepts(pair):
    typ, value = pair
    schema = typ.to_json_schema()
    try:
        typ.validate(value)
    except ValueValidationError:
        accepted = False
    else:
        accepted = True
    assert schema_accepts(schema, value) == accepted, (schema, value)


@settings(max_examples=100, deadline=None)
@given(type_and_value())
def test_validate_is_idempotent_on_what_it_returns(pair):
    typ, value = pair
    try:
        out = typ.validate(value)
    except ValueValidationError:
        return
    assert typ.validate(out) == out
    assert schema_accepts(typ.to_json_schema(), out)


# -- YAML type expressions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("str", Str()),
        ("int", Int()),
        ("float", Float()),
        ("bool", Bool()),
        ({"str": {"max_len": 40, "pattern": "[A-Z]{1,5}"}}, Str(max_len=40, pattern="[A-Z]{1,5}")),
        ({"str": None}, Str()),
        ({"str": {}}, Str()),
        ({"int": {"ge": 0, "le": 100}}, Int(ge=0, le=100)),
        ({"float": {"ge": 0, "gt": 1, "le": 9, "lt": 8.5}}, Float(ge=0, gt=1, le=9, lt=8.5)),
        ({"bool": None}, Bool()),
        ({"bool": {}}, Bool()),
        ({"enum": ["buy", "sell", "hold"]}, Enum("buy", "sell", "hold")),
        ({"list": "int"}, List(Int())),
        ({"list": "str", "max_items": 8}, List(Str(), max_items=8)),
        ({"max_items": 8, "list": {"list": "bool"}}, List(List(Bool()), max_items=8)),
        ({"qty": "int", "side": {"enum": ["a"]}}, Record(qty=Int(), side=Enum("a"))),
        ({"max_items": "int"}, Record(max_items=Int())),  # alone it is a field name
        ({"str": "int", "int": "str"}, Record(str=Int(), int=Str())),  # two keys: a record
    ],
)
def test_parse_every_form_of_design_3(spec, expected):
    parsed = parse_type(spec)
    assert parsed == expected
    assert type(parsed) is type(expected)


def test_parse_list_with_other_key_is_a_record_of_fields():
    parsed = parse_type({"list": "int", "n": "str"})
    assert isinstance(parsed, Record)
    assert parsed.fields == (("list", Int()), ("n", Str()))


@settings(max_examples=100, deadline=None)
@given(types)
def test_spec_round_trips_through_parse(typ):
    assert parse_type(typ.to_spec()) == typ
    assert parse_type(typ.to_spec(expand=True)) == typ


def test_named_types_in_any_order_and_by_name():
    specs = {
        "Book": {"owner": "str", "orders": {"list": "Order", "max_items": 3}},
        "Order": {"side": "Side", "qty": {"int": {"ge": 0}}},
        "Side": {"enum": ["buy", "sell"]},
        "Qty": "int",
    }
    expected = {
        "Side": Enum("buy", "sell"),
        "Order": Record(side=Enum("buy", "sell"), qty=Int(ge=0)),
        "Qty": Int(),
    }
    expected["Book"] = Record(owner=Str(), orders=List(expected["Order"], max_items=3))
    for seed in range(6):
        keys = list(specs)
        random.Random(seed).shuffle(keys)
        named = parse_named_types({k: specs[k] for k in keys})
        assert list(named) == keys
        assert named == expected
        assert all(named[k].name == k for k in keys)
        assert named["Book"].field_types["orders"].item.name == "Order"
        assert named["Book"].to_spec() == "Book"
        assert named["Book"].to_spec(expand=True) == {
            "owner": "str",
            "orders": {"list": "Order", "max_items": 3},
        }


def test_named_types_resolve_in_port_specs():
    named = parse_named_types({"Side": {"enum": ["buy", "sell"]}})
    parsed = parse_type({"side": "Side", "n": {"list": "Side"}}, named)
    assert parsed.field_types["side"] is named["Side"]
    assert parsed.field_types["n"] == List(named["Side"])


def test_an_alias_of_a_primitive_or_of_another_name():
    named = parse_named_types({"A": "B", "B": {"int": {"ge": 1}}})
    assert named["A"] == Int(ge=1) and named["A"].name == "A" and named["B"].name == "B"


@pytest.mark.parametrize(
    ("specs", "cycle"),
    [
        ({"A": "A"}, "A -> A"),
        ({"A": {"next": "A"}}, "A -> A"),
        ({"A": {"items": {"list": "A"}}}, "A -> A"),
        ({"A": {"b": "B"}, "B": {"a": "A"}}, "A -> B -> A"),
        ({"X": "int", "A": {"b": "B"}, "B": {"c": {"list": "C"}}, "C": {"a": "A"}}, "A -> B -> C -> A"),
        ({"B": {"c": "C"}, "C": {"c": "C"}}, "C -> C"),
    ],
)
def test_recursive_definitions_are_refused(specs, cycle):
    with pytest.raises(TypeSpecError) as info:
        parse_named_types(specs)
    assert str(info.value) == f"types: recursive type definition {cycle}"


def test_unknown_type_names_list_the_known_ones():
    with pytest.raises(TypeSpecError) as info:
        parse_type("Strr")
    assert str(info.value) == "type: unknown type name 'Strr' (known: bool, float, int, str)"
    named = parse_named_types({"Side": {"enum": ["a"]}, "Order": {"s": "Side"}})
    with pytest.raises(TypeSpecError) as info:
        parse_type({"x": {"list": "Ordr"}}, named, "input 'x'")
    assert str(info.value) == (
        "input 'x'.x.list: unknown type name 'Ordr' (known: Order, Side, bool, float, int, str)"
    )
    with pytest.raises(TypeSpecError) as info:
        parse_named_types({"A": {"x": "Nope"}})
    assert str(info.value) == "types.A.x: unknown type name 'Nope' (known: bool, float, int, str)"
    with pytest.raises(TypeSpecError, match="unknown type name 'enum'"):
        parse_type("enum")
    with pytest.raises(TypeSpecError, match="unknown type name 'list'"):
        parse_type("list")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"int": {"gt": 0}}, "type: unknown int option 'gt' (allowed: ge, le)"),
        ({"str": {"min_len": 1}}, "type: unknown str option 'min_len' (allowed: max_len, pattern)"),
        ({"float": {"max": 1}}, "type: unknown float option 'max' (allowed: ge, gt, le, lt)"),
        ({"int": 5}, "type: int options must be a mapping, got 5"),
        ({"str": ["max_len"]}, "type: str options must be a mapping, got ['max_len']"),
        ({"bool": {"x": 1}}, "type: bool takes no options, got {'x': 1}"),
        ({"enum": "buy"}, "type: enum takes a list of strings, got 'buy'"),
        ({"enum": []}, "type: enum needs at least one value"),
        ({"enum": ["a", "a"]}, "type: enum values must be distinct, got ['a', 'a']"),
        ({"enum": ["a", 1]}, "type: enum values must be non-empty strings, got 1"),
        ({"int": {"ge": "0"}}, "type: int bound ge must be an integer, got '0'"),
        ({"float": {"gt": float("inf")}}, "type: float bound gt must be a finite number, got inf"),
        ({"str": {"max_len": -1}}, "type: str max_len must be a non-negative integer, got -1"),
        ({"list": "int", "max_items": -1}, "type: list max_items must be a non-negative integer, got -1"),
        ({"list": "int", "max_items": "3"}, "type: list max_items must be a non-negative integer, got '3'"),
        ({"list": "nope"}, "type.list: unknown type name 'nope' (known: bool, float, int, str)"),
        ({}, "type: {} is not a type expression"),
        (5, "type: 5 is not a type expression"),
        (None, "type: None is not a type expression"),
        (["int"], "type: ['int'] is not a type expression"),
        ({1: "int"}, "type: record field names must be identifiers, got 1"),
        ({"a b": "int"}, "type: record field names must be identifiers, got 'a b'"),
        ({"a": {"b": 3}}, "type.a.b: 3 is not a type expression"),
    ],
)
def test_bad_type_expressions(spec, message):
    with pytest.raises(TypeSpecError) as info:
        parse_type(spec)
    assert str(info.value) == message


def test_bad_regex_pattern_names_the_pattern():
    with pytest.raises(TypeSpecError) as info:
        parse_type({"str": {"pattern": "[A-Z"}})
    assert str(info.value).startswith("type: str pattern '[A-Z' is not a valid regex: ")


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ({"int": "str"}, "types: 'int' is a built-in type and cannot be redefined"),
        ({"enum": "str"}, "types: 'enum' is a built-in type and cannot be redefined"),
        ({"list": "str"}, "types: 'list' is a built-in type and cannot be redefined"),
        ({"not ok": "str"}, "types: type names must be identifiers, got 'not ok'"),
        ({3: "str"}, "types: type names must be identifiers, got 3"),
    ],
)
def test_bad_named_type_sections(specs, message):
    with pytest.raises(TypeSpecError) as info:
        parse_named_types(specs)
    assert str(info.value) == message


def test_types_section_must_be_a_mapping():
    with pytest.raises(TypeSpecError) as info:
        parse_named_types(["A"])  # type: ignore[arg-type]
    assert str(info.value) == "types must be a mapping of name to type, got ['A']"


# -- wire compatibility ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "source", "reason"),
    [
        (Float(), Int(), None),
        (Float(ge=0), Int(le=-5), None),  # refinements are checked on values, not wires
        (Int(ge=0), Int(), None),
        (Str(max_len=2, pattern="a+"), Str(), None),
        (Int(), Float(), "float is not int"),
        (Int(), Bool(), "bool is not int"),
        (Float(), Bool(), "bool is not float"),
        (Str(), Enum("a"), "enum is not str"),
        (Enum("a"), Str(), "str is not enum"),
        (Enum("a", "b", "c"), Enum("c", "a"), None),
        (Enum("a", "b"), Enum("a", "x", "y"), "values ['x', 'y'] are not in ['a', 'b']"),
        (List(Float()), List(Int()), None),
        (List(Int()), List(Float()), "list items: float is not int"),
        (
            List(List(Enum("a"))),
            List(List(Enum("b"))),
            "list items: list items: values ['b'] are not in ['a']",
        ),
        (Record(a=Int(), b=Str()), Record(a=Int(), b=Str()), None),
        (Record("X", a=Float()), Record("Y", a=Int()), None),
        (Record(a=Int(), b=Str()), Record(b=Str(), a=Int()), "fields ['b', 'a'] are not ['a', 'b']"),
        (Record(a=Int()), Record(a=Int(), b=Int()), "fields ['a', 'b'] are not ['a']"),
        (Record(a=Int(), b=Str()), Record(a=Int(), b=Int()), "field b: int is not str"),
        (Record(a=Int()), Int(), "int is not record"),
        (List(Int()), Int(), "int is not list"),
    ],
)
def test_accepts(target, source, reason):
    assert target.accepts(source) == reason


def loosen(typ: Type) -> Type:
    """The same shape without bounds, lengths or patterns."""
    if isinstance(typ, List):
        return List(loosen(typ.item))
    if isinstance(typ, Record):
        return Record(None, {k: loosen(t) for k, t in typ.fields})
    return typ if isinstance(typ, Enum | Bool) else type(typ)()


@settings(max_examples=100, deadline=None)
@given(types)
def test_wires_ignore_refinements_but_not_shape(typ):
    assert typ.accepts(typ) is None
    assert typ.accepts(loosen(typ)) is None
    assert loosen(typ).accepts(typ) is None
    assert List(typ).accepts(typ) is not None  # one more level of list is another shape
    assert typ.accepts(List(typ)) is not None
