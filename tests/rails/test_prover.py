"""Prover status table: small hand-made obligations with known verdicts."""

from __future__ import annotations

from fractions import Fraction

import pytest
import z3
from hypothesis import example, given, settings
from hypothesis import strategies as st

from workbench.errors import UsageError
from workbench.rails import Prover, Scope, explain, parse_rail
from workbench.rails.prover import JointResult
from workbench.types import Enum, Float, Int, List, Record, Str

from .conftest import ORDER
from .rail_sets import ITEM, ITEM_SCOPE, conjunction, rail_sets

SCOPE = Scope(
    {
        "order": ORDER,
        "cash": Float(ge=0),
        "n": Int(),
        "m": Int(),
        "note": Str(max_len=20),
        "tags": List(Str()),
    },
    {"RESTRICTED": ["ACME", "GLOBX"], "CAP": 1000},
)


def _trader() -> Prover:
    """analyst.order -> risk.proposed (a wire), cash shared, budget rail upstream."""
    p = Prover(timeout_ms=2000)
    p.declare("cash", Float(ge=0))
    p.declare("analyst.order", ORDER)
    p.declare("risk.proposed", ORDER)
    p.declare("note", Str(max_len=20))
    p.declare("n", Int(ge=0, le=10))
    p.declare("m", Int())
    p.declare("tags", List(Str(), max_items=3))
    p.equate("analyst.order", "risk.proposed")
    p.assume(rail("order.qty * order.price <= cash"), {"order": "analyst.order", "cash": "cash"}, "budget")
    p.assume(rail("order.ticker not in RESTRICTED"), {"order": "analyst.order"}, "restricted")
    return p


def rail(text: str, name: str = "goal"):
    return parse_rail(text, SCOPE, name=name)


DOWN = {"order": "risk.proposed", "cash": "cash", "n": "n", "m": "m", "note": "note", "tags": "tags"}

TABLE = [
    # proved: implied by upstream rails through the wire
    ("order.qty * order.price <= cash", "proved"),
    ("order.ticker != 'ACME'", "proved"),
    ("order.qty * order.price <= cash + 1", "proved"),
    ("implies(order.qty > 0, order.price <= cash)", "proved"),
    ("implies(order.ticker.startswith('ACM'), order.ticker != 'ACME')", "proved"),
    ("implies(n > 5, n * n > 25)", "vacuous"),
    # enforced: not implied
    ("order.qty <= 100", "enforced"),
    ("order.price < cash", "enforced"),
    ("order.side != 'hold'", "enforced"),
    ("not contains_email(note)", "enforced"),
    ("len(tags) < 3", "enforced"),
    ("'x' not in tags", "enforced"),
    ("m // 3 != 2", "enforced"),
    # conflict: no message passes upstream rails and this one
    ("order.ticker == 'ACME'", "conflict"),
    ("order.qty * order.price > cash", "conflict"),
    ("n > 10", "conflict"),
    ("len(note) > 25", "conflict"),
    ("len(tags) == 4", "conflict"),
    # vacuous: true by types alone
    ("order.qty >= 0", "vacuous"),
    ("matches(order.ticker, '[A-Z]+')", "vacuous"),
    ("len(order.ticker) <= 5", "vacuous"),
    ("order.side in ['buy', 'sell', 'hold']", "vacuous"),
    ("cash >= 0 or m > 1", "vacuous"),
    ("n // 1 == n", "vacuous"),
]


@pytest.mark.parametrize(("text", "status"), TABLE)
def test_status_table(text: str, status: str) -> None:
    p = _trader()
    goal = rail(text)
    result = p.prove(goal, {k: v for k, v in DOWN.items() if k in goal.names})
    assert result.status == status, result
    if status == "enforced":
        assert result.checked
        ex = result.counterexample
        assert ex is not None
        # the counterexample covers the ports connected to the rail, wires included
        assert set(ex) >= {DOWN[name] for name in goal.names}
        values = {name: ex[DOWN[name]] for name in goal.names}
        assert not goal.holds(values)  # it breaks the rail...
        if "order" in goal.names and "cash" in ex:
            assert ex["analyst.order"] == ex["risk.proposed"]  # ...the wire holds...
            upstream = {"order": ex["analyst.order"], "cash": ex["cash"]}
            assert rail("order.qty * order.price <= cash").holds(upstream)  # ...and it passes upstream
            ORDER.validate(ex["risk.proposed"])
    if status == "conflict":
        assert result.core and set(result.core) <= {
            "budget",
            "restricted",
            "type:n",
            "type:note",
            "type:tags",
        }


