"""Shared scope and helpers for the rails tests."""

from __future__ import annotations

from typing import Any

import pytest
import z3

from workbench.rails import Scope
from workbench.rails.ir import Var
from workbench.rails.parser import sort_of_type
from workbench.rails.rail import Rail
from workbench.rails.z3values import python_to_z3
from workbench.types import Bool, Enum, Float, Int, List, Record, Str

SIDE = Enum("buy", "sell", "hold", name="Side")
ORDER = Record("Order", side=SIDE, ticker=Str(pattern="[A-Z]{1,5}"), qty=Int(ge=0), price=Float(gt=0))
REC = Record("Rec", qty=Int(), price=Float(), name=Str())

NAMES = {
    "i": Int(),
    "j": Int(),
    "x": Float(),
    "y": Float(),
    "s": Str(),
    "t": Str(),
    "b": Bool(),
    "side": SIDE,
    "rec": REC,
    "tags": List(Str()),
    "nums": List(Int()),
    "order": ORDER,
    "cash": Float(ge=0),
}
CONSTANTS = {"K": 3, "R": 0.1, "L": ["ACME", "GLOBX"], "NL": [1, 2.5], "FLAG": True, "WORD": "AC"}


@pytest.fixture
def scope() -> Scope:
    return Scope(NAMES, CONSTANTS)


def z3_verdict(rail: Rail, values: dict[str, Any], ctx: z3.Context) -> bool:
    """The Z3 backend's verdict on concrete values (literals substituted, then solved)."""

    def leaf(var: Var) -> z3.ExprRef:
        value = values[var.root]
        for f in var.fields:
            value = value[f]
        sort = sort_of_type(var.type)
        if sort.kind == "list":
            item = sort.item
            assert item is not None
            elems = [python_to_z3(v, item.kind, ctx, item.enum) for v in value]
            from workbench.rails.rail import leaf_sort

            seq_sort = leaf_sort(sort, ctx)
            if not elems:
                return z3.Empty(seq_sort)
            units = [z3.Unit(e) for e in elems]
            return units[0] if len(units) == 1 else z3.Concat(*units)
        return python_to_z3(value, sort.kind, ctx, sort.enum)

    formula, _ = rail.to_z3(ctx, leaf)
    solver = z3.Solver(ctx=ctx)
    solver.set("timeout", 10_000)
    solver.add(formula)
    res = solver.check()
    assert res != z3.unknown, f"z3 unknown on {rail.text}: {solver.reason_unknown()}"
    return res == z3.sat
