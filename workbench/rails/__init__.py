"""Rails: a typed rule language checked by Z3 (installed as ``workbench.rails``).

    scope = Scope({"order": Order, "cash": Float(ge=0)}, {"RESTRICTED": ["ACME"]})
    rail = parse_rail("order.qty * order.price <= cash", scope, name="budget")
    rail.check({"order": {...}, "cash": 100.0})   # runtime: compiled evaluator, microseconds
    prover = Prover()                               # static: Z3, one context per prover
    prover.declare("analyst.order", Order); prover.declare("cash", Float(ge=0))
    prover.prove(rail, {"order": "analyst.order", "cash": "cash"}).status

Imports nothing above ``workbench.types``/``workbench.errors`` (docs/architecture.md, "Layers").
Language and semantics: docs/rails.md.
"""

from .errors import RailError, RailNameError, RailSortError, RailSyntaxError, RailValueError
from .explain import explain
from .feasible import FeasibleRange
from .packs import Pack, Param, RailTemplate, available_packs, load_pack, register_pack
from .parser import Scope
from .prover import STATUSES, ProofResult, Prover
from .rail import Rail, Verdict, parse_rail

__all__ = [
    "STATUSES",
    "FeasibleRange",
    "Pack",
    "Param",
    "ProofResult",
    "Prover",
    "Rail",
    "RailError",
    "RailNameError",
    "RailSortError",
    "RailSyntaxError",
    "RailTemplate",
    "RailValueError",
    "Scope",
    "Verdict",
    "available_packs",
    "explain",
    "load_pack",
    "parse_rail",
    "register_pack",
]