def test_conflict_core_is_minimal() -> None:
    p = _trader()
    result = p.prove(rail("order.ticker == 'ACME'"), {"order": "risk.proposed"})
    assert result.conflict_with == ("restricted",)  # the wire aliases both ends: not a hypothesis
    result = p.prove(rail("order.qty * order.price > cash"), {"order": "risk.proposed", "cash": "cash"})
    assert set(result.core) == {"budget"}


def test_vacuous_when_hypotheses_contradict() -> None:
    p = _trader()
    p.assume(rail("cash < 0"), {"cash": "cash"}, "broken")
    result = p.prove(rail("order.qty <= 5"), {"order": "risk.proposed"})
    assert result.status == "vacuous"
    assert set(result.core) == {"type:cash", "broken"}
    assert p.prove(rail("order.qty <= 5"), {"order": "risk.proposed"}, using=["budget"]).status == "enforced"


def test_using_selects_hypotheses() -> None:
    p = _trader()
    goal = rail("order.ticker != 'GLOBX'")
    assert p.prove(goal, {"order": "risk.proposed"}).status == "proved"
    assert p.prove(goal, {"order": "risk.proposed"}, using=["budget"]).status == "enforced"
    with pytest.raises(UsageError, match="unknown hypothesis label"):
        p.prove(goal, {"order": "risk.proposed"}, using=["nope"])


def test_unsupported_on_timeout_and_checksum_counterexample() -> None:
    p = Prover(timeout_ms=200)
    for name in ("a", "b", "c"):
        p.declare(name, Int(ge=1))
    scope = Scope({"a": Int(), "b": Int(), "c": Int()})
    fermat = parse_rail("a * a * a + b * b * b != c * c * c", scope)
    result = p.prove(fermat, {"a": "a", "b": "b", "c": "c"})
    assert result.status == "unsupported"
    assert "unknown" in result.reason
    q = Prover()
    q.declare("note", Str(max_len=20))
    result = q.prove(rail("not luhn_card(note)"), {"note": "note"})
    assert result.status == "unsupported"
    assert "luhn_card" in result.reason


def test_uninterpreted_predicates_still_prove_soundly() -> None:
    p = Prover()
    p.declare("up", Str())
    p.declare("down", Str())
    p.equate("up", "down")
    p.assume(rail("not luhn_card(note)"), {"note": "up"}, "pii")
    assert p.prove(rail("not luhn_card(note)"), {"note": "down"}).status == "proved"
    assert p.prove(rail("luhn_card(note)"), {"note": "down"}).status == "conflict"


def test_exact_reals_in_proofs() -> None:
    p = Prover()
    p.declare("x", Float())
    scope = Scope({"x": Float()})
    p.assume(parse_rail("x == 0.1 + 0.2", scope), {"x": "x"}, "sum")
    assert p.prove(parse_rail("x == 0.3", scope), {"x": "x"}).status == "proved"


def test_counterexample_rebuilds_records_and_enums() -> None:
    side = Enum("buy", "sell", name="Side")
    typ = Record("T", inner=Record("I", side=side, price=Float(gt=0, lt=1)))
    p = Prover()
    p.declare("node.out", typ)
    scope = Scope({"t": typ})
    result = p.prove(parse_rail("t.inner.side == 'buy'", scope), {"t": "node.out"})
    assert result.status == "enforced"
    value = result.counterexample["node.out"]
    assert value["inner"]["side"] == "sell"
    assert 0 < value["inner"]["price"] < 1
    typ.validate(value)


def test_feasible_range() -> None:
    p = _trader()
    fixed = {"cash": 100.0, "analyst.order.price": 3.0}
    r = p.feasible_range("analyst.order.qty", fixed=fixed)
    assert (r.status, r.lo, r.hi) == ("feasible", 0, 33)
    r = p.feasible_range("analyst.order.price", fixed={"cash": 100.0, "analyst.order.qty": 3})
    assert (r.lo, r.lo_strict, r.hi, r.hi_strict) == (0, True, Fraction(100, 3), False)
    assert r.contains(33.3) and not r.contains(33.4) and not r.contains(0)
    assert p.feasible_range("analyst.order.ticker").hi == 5
    assert p.feasible_range("m").lo is None
    assert p.feasible({"analyst.order.ticker": "ACME"}) is False
    assert p.feasible({"analyst.order.ticker": "ABC"}) is True
    bad = p.feasible_range("analyst.order.qty", fixed={"analyst.order.ticker": "ACME"})
    assert bad.status == "infeasible"


