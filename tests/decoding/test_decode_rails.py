"""Rails while decoding: masks that only let the model write answers the rails allow."""

from __future__ import annotations

import json
import random
from fractions import Fraction

import pytest

from workbench.api import load
from workbench.decoding import (
    DecodeConflict,
    DecodeRails,
    Interval,
    RailsConstraint,
    answer_fields,
    number_prefix_ok,
    request_rails,
    scan,
)
from workbench.examples import flow_path
from workbench.flow import loads
from workbench.models.json_schema import JsonSchemaConstraint
from workbench.models.local import DEFAULT_MODEL_DIR
from workbench.models.tokenizer import Tokenizer
from workbench.rails import Scope, parse_rail
from workbench.runtime import Executor
from workbench.spans import MemoryTracer
from workbench.types import parse_type


def test_number_prefixes_against_a_range():
    rng = Interval(Fraction(3), Fraction(250))
    assert number_prefix_ok("2", rng, True)  # 2x, 2xx
    assert number_prefix_ok("26", rng, True) and not number_prefix_ok(
        "26", Interval(Fraction(30), Fraction(250)), True
    )
    assert not number_prefix_ok("251", rng, True) and not number_prefix_ok("0", rng, True)
    assert not number_prefix_ok("-", rng, True) and not number_prefix_ok("3.", rng, True)
    small = Interval(Fraction(0), Fraction(1, 2), True, False)  # (0, 0.5]
    assert number_prefix_ok("0", small, False) and number_prefix_ok("0.", small, False)
    assert number_prefix_ok("0.5", small, False) and not number_prefix_ok("0.6", small, False)
    assert not number_prefix_ok("1", small, False) and not number_prefix_ok("0.5e", small, False)


def test_scan_reads_finished_fields_and_the_value_being_written():
    p = scan('{"side": "buy", "qty": 12, "price": 3.')
    assert p is not None and p.done == (("side", "buy"), ("qty", 12)) and (p.key, p.text) == ("price", "3.")
    assert scan('{"qty": 12').done == ()  # 12 may still become 120


ORDER = parse_type(
    {"side": {"enum": ["buy", "sell", "hold"]}, "ticker": {"str": {"pattern": "[A-Z]{1,5}"}},
     "qty": {"int": {"ge": 0}}, "price": {"float": {"gt": 0}}}
)  # fmt: skip


def _plan(texts: dict[str, str], typ=ORDER, extra=None) -> DecodeRails:
    scope = Scope(
        {"order": typ, "cash": parse_type({"float": {"ge": 0}}), **(extra or {})},
        {"RESTRICTED": ["ACME", "GLOBX"]},
    )
    rails = [(n, parse_rail(t, scope, name=n)) for n, t in texts.items()]
    return DecodeRails(rails, answer_fields({"order": typ}))


def test_rails_that_cannot_be_masks_are_rejected_instead():
    plan = _plan({"budget": "order.qty * order.price <= cash", "short": "len(order.ticker) <= 3"})
    assert plan.how == {"budget": "mask", "short": "reject"}
    assert "length" in plan.why["short"]


def test_rails_that_contradict_each_other_are_refused_with_their_names():
    plan = _plan(
        {"low": "order.qty * order.price <= cash", "high": "order.qty >= 1 and order.price >= cash + 1"}
    )
    known, _ = plan.known({"cash": 5.0})
    with pytest.raises(DecodeConflict) as info:
        plan.conflict(known)
    assert set(info.value.rails) == {"low", "high"} and "cash" in str(info.value)


def test_a_product_of_open_fields_is_narrowed_without_asking_the_optimiser(monkeypatch):
    """qty * price <= cash before qty or price is written: Z3's optimiser would only give up at
    its timeout (about a second per side), so price is pinned at samples of its type instead
    (price > 0: just above 0, 0.001, bounds qty by cash / 0.001, a value it surely allows); once qty is
    written the rail is linear in price and bounds it exactly, read off the rail without Z3."""
    import workbench.decoding.solver as solver

    plan = _plan({"budget": "order.qty * order.price <= cash"})
    known, _ = plan.known({"cash": 700.0})
    asked = []
    real = solver.feasible_range

    def spy(ctx, term, formulas, timeout_ms):
        asked.append(str(term))
        return real(ctx, term, formulas, timeout_ms)

    monkeypatch.setattr(solver, "feasible_range", spy)
    assert plan.interval(known, "qty") == Interval(0, 700 * 1000)
    assert asked == []
    with_qty = tuple(sorted((*known, ("order.qty", 10))))
    price = plan.interval(with_qty, "price")
    assert asked == []
    assert price == Interval(0, 70, lo_strict=True)  # 0 < price <= 700 / 10


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.from_directory(DEFAULT_MODEL_DIR)


