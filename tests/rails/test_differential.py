"""Differential tests: the compiled evaluator and the Z3 backend agree on every verdict.

Random rails over every sort and operator, random values biased to boundaries (0, -0.0,
2**53 + 1, subnormals, 1e300, 0.1/0.2/0.3...), both backends asked; any disagreement
is a bug in one translation.
"""

from __future__ import annotations

import pytest
import z3
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisWarning

from workbench.rails import parse_rail

from .conftest import z3_verdict

INT_LEAVES = ["i", "j", "rec.qty", "K", "len(s)", "len(tags)", "len(nums)"]
REAL_LEAVES = ["x", "y", "rec.price", "R"]
INT_LITS = ["0", "1", "-1", "2", "3", "7", "9007199254740993", "10**2"]
REAL_LITS = ["0.1", "0.2", "0.3", "2.5", "1e-300", "5e-324", "1e300", "0.30000000000000004", "1.0"]
STR_LEAVES = ["s", "t", "rec.name", "WORD", '""', '"a"', '"AC"', '"ACME"', '"x@y.io"']
REGEXES = ["[a-c]+", "A.*", "(AC|ME)*", "[^a]?b{1,2}", "\\d+", ".", "x@y\\.io"]

ints = st.one_of(
    st.sampled_from([0, 1, -1, 2, 3, -7, 2**53, 2**53 + 1, -(2**63), 10**20]),
    st.integers(-50, 50),
)
floats = st.one_of(
    st.sampled_from(
        [
            0.0,
            -0.0,
            0.1,
            0.2,
            0.3,
            0.30000000000000004,
            1 / 3,
            2.5,
            1e-300,
            5e-324,
            1e300,
            -1e300,
            9007199254740993.0,
        ]
    ),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(-5, 5).map(lambda n: n / 10),
)
texts = st.text(alphabet="abcAMCE@.xyio1 ", max_size=6)


def num(depth: int) -> st.SearchStrategy[str]:
    leaf = st.sampled_from(INT_LEAVES + REAL_LEAVES + INT_LITS + REAL_LITS)
    if depth <= 0:
        return leaf
    sub = num(depth - 1)
    ints_only = st.sampled_from(INT_LEAVES + INT_LITS)
    return st.one_of(
        leaf,
        st.tuples(sub, st.sampled_from(["+", "-", "*", "/"]), sub).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(ints_only, st.sampled_from(["//", "%"]), ints_only).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        sub.map(lambda a: f"-{a}"),
        sub.map(lambda a: f"abs({a})"),
        st.tuples(sub, st.integers(0, 3)).map(lambda t: f"({t[0]}) ** {t[1]}"),
        st.tuples(st.sampled_from(["min", "max"]), sub, sub).map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
    )


def strexpr() -> st.SearchStrategy[str]:
    leaf = st.sampled_from(STR_LEAVES)
    return st.one_of(leaf, st.tuples(leaf, leaf).map(lambda t: f"{t[0]} + {t[1]}"))


def atom(depth: int) -> st.SearchStrategy[str]:
    n = num(depth)
    return st.one_of(
        st.tuples(n, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), n).map(" ".join),
        st.tuples(n, st.sampled_from(["<", "<="]), n, st.sampled_from(["<", "<="]), n).map(" ".join),
        st.tuples(strexpr(), st.sampled_from(["==", "!="]), strexpr()).map(" ".join),
        st.sampled_from(['side == "buy"', 'side != "hold"', 'side in ["buy", "hold"]', "side not in []"]),
        st.sampled_from(["s in L", "t not in L", "s in t", "WORD in s", '"a" in tags', "s not in tags"]),
        st.sampled_from(["i in nums", "x in NL", "i in [1, 2.5, x]", "x not in [0.3, R]", "b", "FLAG"]),
        st.tuples(strexpr(), st.sampled_from(["startswith", "endswith"]), strexpr()).map(
            lambda t: f"({t[0]}).{t[1]}({t[2]})"
        ),
        st.tuples(strexpr(), st.sampled_from(REGEXES)).map(lambda t: f'matches({t[0]}, "{t[1]}")'),
        st.tuples(st.sampled_from(["contains_email", "contains_phone"]), strexpr()).map(
            lambda t: f"{t[0]}({t[1]})"
        ),
        st.tuples(n, n).map(lambda t: f"({t[0]} > 0) == ({t[1]} > 0 or b)"),
    )