def test_usage_errors() -> None:
    p = _trader()
    with pytest.raises(UsageError, match="declared twice"):
        p.declare("cash", Float())
    with pytest.raises(UsageError, match="used twice"):
        p.assume(rail("cash >= 1"), {"cash": "cash"}, "budget")
    with pytest.raises(UsageError, match="no path for"):
        p.prove(rail("cash >= 1"), {})
    with pytest.raises(UsageError, match="not declared"):
        p.prove(rail("cash >= 1"), {"cash": "nowhere"})
    with pytest.raises(UsageError, match="fields differ"):
        p.equate("cash", "analyst.order")


def test_explain_shows_rail_smtlib_hypotheses_and_verdict() -> None:
    p = _trader()
    goal = rail("order.qty <= CAP", name="cap")
    text = explain(goal, p, {"order": "risk.proposed"})
    assert "rail 'cap': order.qty <= CAP" in text
    assert "(declare-fun risk.proposed.qty () Int)" in text
    assert any(
        line.strip().startswith("(assert") and "risk.proposed.qty 1000" in line for line in text.splitlines()
    ) or ("(assert (>= 1000 risk.proposed.qty))" in text)
    assert "[budget] rail 'goal': order.qty * order.price <= cash" in text
    assert "verdict: enforced" in text and "counterexample:" in text
    assert "risk.proposed.qty is analyst.order.qty" in text  # the wire, shown
    alone = explain(rail("order.qty >= 0"))
    assert "verdict: vacuous" in alone and "[type:order]" in alone
    smt = rail("order.qty >= 0 and order.ticker != 'ACME'").to_smtlib()
    assert "(declare-fun order.ticker () String)" in smt and '"ACME"' in smt


def test_wires_between_int_and_float_and_between_enums() -> None:
    p = Prover()
    small, big = Enum("buy", "sell"), Enum("buy", "sell", "hold")
    p.declare("a.out", Record("A", side=small, qty=Int()))
    p.declare("b.in", Record("B", side=big, qty=Float()))
    p.equate("a.out", "b.in")
    assert "wire:a.out=b.in" in p.labels()
    scope = Scope({"o": Record("B", side=big, qty=Float())})
    # true by types and wires alone: the wire's source has no 'hold', ints are never 2.5
    assert p.prove(parse_rail("o.side != 'hold'", scope), {"o": "b.in"}).status == "vacuous"
    assert p.prove(parse_rail("o.qty != 2.5", scope), {"o": "b.in"}).status == "vacuous"
    p.assume(parse_rail("o.qty <= 5", scope), {"o": "b.in"}, "small")
    assert p.prove(parse_rail("o.qty < 6", scope), {"o": "b.in"}).status == "proved"
    result = p.prove(parse_rail("o.qty != 2", scope), {"o": "b.in"})
    assert result.status == "enforced" and result.counterexample["a.out"]["qty"] == 2


@settings(max_examples=100, deadline=None)
@given(
    i=st.one_of(
        st.integers(-(2**60), 2**60),
        st.integers(2**53 - 3, 2**53 + 9),
        st.integers(-(2**53) - 9, -(2**53) + 3),
        st.integers(0, 1020).map(lambda k: 2**k + 1),
        st.integers(2**1000, 2**1023),
    )
)
def test_an_int_at_a_float_port_reads_as_its_float(i: int) -> None:
    """Regression: the wire int -> float was an exact equation, but the port holds
    ``float(i)`` (``float(2**53 + 1) == 2**53``): the prover must allow exactly that."""
    p = Prover()
    p.declare("a", Int())
    p.declare("b", Float())
    p.equate("a", "b")
    assert p.feasible({"a": i, "b": float(i)}) is True
    if float(i) != i:
        assert p.feasible({"a": i, "b": float(i) + float(i) * 2**-40}) is False


def test_long_strings_known_by_length_are_fast() -> None:
    """Z3's string solver can run for minutes building a 1001-character witness; a
    string used only through len() and max_len is an integer to the prover."""
    import time

    p = Prover(timeout_ms=2000)
    p.declare("news", Str(max_len=2000))
    scope = Scope({"news": Str()})
    start = time.perf_counter()
    result = p.prove(parse_rail("len(news) <= 1000", scope), {"news": "news"})
    assert result.status == "enforced" and result.checked
    assert 1000 < len(result.counterexample["news"]) <= 2000
    p.assume(parse_rail("len(news) < 500", scope), {"news": "news"}, "short")
    assert p.prove(parse_rail("len(news) <= 1000", scope), {"news": "news"}).status == "proved"
    assert time.perf_counter() - start < 5


