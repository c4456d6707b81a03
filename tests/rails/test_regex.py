"""One meaning of a regex everywhere: the rails evaluator (``matches``), the type check
(``Str(pattern=...)``) and Z3 (``regex.to_z3``) agree on random patterns and random
Unicode strings.

Patterns mean what Python's ``re.fullmatch`` with ``re.ASCII`` says: ``\\d`` is
``[0-9]``, ``\\w`` is ``[A-Za-z0-9_]``, ``\\s`` is ASCII whitespace, ``.`` is anything
but ``\\n``. The strings lean on the characters where Unicode and ASCII readings part
(Arabic-Indic and full-width digits, accented letters, the Kelvin sign, no-break space,
line separators, characters beyond Z3's alphabet).
"""

from __future__ import annotations

import re

import pytest
import z3
from hypothesis import example, given, settings
from hypothesis import strategies as st

from workbench.errors import TypeSpecError, ValueValidationError
from workbench.rails import Prover, RailSyntaxError, Scope, parse_rail
from workbench.rails.regex import HIGH, MAX_CHAR, UnsupportedRegex, to_z3
from workbench.rails.z3values import string_val
from workbench.types import Str

# Where ASCII and Unicode readings differ, the edges of every class, and code points
# beyond Z3's alphabet (U+2FFFF) or at the start of the block that stands for them.
CHARS = list(
    "09azAZ_-. \t\n\r\x0b\x1c\x85\xa0\u2028éßſ\u212aİ١٢０²٠\U0001d7ce"
    "\U0001f600\U0002fbff\U0002fc00\U0002ffff\U00030000\U000e0001\U0010ffff"
)
CLASS_ITEMS = [
    r"\d",
    r"\D",
    r"\w",
    r"\W",
    r"\s",
    r"\S",
    r"a-z",
    r"0-9",
    r"A-Z",
    r"\x00-\x7f",
    r"\u00c0-\uffff",
]
HIGH_RANGES = [
    r"\U00030000-\U0010ffff",
    r"\x00-\U0002ffff",
    r"\U0002fc00-\U0010ffff",
    r"\U00010000-\U0010ffff",
]
UNSUPPORTED = ["^", "$", "\\b", "\\B", "\\A", "\\Z", "(?=a)", "(?!a)", "(?<=a)", "(?i)", "(?s)", "(?i:k)"]

texts = st.lists(st.one_of(st.sampled_from(CHARS), st.characters()), max_size=6).map("".join)


def _escape(ch: str) -> str:
    return re.escape(ch) if ord(ch) >= 32 else f"\\x{ord(ch):02x}"


def _class() -> st.SearchStrategy[str]:
    item = st.one_of(
        st.sampled_from(CLASS_ITEMS),
        st.sampled_from(CHARS).map(_escape),
        st.sampled_from(HIGH_RANGES),
    )
    return st.tuples(st.booleans(), st.lists(item, min_size=1, max_size=3)).map(
        lambda t: "[" + ("^" if t[0] else "") + "".join(t[1]) + "]"
    )


def _atom() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(CHARS).map(_escape),
        st.sampled_from([".", "\\d", "\\D", "\\w", "\\W", "\\s", "\\S"]),
        _class(),
        st.sampled_from(UNSUPPORTED),
    )