def rail_text(depth: int = 2) -> st.SearchStrategy[str]:
    return st.recursive(
        atom(depth),
        lambda sub: st.one_of(
            st.tuples(sub, st.sampled_from(["and", "or"]), sub).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            sub.map(lambda a: f"not ({a})"),
            st.tuples(sub, sub).map(lambda t: f"implies({t[0]}, {t[1]})"),
        ),
        max_leaves=4,
    )


values_strategy = st.fixed_dictionaries(
    {
        "i": ints,
        "j": ints,
        "x": floats,
        "y": floats,
        "s": texts,
        "t": texts,
        "b": st.booleans(),
        "side": st.sampled_from(["buy", "sell", "hold"]),
        "rec": st.fixed_dictionaries({"qty": ints, "price": floats, "name": texts}),
        "tags": st.lists(texts, max_size=3),
        "nums": st.lists(ints, max_size=3),
    }
)

CTX = z3.Context()
# the recursive rail strategy has a long repr; hypothesis warns when it prints it
pytestmark = pytest.mark.filterwarnings("ignore", category=HypothesisWarning)


def _agree(text: str, values: dict, scope) -> None:
    rail = parse_rail(text, scope, name="diff")
    fast = rail.holds(values)
    assert fast == z3_verdict(rail, values, CTX), f"{text} on {values}"
    assert rail.check(values).ok == fast


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=rail_text(), values=values_strategy)
@example(text="0.1 + 0.2 == 0.3", values={"x": 0.1})
@example(text="x + y == 0.3", values={"x": 0.1, "y": 0.2})
@example(text="(x + 1e300) - 1e300 > 0", values={"x": 0.5})
@example(text="x * 1e300 > 0", values={"x": 5e-324})
@example(text="i / (x - 0.1) > 1", values={"i": 1, "x": 0.1})
@example(text="i // j == -1 and i % j == -2", values={"i": 7, "j": -3})
@example(text="i == 9007199254740993", values={"i": 2**53 + 1})
@example(text="x == 9007199254740993", values={"x": float(2**53)})
def test_evaluator_and_z3_agree(text: str, values: dict, scope) -> None:
    full = {
        "i": 0, "j": 0, "x": 0.0, "y": 0.0, "s": "", "t": "", "b": False, "side": "buy",
        "rec": {"qty": 0, "price": 0.0, "name": ""}, "tags": [], "nums": [],
    }  # fmt: skip
    full.update(values)
    _agree(text, full, scope)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=floats, b=floats, c=floats, op=st.sampled_from(["==", "<", "<=", "!="]))
def test_real_arithmetic_near_ties(a: float, b: float, c: float, op: str, scope) -> None:
    """Sums and products compared with a third value: exactly where floats round."""
    values = {"x": a, "y": b, "rec": {"qty": 0, "price": c, "name": ""}}
    for text in (f"x + y {op} rec.price", f"x * y {op} rec.price", f"x - y {op} x", f"x / y {op} rec.price"):
        _agree(text, values, scope)


def test_decimal_semantics_of_floats(scope) -> None:
    """0.1 + 0.2 == 0.3 in rails (decimal meaning), unlike Python floats."""
    rail = parse_rail("x + y == 0.3", scope)
    assert rail.holds({"x": 0.1, "y": 0.2})
    assert not rail.holds({"x": 0.1, "y": 0.21})
    assert parse_rail("x == 0.30000000000000004", scope).holds({"x": 0.1 + 0.2})
    assert not parse_rail("x == 0.3", scope).holds({"x": 0.1 + 0.2})
