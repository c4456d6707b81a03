"""Runtime checks: verdicts, failed atoms, partial operations and bad values."""

from __future__ import annotations

import pytest

from workbench.rails import RailValueError, Scope, parse_rail
from workbench.rails.builtins import contains_email, contains_iban, luhn_card


def test_failed_atoms_follow_the_boolean_structure(scope: Scope) -> None:
    rail = parse_rail("i > 0 and (j > 0 or x > 1) and implies(b, s != 'a') and not t in L", scope, name="r")
    values = {"i": 1, "j": 1, "x": 0.0, "b": True, "s": "b", "t": "Z"}
    assert rail.check(values).ok
    bad = {"i": 0, "j": 0, "x": 0.5, "b": True, "s": "a", "t": "ACME"}
    verdict = rail.check(bad)
    assert not verdict.ok and not bool(verdict)
    assert verdict.failed_atoms == ("i > 0", "j > 0", "x > 1", "s != 'a'", "not t in L")
    assert verdict.message().startswith("rail 'r' failed: i > 0; j > 0")
    chained = parse_rail("0 <= i < 10", scope)
    assert chained.check({"i": 10}).failed_atoms == ("i < 10",)


def test_division_by_zero_makes_the_atom_false(scope: Scope) -> None:
    rail = parse_rail("i / j > 1 or i // j == 0 or i % j == 0", scope)
    assert not rail.holds({"i": 5, "j": 0})
    assert parse_rail("not (i / j > 1)", scope).holds({"i": 5, "j": 0})
    assert parse_rail("x / (y - 0.3) > 0", scope).holds({"x": 1.0, "y": 0.30000000000000004})
    assert not parse_rail("x / (y - 0.3) > 0", scope).holds({"x": 1.0, "y": 0.3})


def test_bad_values_raise_rail_value_error(scope: Scope) -> None:
    rail = parse_rail("order.qty > 0 and x > 0.5", scope, name="v")
    with pytest.raises(RailValueError, match="missing value for 'order'"):
        rail.holds({"x": 1.0})
    with pytest.raises(RailValueError):
        rail.holds({"order": {}, "x": 1.0})
    with pytest.raises(RailValueError, match="not a finite number"):
        parse_rail("x + y == 0.3", scope).holds({"x": float("inf"), "y": 0.1})


def test_builtin_predicates() -> None:
    assert luhn_card("4111-1111-1111-1111") and luhn_card("x 378282246310005 y")
    assert not luhn_card("4111 1111 1111 1112") and not luhn_card("12345")
    assert contains_iban("DE89370400440532013000") and not contains_iban("DE89370400440532013001")
    assert contains_email("a.b+c@d-e.example.org") and not contains_email("a@b")


def test_lists_and_strings(scope: Scope) -> None:
    values = {"tags": ["a", "bb"], "nums": [1, 2], "s": "hello", "x": 2.0}
    assert parse_rail("'bb' in tags and len(tags) == 2 and 2 in nums and x in nums", scope).holds(values)
    assert parse_rail("s.startswith('he') and s.endswith('lo') and 'ell' in s", scope).holds(values)
    assert parse_rail("matches(s, 'h.l+o') and not matches(s, 'h')", scope).holds(values)
