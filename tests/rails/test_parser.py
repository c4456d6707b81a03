"""Parser table: good rails parse with the right names; bad ones name the exact column."""

from __future__ import annotations

import pytest

from workbench.errors import RailError
from workbench.rails import RailNameError, RailSortError, RailSyntaxError, Scope, parse_rail
from workbench.types import Float, Int, Record

GOOD = [
    ("order.qty * order.price <= cash", {"order", "cash"}, set()),
    ("order.ticker not in L", {"order"}, {"L"}),
    ("0 <= i < 10 and not b", {"i", "b"}, set()),
    ('implies(order.side == "buy", order.qty > 0)', {"order"}, set()),
    ('matches(order.ticker, "[A-Z]{1,5}") and order.ticker.startswith("A")', {"order"}, set()),
    (
        "len(s) <= K and abs(x) < 1e9 and min(i, j, 3) >= -1 and max(x, y) != R",
        {"s", "x", "i", "j", "y"},
        {"K", "R"},
    ),
    ("i // 2 + i % 3 == x ** 2", {"i", "x"}, set()),
    ('s + t == "ab" and WORD in s and "a" in tags and len(nums) < 4', {"s", "t", "tags", "nums"}, {"WORD"}),
    ('side in ["buy", "hold"] and not contains_email(s) and not luhn_card(t)', {"side", "s", "t"}, set()),
    ("  x > 0", {"x"}, set()),
    ("(x >\n 0)", {"x"}, set()),
    ("FLAG", set(), {"FLAG"}),
]


@pytest.mark.parametrize(("text", "names", "consts"), GOOD)
def test_good_rails_parse(text: str, names: set[str], consts: set[str], scope: Scope) -> None:
    rail = parse_rail(text, scope, name="good")
    assert rail.names == frozenset(names)
    assert rail.constants == frozenset(consts)
    assert rail.text == text


BAD = [
    # (text, error class, column, words in the message)
    ("order.ticker + 1 > 0", RailSortError, 7, "cannot add str and int"),
    ("order.__class__ == 1", RailNameError, 7, "'__class__' is not allowed"),
    ("s.__len__() > 1", RailNameError, 3, "'__len__' is not allowed"),
    ("open('x') == 1", RailNameError, 1, "call to 'open' is not allowed"),
    ("(lambda: 1)() == 1", RailSyntaxError, 2, "lambda"),
    ("[a for a in tags] == 1", RailSyntaxError, 1, "comprehension"),
    ("2 ** 10 ** 10 > 1", RailSyntaxError, 6, "exponent"),
    ("x ** -1 > 1", RailSyntaxError, 6, "exponent"),
    ("x ** 9 > 1", RailSyntaxError, 6, "exponent"),
    ("i > nope", RailNameError, 5, "unknown name 'nope'"),
    ("order.qtty > 1", RailNameError, 7, "no field 'qtty'"),
    ('order.side == "bye"', RailSortError, 15, "'bye' is not a value of Side"),
    ("order > 1", RailSortError, 1, "is a record"),
    ("x", RailSortError, 1, "must be a condition"),
    ("s < t", RailSortError, 1, "compares numbers"),
    ("i and b", RailSortError, 1, "not a condition"),
    ("x // 2 == 1", RailSortError, 1, "needs ints"),
    ("i in 3", RailSortError, 6, "needs a list or a string"),
    ("i in L", RailSortError, 1, "the list holds"),
    ("x is None", RailSyntaxError, 6, "'is' is not allowed"),
    ("tags[0] == 'a'", RailSyntaxError, 1, "indexing"),
    ("i if b else j", RailSyntaxError, 1, "conditional"),
    ("i > > 1", RailSyntaxError, 5, "syntax error"),
    ("i > ", RailSyntaxError, 4, "ends too early"),  # just after the last character
    ("b and", RailSyntaxError, 6, "ends too early"),
    ("i == 1; import os", RailSyntaxError, 7, "syntax error"),
    ('matches(s, "[")', RailSyntaxError, 12, "bad regex"),
    ("matches(s, t)", RailSyntaxError, 12, "constant regex"),
    ("len(i) > 0", RailSortError, 5, "len() needs a string or a list"),
    ("min(i) > 0", RailSyntaxError, 1, "takes 2 to 16 arguments"),
    ("abs(x=1) > 0", RailSyntaxError, 7, "keyword"),
    ("s.startswith(1)", RailSortError, 14, "takes a string"),
    ("s.upper() == 'A'", RailNameError, 1, "call to 'upper' is not allowed"),
    ("i > 1\x00", RailSyntaxError, 6, "NUL"),
    ("", RailSyntaxError, 1, "empty"),
    ("f'{s}' == s", RailSyntaxError, 1, "f-string"),
    ("i & 1 == 1", RailSyntaxError, 1, "'&' is not allowed"),
    ("{1: 2} == i", RailSyntaxError, 1, "a dict"),
    ("'é' + order.ticker + 1 > 0", RailSortError, 1, "cannot add"),
]