def _random_decode(constraint: RailsConstraint, tokenizer: Tokenizer, rng: random.Random) -> str:
    """Drive the constraint with random choices among the allowed tokens: a valid answer can
    only come from the masks. Pieces that end a value are favoured so answers stay short."""
    state = constraint.start(tokenizer)
    text = ""
    for _ in range(120):
        if state.is_finished():
            break
        words = state.allowed_tokens()
        ids = [t for t in range(tokenizer.vocab_size) if (int(words[t // 32]) >> (t % 32)) & 1]
        assert ids, f"dead end after {text!r}"
        closing = [t for t in ids if any(c in tokenizer.decode([t]) for c in ',}"')]
        token = rng.choice(closing if closing and rng.random() < 0.4 else ids)
        state.advance(token)
        if token in tokenizer.eos_token_ids:
            break
        text += tokenizer.decode([token])
    return text


def test_random_tokens_under_the_masks_always_satisfy_random_linear_rails(tokenizer):
    rng = random.Random(7)
    checked = 0
    for trial in range(12):
        names = [f"f{i}" for i in range(rng.randint(2, 3))]
        fields = {
            n: rng.choice([{"int": {"ge": -50, "le": 50}}, {"float": {"ge": -20, "le": 20}}, {"int": {}}])
            for n in names
        }
        fields["tag"] = {"enum": ["a", "b", "c"]}
        typ = parse_type(fields)
        rails = {}
        for k in range(rng.randint(1, 2)):
            terms = " + ".join(f"{rng.randint(-3, 3) or 1} * order.{n}" for n in rng.sample(names, 2))
            rails[f"r{k}"] = f"{terms} <= cash"
        rails["tagged"] = 'order.tag != "b" or order.' + names[0] + " >= 0"
        plan = _plan(rails, typ)
        cash = rng.choice([0.0, 3.5, 40.0])
        known, _ = plan.known({"cash": cash})
        schema = JsonSchemaConstraint(typ.to_json_schema(), tokenizer)
        for _ in range(3):
            text = _random_decode(RailsConstraint(plan, known).constrain(schema), tokenizer, rng)
            value = json.loads(text)  # parses ...
            typ.validate(value)  # ... as the type ...
            env = {"order": value, "cash": cash}
            for name, rail in plan.rails:  # ... and satisfies every rail
                assert rail.holds(env), (trial, name, rail.text, text)
            checked += 1
    assert checked == 36


def _trader_flow():
    text = (
        flow_path("trader")
        .read_text()
        .replace(
            'check: "order.ticker not in RESTRICTED"}',
            'check: "order.ticker not in RESTRICTED", enforce: decode}',
        )
    )
    return loads(text)


NEWS = [
    "ACME beats estimates; shares at 12.50",
    "GLOBX recalls its product; stock falls to 3.20",
    "BOLT shares jump after a record quarter; the stock trades at 12.50",
    "ACME and GLOBX merge at 80.00 a share",
    "ZED cuts guidance, trades at 0.75",
]


def test_trader_on_the_tiny_model_always_keeps_the_budget_and_the_restricted_list():
    flow = _trader_flow()
    executor = Executor(flow, tracer=(tracer := MemoryTracer()))
    runs = [(news, cash) for news in NEWS for cash in (0.05, 0.5, 7.0, 1000.0)]
    for news, cash in runs:
        result = executor.run({"news": news, "cash": cash})
        assert result.status == "ok", (news, cash, result.error)
        order = json.loads(tracer.by_name("chat")[-1].attributes["gen_ai.completion"])
        assert order["qty"] * order["price"] <= cash and order["ticker"] not in ("ACME", "GLOBX")
    chat = tracer.by_name("chat")[-1]
    assert json.loads(chat.attributes["workbench.decode.rails"]) == {"budget": "mask", "restricted": "mask"}
    steps = [e.attributes for e in chat.events if e.name == "workbench.decode.step"]
    assert all("workbench.decode.allowed" in s for s in steps)
    assert any("budget" in s.get("workbench.decode.rails", "") for s in steps)


def test_decode_rails_in_conflict_stop_the_node_before_generation():
    text = (
        flow_path("trader")
        .read_text()
        .replace(
            "rails:\n",
            "rails:\n  dear: {on: analyst.order, enforce: decode,"
            ' check: "order.qty >= 1 and order.price > cash"}\n',
        )
    )
    result = Executor(loads(text)).run({"news": "n", "cash": 10.0})
    assert result.status == "failed"
    assert (
        "'budget'" in str(result.error)
        and "'dear'" in str(result.error)
        and "contradict" in str(result.error)
    )


def test_the_shipped_trader_masks_its_budget_rail():
    tracer = MemoryTracer()
    result = Executor(load(flow_path("trader")), tracer=tracer).run({"news": "BOLT at 12.50", "cash": 0.5})
    (chat,) = tracer.by_name("chat")
    assert json.loads(chat.attributes["workbench.decode.rails"]) == {"budget": "mask"}
    order = json.loads(chat.attributes["gen_ai.completion"])
    assert order["qty"] * order["price"] <= 0.5, result


def test_fields_no_rail_reads_do_not_cost_new_solver_queries():
    plan = _plan({"budget": "order.qty * order.price <= cash"})
    known, _ = plan.known({"cash": 7.0})
    constraint = RailsConstraint(plan, known)
    assert constraint.viable(scan('{"side": "buy", "ticker": "BOLT", "qty": 3, "price": 1.'))
    queries = len(plan._cache)
    for ticker, side in (("ZED", "sell"), ("KITE", "hold")):  # same budget, other unread fields
        partial = scan(f'{{"side": "{side}", "ticker": "{ticker}", "qty": 3, "price": 1.')
        assert RailsConstraint(plan, known).viable(partial)
    assert len(plan._cache) == queries
    assert not constraint.viable(scan('{"side": "buy", "ticker": "BOLT", "qty": 3, "price": 3.'))


STOCK = parse_type({"ticker": {"str": {}}, "qty": {"int": {}}, "price": {"float": {"ge": 1}}})


def test_a_quantity_no_price_allowed_by_the_type_can_pay_for_is_masked_while_written(tokenizer):
    """qty * price <= 50 with price >= 1 (its type) bounds qty by 50 before price is written:
    a partial qty such as 363 must be refused at once, not left to a dead end after it."""
    plan = _plan({"budget": "order.qty * order.price <= 50"}, STOCK)
    known, _ = plan.known({})
    constraint = RailsConstraint(plan, known)
    assert plan.interval(known, "qty") == Interval(None, 50)
    assert constraint.viable(scan('{"ticker": "MEZ", "qty": 36'))  # 36 itself still fits
    assert not constraint.viable(scan('{"ticker": "MEZ", "qty": 363'))
    assert constraint.viable(scan('{"ticker": "MEZ", "qty": 50'))
    assert not constraint.viable(scan('{"ticker": "MEZ", "qty": 51'))
    schema = JsonSchemaConstraint(STOCK.to_json_schema(), tokenizer)
    state = RailsConstraint(plan, known).constrain(schema).start(tokenizer)
    for t in tokenizer.encode('{"ticker": "MEZ", "qty": 36', add_special_tokens=False):
        state.advance(t)
    words = state.allowed_tokens()
    ids = [t for t in range(tokenizer.vocab_size) if (int(words[t // 32]) >> (t % 32)) & 1]
    allowed = {tokenizer.decode([t]) for t in ids}
    assert "," in allowed and not any(p[:1].isdigit() for p in allowed)  # 36 ends here: 360.. cannot pay
    rng = random.Random(3)
    for _ in range(12):
        text = _random_decode(RailsConstraint(plan, known).constrain(schema), tokenizer, rng)
        value = json.loads(text)
        STOCK.validate(value)
        assert value["qty"] * value["price"] <= 50, text
    # the same rail over a JSON schema (a tool's arguments, serve-model's requests): price minimum 1
    schema_json = {
        "type": "object", "required": ["ticker", "qty", "price"],
        "properties": {"ticker": {"type": "string"}, "qty": {"type": "integer"},
                       "price": {"type": "number", "minimum": 1}},
    }  # fmt: skip
    request = request_rails(schema_json, ["output.qty * output.price <= 50"])
    assert request.viable(scan('{"ticker": "MEZ", "qty": 36'))
    assert not request.viable(scan('{"ticker": "MEZ", "qty": 363'))
