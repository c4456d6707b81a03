"""Rail packs: loading, versions, instantiation in a flow's names, and each rail's behaviour."""

from __future__ import annotations

import pytest

from workbench.errors import RailError, UsageError
from workbench.rails import (
    Pack,
    Prover,
    RailTemplate,
    Scope,
    available_packs,
    load_pack,
    packs,
    register_pack,
)
from workbench.types import Enum, Float, Int, Record, Str

ORDER = Record("Order", side=Enum("buy", "sell", "hold"), ticker=Str(), qty=Int(ge=0), price=Float(gt=0))
USAGE = Record("Usage", input_tokens=Int(ge=0), output_tokens=Int(ge=0))
SCOPE = Scope(
    {"proposed": ORDER, "position": Int(), "now": Int(), "usage": USAGE, "reply": Str()},
    {"RESTRICTED": ["ACME", "GLOBX"], "max_notional": 10_000},
)


def test_registry_lists_and_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    # a private copy of the registry: finance@2 must not leak into later tests
    monkeypatch.setattr(packs, "_REGISTRY", {name: dict(v) for name, v in packs._REGISTRY.items()})
    assert {"finance@1", "pii@1", "budget@1"} <= set(available_packs())
    assert load_pack("finance").version == 1
    assert load_pack("finance@1") is load_pack("finance", 1)
    with pytest.raises(UsageError, match="no rail pack 'nope'"):
        load_pack("nope")
    with pytest.raises(UsageError, match="no version 9"):
        load_pack("pii@9")
    newer = Pack("finance", 2, "test", (RailTemplate("t", "order.qty > 0", ()),))
    register_pack(newer)
    assert load_pack("finance") is newer and load_pack("finance@1").version == 1
    with pytest.raises(UsageError, match="already registered"):
        register_pack(newer)


def test_templates_list_parameters() -> None:
    cap = load_pack("finance@1").template("notional_cap")
    assert [p.name for p in cap.params] == ["order", "max_notional"]
    assert [p.kind for p in cap.params] == ["value", "constant"]
    with pytest.raises(UsageError, match="has no rail"):
        load_pack("finance@1").template("nope")


def test_instantiate_renames_in_the_syntax_tree() -> None:
    cap = load_pack("finance@1").template("notional_cap")
    assert cap.instantiate({"order": "proposed"}) == "proposed.qty * proposed.price <= max_notional"
    assert (
        cap.instantiate({"order": "proposed", "max_notional": 5.5}) == "proposed.qty * proposed.price <= 5.5"
    )
    text = cap.instantiate({"order": "proposed", "max_notional": "cash * 0.5"})
    assert text == "proposed.qty * proposed.price <= cash * 0.5"
    with pytest.raises(UsageError, match="no parameter"):
        cap.instantiate({"limit": 3})
    with pytest.raises(UsageError, match="not a rail expression"):
        cap.instantiate({"order": "proposed +"})


def test_finance_pack_rails_check_orders() -> None:
    fin = load_pack("finance@1")
    args = {
        "notional_cap": {"order": "proposed"},
        "position_limit": {"order": "proposed", "max_position": 100},
        "restricted_list": {"order": "proposed", "restricted": "RESTRICTED"},
        "blackout": {"order": "proposed", "blackout_start": 1000, "blackout_end": 2000},
    }
    rails = {r.name: r for r in fin.rails(SCOPE, args)}
    ok = {"proposed": {"side": "buy", "ticker": "XYZ", "qty": 10, "price": 5.0}, "position": 50, "now": 10}
    for r in rails.values():
        assert r.check(ok).ok, r.name
    big = {**ok, "proposed": {**ok["proposed"], "qty": 3000}}
    assert rails["finance.notional_cap"].check(big).failed_atoms == (
        "proposed.qty * proposed.price <= max_notional",
    )
    assert not rails["finance.position_limit"].holds({**ok, "position": 95})
    sell = {**ok, "proposed": {**ok["proposed"], "side": "sell"}, "position": -95}
    assert not rails["finance.position_limit"].holds(sell)
    assert not rails["finance.restricted_list"].holds(
        {**ok, "proposed": {**ok["proposed"], "ticker": "ACME"}}
    )
    assert not rails["finance.blackout"].holds({**ok, "now": 1500})
    assert rails["finance.blackout"].holds({**ok, "now": 2000})
    assert rails["finance.blackout"].holds({**ok, "now": 1500, "proposed": {**ok["proposed"], "qty": 0}})


def test_unbound_parameter_resolves_in_the_flow_or_fails_clearly() -> None:
    cap = load_pack("finance@1").template("notional_cap")
    with pytest.raises(RailError, match=r"rail 'finance\.notional_cap', column 1: unknown name 'order'"):
        cap.parse(SCOPE, name="finance.notional_cap")
    assert cap.parse(SCOPE, {"order": "proposed"}).names == frozenset({"proposed"})


def test_pii_rails_on_strings() -> None:
    pii = load_pack("pii@1")
    assert all(t.applies_to == "each-str-leaf" for t in pii.templates)
    rails = {t.name: t.parse(SCOPE, {"text": "reply"}) for t in pii.templates}
    clean = "Buy 10 ACME at 5.0 on 2026-11-29, order 12345"
    for r in rails.values():
        assert r.holds({"reply": clean}), r.text
    cases = {
        "no_email": "write to jane.doe@example.com today",
        "no_phone": "call +44 (20) 7946 0958",
        "no_card": "card 4111 1111 1111 1111 exp 12/30",
        "no_iban": "pay to GB82 WEST 1234 5698 7654 32 please",
    }
    for name, text in cases.items():
        assert not rails[name].holds({"reply": text}), name
    assert rails["no_card"].holds({"reply": "card 4111 1111 1111 1112"})  # Luhn fails
    assert rails["no_iban"].holds({"reply": "GB83 WEST 1234 5698 7654 32"})  # mod 97 fails


def test_pii_regular_predicates_are_provable() -> None:
    p = Prover()
    p.declare("reply", Str(pattern="[0-9 ]*"))
    rail = load_pack("pii@1").template("no_email").parse(SCOPE, {"text": "reply"})
    assert p.prove(rail, {"reply": "reply"}).status == "vacuous"  # digits and spaces hold no e-mail


def test_budget_pack() -> None:
    budget = load_pack("budget@1")
    args = {
        "token_budget": {"max_tokens": 1000},
        "cost_budget": {"input_price": 0.000002, "output_price": 0.00001, "max_cost": 0.01},
    }
    rails = {r.name: r for r in budget.rails(SCOPE, args)}
    small = {"usage": {"input_tokens": 500, "output_tokens": 500}}
    assert rails["budget.token_budget"].holds(small) and rails["budget.cost_budget"].holds(small)
    assert not rails["budget.token_budget"].holds({"usage": {"input_tokens": 500, "output_tokens": 501}})
    # 500 * 0.000002 + 900 * 0.00001 = 0.001 + 0.009 = 0.01 exactly (decimal semantics)
    assert rails["budget.cost_budget"].holds({"usage": {"input_tokens": 500, "output_tokens": 900}})
    assert not rails["budget.cost_budget"].holds({"usage": {"input_tokens": 501, "output_tokens": 900}})