@pytest.mark.parametrize(("text", "cls", "column", "words"), BAD)
def test_bad_rails_name_the_column(text: str, cls: type, column: int, words: str, scope: Scope) -> None:
    with pytest.raises(cls) as info:
        parse_rail(text, scope, name="bad")
    err = info.value
    assert isinstance(err, RailError)
    assert err.column == column, str(err)
    assert words in str(err)
    assert str(err).startswith(f"rail 'bad', column {column}: ")


def test_columns_count_characters_not_bytes(scope: Scope) -> None:
    with pytest.raises(RailSortError) as info:
        parse_rail('"ééé" == i', scope)
    assert info.value.column == 10


def test_multiline_error_names_the_line(scope: Scope) -> None:
    with pytest.raises(RailNameError) as info:
        parse_rail("(x > 0 and\n  nope > 1)", scope, name="m")
    assert (info.value.line, info.value.column) == (2, 3)
    assert "line 2, column 3" in str(info.value)


def test_hostile_sizes_are_refused_cleanly(scope: Scope) -> None:
    for text in [
        "(" * 300 + "1" + ")" * 300,
        "not " * 3000 + "b",
        "-" * 10_000 + "x > 0",
        "1+" * 5000 + "1 > 0",
    ]:
        with pytest.raises(RailSyntaxError):
            parse_rail(text, scope)
    with pytest.raises(RailSyntaxError, match="longer than"):
        parse_rail("b or " * 10_000 + "b", scope)
    with pytest.raises(RailSyntaxError, match="not valid UTF-8") as info:
        parse_rail(b"i > \xff\xfe", scope)  # type: ignore[arg-type]
    assert info.value.column == 5
    with pytest.raises(RailSyntaxError):
        parse_rail("\ud800 > 1", scope)
    with pytest.raises(RailSyntaxError):
        parse_rail("i > " + "9" * 5000, scope)


def test_nothing_is_executed(scope: Scope, tmp_path) -> None:
    marker = tmp_path / "touched"
    for text in [f"__import__('os').system('touch {marker}')", f"open('{marker}', 'w')"]:
        with pytest.raises(RailError):
            parse_rail(text, scope)
    assert not marker.exists()


def test_enum_literals_and_named_constant_lists(scope: Scope) -> None:
    rail = parse_rail("order.side in L", scope)  # non-members of a constant list are simply never equal
    assert not rail.holds({"order": {"side": "buy"}})
    with pytest.raises(RailSortError, match="not a value of Side"):
        parse_rail('order.side in ["buy", "bye"]', scope)


def test_scope_rejects_name_constant_clash() -> None:
    with pytest.raises(ValueError, match="both a name and a constant"):
        Scope({"a": Int()}, {"a": 1})
    with pytest.raises(ValueError):
        Scope({"not an identifier": Int()})
    rec = Record("R", inner=Record("I", v=Float()))
    rail = parse_rail("r.inner.v > 0.5", Scope({"r": rec}))
    assert rail.holds({"r": {"inner": {"v": 0.6}}})