def _item_prover(texts: list[str], **rails_at: str) -> Prover:
    p = Prover(timeout_ms=5000)
    p.declare("in.item", ITEM)
    p.declare("t.item", ITEM)
    p.equate("in.item", "t.item")
    for i, text in enumerate(texts):
        p.assume(parse_rail(text, ITEM_SCOPE, name=f"r{i}"), {"item": "t.item"}, f"r{i}")
    for label, text in rails_at.items():
        p.assume(parse_rail(text, ITEM_SCOPE, name=label), {"item": "in.item"}, label)
    return p


def test_rails_that_hold_alone_may_conflict_together() -> None:
    """Regression: three rails on one port, each satisfiable, admit no value together."""
    texts = ["item.qty + item.price >= 20", "item.qty <= 5", "item.price <= 10"]
    p = _item_prover(texts)
    for text in texts:
        assert p.prove(parse_rail(text, ITEM_SCOPE), {"item": "t.item"}, using=[]).status == "enforced"
    result = p.together(["r0", "r1", "r2"], using=[])
    assert result.status == "conflict" and set(result.core) == {"r0", "r1", "r2"}
    assert p.together(["r1", "r2"], using=[]).status == "satisfiable"
    # an upstream rail (across a wire) can make a port's rails impossible
    p = _item_prover(texts[1:], up="item.qty + item.price >= 20")
    assert p.together(["r0", "r1"], using=[]).status == "satisfiable"
    result = p.together(["r0", "r1"], using=["up"])
    assert result.status == "conflict" and set(result.core) == {"r0", "r1", "up"}


def test_together_unreachable_witness_and_usage() -> None:
    p = _item_prover(["item.qty >= 3", "item.price < item.qty"], broken="item.qty < 0")
    result = p.together(["r0", "r1"], using=["broken"])
    assert result.status == "unreachable" and set(result.core) == {"broken", "type:in.item"}
    result = p.together(["r0", "r1"], using=[])
    assert result.status == "satisfiable" and result.checked
    item = result.witness["t.item"]
    assert item["qty"] >= 3 and item["price"] < item["qty"] and result.witness["in.item"] == item
    assert p.together(["r0"], using=[], witness=False) == JointResult("satisfiable")
    with pytest.raises(UsageError, match="unknown hypothesis label 'nope'"):
        p.together(["r0", "nope"])
    with pytest.raises(UsageError, match=r"unknown hypothesis label 'type:t\.item'"):
        p.together(["type:t.item"])


def test_components_split_by_shared_variables() -> None:
    texts = ["item.qty >= 3", "item.price < 2", 'item.name == "ab"', "item.qty + item.price > 1"]
    p = _item_prover(texts, link="item.qty == item.price")
    assert sorted(p.components(["r0", "r1", "r2"], using=[])) == [["r0"], ["r1"], ["r2"]]
    assert sorted(p.components(["r0", "r1", "r2", "r3"], using=[])) == [["r0", "r1", "r3"], ["r2"]]
    # joined through a hypothesis in use (across the wire in.item -> t.item)
    assert sorted(p.components(["r0", "r1", "r2"], using=["link"])) == [["r0", "r1"], ["r2"]]
    with pytest.raises(UsageError, match="unknown hypothesis label"):
        p.components(["r9"])


@settings(max_examples=60, deadline=None)
@given(texts=rail_sets)
@example(texts=["item.qty + item.price >= 20", "item.qty <= 5", "item.price <= 10"])
@example(texts=["item.qty >= 10", "item.qty <= 5", "item.price != 2.5"])
def test_together_agrees_with_a_bare_solver(texts: list[str]) -> None:
    """Conflict iff the plain conjunction is unsat; the core is minimal; otherwise the
    witness passes the type and every rail at runtime (when its reals are floats)."""
    p = _item_prover(texts)
    labels = [f"r{i}" for i in range(len(texts))]
    result = p.together(labels)
    expected, _ = conjunction(texts)
    assert expected != z3.unknown and result.status != "unknown"
    if expected == z3.unsat:
        assert result.status == "conflict", result
        chosen = [texts[int(label[1:])] for label in result.core if label in labels]
        typed = any(label.startswith("type:") for label in result.core)
        assert conjunction(chosen, types=typed)[0] == z3.unsat
        for i in range(len(chosen)):  # minimal: without any one of them a value exists
            assert conjunction(chosen[:i] + chosen[i + 1 :], types=typed)[0] == z3.sat
        return
    assert result.status == "satisfiable", result
    item = result.witness["t.item"]
    if not isinstance(item["price"], float):  # Z3 chose a rational no float stands for (1/3)
        assert not result.checked and "is not a float" in result.reason
        return
    assert result.checked, result
    ITEM.validate(item)
    for text in texts:
        assert parse_rail(text, ITEM_SCOPE).holds({"item": item}), (text, item)
