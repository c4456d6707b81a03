"""Random sets of rails on one record, and Z3's own verdict on their conjunction.

Shared by the prover's and the flow verifier's property tests: whatever plumbing the
prover adds (cones, aliased wires, labelled literals, minimised cores), its verdict on
"can these rails hold together?" must be the one a bare solver gives on the plain
conjunction of the rails and the record's type bounds.
"""

from __future__ import annotations

from typing import Any

import z3
from hypothesis import strategies as st

from workbench.rails import Scope, parse_rail
from workbench.rails.z3values import from_model, z3_string
from workbench.types import Float, Int, Record, Str

ITEM = Record("Item", qty=Int(ge=0), price=Float(), name=Str(max_len=3))
ITEM_SPEC = "{qty: {int: {ge: 0}}, price: float, name: {str: {max_len: 3}}}"
ITEM_SCOPE = Scope({"item": ITEM})

_CMP = st.sampled_from(["<", "<=", ">", ">=", "==", "!="])
_NUM = st.sampled_from(["0", "0.5", "2.5", "10", "-1.5", "7", "20"])
_SUMS = st.sampled_from(["item.qty + item.price", "item.qty - 2 * item.price", "2 * item.qty + item.price"])
_STRINGS = st.sampled_from(
    [
        'item.name == "ab"',
        "len(item.name) >= 2",
        'item.name.startswith("b")',
        'matches(item.name, "[a-c]+")',
        '"c" in item.name',
    ]
)

_atoms = st.one_of(
    st.tuples(_CMP, st.integers(-3, 12)).map(lambda t: f"item.qty {t[0]} {t[1]}"),
    st.tuples(_CMP, _NUM).map(lambda t: f"item.price {t[0]} {t[1]}"),
    st.tuples(_SUMS, _CMP, _NUM).map(" ".join),
    st.integers(0, 2).map(lambda k: f"item.qty % 3 == {k}"),
    _STRINGS,
)

rail_texts = st.recursive(
    _atoms,
    lambda sub: st.one_of(
        st.tuples(sub, st.sampled_from(["and", "or"]), sub).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        sub.map(lambda a: f"not ({a})"),
        st.tuples(sub, sub).map(lambda t: f"implies({t[0]}, {t[1]})"),
    ),
    max_leaves=3,
)
rail_sets = st.lists(rail_texts, min_size=1, max_size=4)


def conjunction(texts: list[str], *, types: bool = True) -> tuple[z3.CheckSatResult, dict[str, Any] | None]:
    """A bare solver's verdict on every rail of ``texts`` at once over one Item (with its
    type bounds unless ``types=False``), and its model as a plain Item when satisfiable."""
    ctx = z3.Context()
    terms = {"qty": z3.Int("qty", ctx), "price": z3.Real("price", ctx), "name": z3.String("name", ctx)}
    solver = z3.Solver(ctx=ctx)
    solver.set("timeout", 10_000)
    if types:
        solver.add(terms["qty"] >= 0, z3.Length(terms["name"]) <= 3)
    for text in texts:
        formula, _ = parse_rail(text, ITEM_SCOPE).to_z3(ctx, lambda var: terms[var.fields[0]])
        solver.add(formula)
    res = solver.check()
    if res != z3.sat:
        return res, None
    model = solver.model()
    return res, {
        "qty": from_model(model.eval(terms["qty"], model_completion=True), "int"),
        "price": from_model(model.eval(terms["price"], model_completion=True), "real"),
        "name": z3_string(model.eval(terms["name"], model_completion=True)),
    }