def _quantified(sub: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    quant = st.sampled_from(["", "", "*", "+", "?", "{2}", "{0,2}", "{1,}", "*?", "+?"])
    return st.tuples(sub, quant).map(lambda t: t[0] + t[1])


patterns = st.recursive(
    _quantified(_atom()),
    lambda sub: st.one_of(
        st.lists(sub, min_size=2, max_size=3).map("".join),
        st.tuples(sub, sub).map(lambda t: f"{t[0]}|{t[1]}"),
        _quantified(sub.map(lambda s: f"({s})")),
        sub.map(lambda s: f"(?:{s})"),
    ),
    max_leaves=5,
)

CTX = z3.Context()
SCOPE = Scope({"s": Str()})


def _z3_text(text: str) -> str:
    """A string Z3 can hold with the same verdict under every translated regex: the
    characters beyond Z3's alphabet become one from the block that stands for them."""
    return "".join(ch if ord(ch) <= MAX_CHAR else chr(HIGH) for ch in text)


def _z3_matches(rx: z3.ReRef, text: str) -> bool:
    member = z3.InRe(string_val(_z3_text(text), CTX), rx)
    verdict = z3.simplify(member)  # Z3 decides a concrete string by derivatives
    if z3.is_true(verdict) or z3.is_false(verdict):
        return z3.is_true(verdict)
    solver = z3.Solver(ctx=CTX)
    solver.add(member)
    res = solver.check()
    assert res != z3.unknown
    return res == z3.sat


def _type_accepts(pattern: str, text: str) -> bool:
    try:
        Str(pattern=pattern).validate(text)
    except ValueValidationError:
        return False
    return True


@settings(max_examples=250, deadline=None)
@given(pattern=patterns, text_list=st.lists(texts, min_size=1, max_size=4))
@example(pattern="\\d+", text_list=["١٢", "12", "１２"])
@example(pattern="\\w+", text_list=["é", "ab_9", "ſ"])
@example(pattern="\\s", text_list=["\xa0", "\x1c", "\u2028", "\x0b"])
@example(pattern="[\\x00-\\U0002ffff]", text_list=["\U00030000", "a"])
@example(pattern="[^\\U0002ffff]", text_list=["\U0002ffff", "\U00030000"])
@example(pattern="[^\\D]", text_list=["1", "١", "a"])
@example(pattern=".", text_list=["\n", "\r", "\u2028", "\U0010ffff"])
def test_evaluator_type_check_and_z3_agree(pattern: str, text_list: list[str]) -> None:
    try:
        re.compile(pattern)
    except re.error:
        return  # generated nonsense such as a reversed range: refused everywhere alike
    rail = parse_rail(f"matches(s, {pattern!r})", SCOPE)
    try:
        rx = to_z3(pattern, CTX)
    except UnsupportedRegex:
        rx = None
    for text in text_list:
        runtime = rail.holds({"s": text})
        assert _type_accepts(pattern, text) == runtime, (pattern, text)
        if rx is not None:
            assert _z3_matches(rx, text) == runtime, (pattern, text)


def test_unicode_classes_cannot_be_asked_for() -> None:
    with pytest.raises(RailSyntaxError, match="ASCII classes"):
        parse_rail("matches(s, '(?u)\\\\d')", SCOPE)
    with pytest.raises(TypeSpecError, match="ASCII classes"):
        Str(pattern="(?u)\\d")


def test_classes_that_split_characters_beyond_z3_are_not_translated() -> None:
    for pattern in ("[\\x00-\\U0002ffff]", "[\\U00030000-\\U0010ffff]", "\\U00030000", "[^\\U0002fc00]"):
        with pytest.raises(UnsupportedRegex, match="beyond"):
            to_z3(pattern, CTX)
    for pattern in ("[^a]", ".", "[\\x00-\\U0010ffff]", "[\\U00010000-\\U0002fbff]", "\\W"):
        to_z3(pattern, CTX)


@pytest.mark.parametrize(
    ("pattern", "rail", "status"),
    [
        # Regression: the prover read \d as [0-9] while the type check took any Unicode digit.
        ("\\d+", "matches(s, '[0-9]+')", "vacuous"),
        ("\\w+", "matches(s, '[A-Za-z0-9_]+')", "vacuous"),
        ("\\s", "s in [' ', '\\t', '\\n', '\\r', '\\x0b', '\\x0c']", "vacuous"),
        # Regression: Z3's alphabet ends at U+2FFFF, so this looked true of every string.
        ("[^a]", "matches(s, '[\\x00-\\U0002ffff]')", "enforced"),
    ],
)
def test_type_patterns_and_rails_agree_in_proofs(pattern: str, rail: str, status: str) -> None:
    p = Prover()
    p.declare("s", Str(pattern=pattern))
    goal = parse_rail(rail, SCOPE)
    result = p.prove(goal, {"s": "s"})
    assert result.status in (status, "unsupported" if status == "enforced" else status), result
    for text in ("١٢", "12", "é", "a_1", "\xa0", " ", "\U00030000", "b"):
        if _type_accepts(pattern, text) and result.status == "vacuous":
            assert goal.holds({"s": text}), (pattern, text)
