"""Fuzz: thousands of generated rail strings; only RailError ever comes out, and a
rail that parses can be evaluated and translated to Z3 without any other exception."""

from __future__ import annotations

import contextlib

import z3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.errors import RailError
from workbench.rails import Scope, parse_rail
from workbench.rails.z3terms import UnsupportedRail

TOKENS = [
    "i", "j", "x", "s", "b", "side", "order", ".", "qty", "price", "ticker", "__class__", "__import__",
    "(", ")", "[", "]", "{", "}", ",", ":", "+", "-", "*", "/", "//", "%", "**", "==", "!=", "<", "<=",
    ">", ">=", " and ", " or ", "not ", " in ", " not in ", " is ", "lambda", "len", "abs", "min", "max",
    "implies", "matches", "startswith", "luhn_card", "0", "1", "2", "10", "0.1", "1e308", '"buy"', '"[a-"',
    "'x'", "L", "K", "if", "else", "for", "await", "yield", ";", "=", ":=", "\\", "\n", "é", "\x00", "#",
    "f'", "b'", "...", "@", "~", "&", "|", "^", "<<",
]  # fmt: skip
VALUES = {"i": 3, "j": -2, "x": 0.5, "s": "ab", "b": True, "side": "buy", "order": {}}


def _exercise(text: str, scope: Scope, ctx: z3.Context) -> None:
    try:
        rail = parse_rail(text, scope, name="fuzz")
    except RailError as exc:
        assert str(exc).startswith("rail 'fuzz', ")
        return
    with contextlib.suppress(RailError):  # VALUES lacks most fields: RailValueError is fine
        rail.holds(VALUES)
    with contextlib.suppress(UnsupportedRail):
        assert "(assert" in rail.to_smtlib()


CTX = z3.Context()
SETTINGS = settings(
    max_examples=1500, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=12).map("".join))
def test_token_soup_only_raises_rail_errors(scope: Scope, text: str) -> None:
    _exercise(text, scope, CTX)


@settings(max_examples=1000, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=40))
def test_arbitrary_text_only_raises_rail_errors(scope: Scope, text: str) -> None:
    _exercise(text, scope, CTX)


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=30))
def test_arbitrary_bytes_only_raise_rail_errors(scope: Scope, data: bytes) -> None:
    _exercise(data, scope, CTX)  # type: ignore[arg-type]
