"""Decode rails on a real BPE vocabulary (32k tokens trained here), and the parts that make the
rails mask fast: digit tokens decided at once, one open number solved without Z3."""

from __future__ import annotations

import json
import random
import re
from fractions import Fraction

import numpy as np
import pytest
import z3

from tests.bench_loader import load_benchmark
from workbench.decoding import DecodeRails, Interval, RailsConstraint, answer_fields, number_prefix_ok, scan
from workbench.decoding.numbers import NumberTokens
from workbench.models.json_schema import JsonSchemaConstraint
from workbench.models.tokenizer import Tokenizer
from workbench.rails import Scope, parse_rail
from workbench.types import parse_type


@pytest.fixture(scope="module")
def bpe(tmp_path_factory) -> Tokenizer:
    """A byte-level BPE tokenizer of 32,000 tokens trained on a generated corpus (a few seconds;
    once per test session: the file is reused from the session's tmp dir)."""
    bench = load_benchmark("bench_decode_bpe")
    tok = bench.bpe_tokenizer(32000, tmp_path_factory.getbasetemp() / "bpe")
    assert tok.vocab_size >= 32000 and tok.eos_token_ids
    return tok


def _plan(texts: dict[str, str], typ) -> DecodeRails:
    scope = Scope({"order": typ, "cash": parse_type({"float": {"ge": 0}})}, {"RESTRICTED": ["ACME", "GLOBX"]})
    return DecodeRails(
        [(n, parse_rail(t, scope, name=n)) for n, t in texts.items()], answer_fields({"order": typ})
    )


def _bits(words, vocab: int) -> np.ndarray:
    return np.unpackbits(np.asarray(words).view(np.uint8), bitorder="little")[:vocab].astype(bool)


def _closing(tok: Tokenizer) -> np.ndarray:
    """Tokens that can end a value (favoured so that random answers stay short)."""
    return np.array([any(c in tok.decode([i]) for c in ',}"') for i in range(tok.vocab_size)])


def _random_logits_decode(constraint, tok: Tokenizer, rng: np.random.Generator, closing: np.ndarray) -> str:
    """Sample from a model whose logits are random, under the masks: any valid answer can only
    come from the masks. Ending tokens get a bonus so that strings do not run on forever."""
    state = constraint.start(tok)
    ids: list[int] = []
    for _ in range(80):
        if state.is_finished():
            break
        allowed = _bits(state.allowed_tokens(), tok.vocab_size)
        assert allowed.any(), f"dead end after {tok.decode(ids)!r}"
        logits = rng.standard_normal(tok.vocab_size) + 4.0 * closing
        token = int(np.argmax(np.where(allowed, logits, -np.inf)))
        state.advance(token)
        if token in tok.eos_token_ids:
            break
        ids.append(token)
    return tok.decode(ids)


def test_random_logits_on_a_bpe_vocabulary_always_give_answers_that_keep_every_rail(bpe):
    rng = random.Random(11)
    nrng = np.random.default_rng(11)
    closing = _closing(bpe)
    checked = narrowed = 0
    for trial in range(8):
        names = [f"f{i}" for i in range(rng.randint(2, 3))]
        fields = {
            n: rng.choice([{"int": {"ge": -50, "le": 50}}, {"float": {"ge": -20, "le": 20}}, {"int": {}}])
            for n in names
        }
        fields["tag"] = {"enum": ["alpha", "beta", "gamma"]}
        fields["ticker"] = {"str": {"pattern": "[A-Z]{1,5}"}}
        typ = parse_type(fields)
        rails = {"restricted": "order.ticker not in RESTRICTED"}
        for k in range(rng.randint(1, 2)):
            terms = " + ".join(f"{rng.randint(-3, 3) or 1} * order.{n}" for n in rng.sample(names, 2))
            rails[f"r{k}"] = f"{terms} <= cash"
        rails["tagged"] = f'order.tag != "beta" or order.{names[0]} >= 0'
        plan = _plan(rails, typ)
        cash = rng.choice([0.0, 3.5, 40.0])
        known, _ = plan.known({"cash": cash})
        plan.conflict(known)
        schema = JsonSchemaConstraint(typ.to_json_schema(), bpe)
        for _ in range(3):
            constraint = RailsConstraint(plan, known).constrain(schema)
            text = _random_logits_decode(constraint, bpe, nrng, closing)
            value = json.loads(text)  # parses ...
            typ.validate(value)  # ... as the type ...
            env = {"order": value, "cash": cash}
            for name, rail in plan.rails:  # ... and satisfies every rail
                assert rail.holds(env), (trial, name, rail.text, text)
            narrowed += any(s.allowed < s.schema_allowed for s in constraint.steps)
            checked += 1
    assert checked == 24 and narrowed >= 12  # the rails did cut tokens, not only the grammar


def test_the_fast_mask_is_the_token_by_token_check_on_a_bpe_vocabulary(bpe):
    """At every step of valid answers, the mask equals asking each token the grammar allows
    (sampled inside free strings) whether the answer with its text stays viable."""
    typ = parse_type(
        {"side": {"enum": ["buy", "sell", "hold"]}, "ticker": {"str": {}},
         "qty": {"int": {"ge": 0}}, "price": {"float": {"gt": 0}}}
    )  # fmt: skip
    plan = _plan(
        {"budget": "order.qty * order.price <= cash", "restricted": "order.ticker not in RESTRICTED"}, typ
    )
    schema = JsonSchemaConstraint(typ.to_json_schema(), bpe)
    rng = random.Random(5)
    pieces = [bpe.decode([i]) for i in range(bpe.vocab_size)]
    steps = 0
    for doc, cash in [
        ('{"side": "buy", "ticker": "ACMEX", "qty": 12, "price": 0.58}', 7.0),
        ('{"side": "hold", "ticker": "BOLT", "qty": 3, "price": 33.3}', 100.0),
        ('{"side": "sell", "ticker": "ZE", "qty": 250, "price": 0.004}', 1.0),
    ]:
        known, _ = plan.known({"cash": cash})
        constraint = RailsConstraint(plan, known).constrain(schema)
        state = constraint.start(bpe)
        text = ""
        for t in bpe.encode(doc, add_special_tokens=False):
            got = _bits(state.allowed_tokens(), bpe.vocab_size)
            grammar = np.flatnonzero(_bits(state.inner.allowed_tokens(), bpe.vocab_size)).tolist()
            sample = grammar if len(grammar) < 2000 else rng.sample(grammar, 300)
            for u in sample:
                if u not in bpe.eos_token_ids:
                    assert got[u] == constraint.viable(scan(text + pieces[u])), (text, pieces[u])
            assert got[t], (text, pieces[t])
            state.advance(t)
            text += pieces[t]
            steps += 1
    assert steps > 40
    # and the budget did narrow: after qty 12 with cash 7, a price of 0.6 or more is refused
    known, _ = plan.known({"cash": 7.0})
    assert not RailsConstraint(plan, known).viable(
        scan('{"side": "buy", "ticker": "ZED", "qty": 12, "price": 0.6')
    )


def test_digit_tokens_are_decided_exactly_as_one_by_one():
    texts = [str(i) for i in range(1000)] + [f"{i:02d}" for i in range(100)] + [".", "5.", ".25", "0.", "x"]
    words = (len(texts) + 31) // 32
    numbers = NumberTokens(range(len(texts)), texts, words)
    rng = random.Random(3)
    compared = 0
    for _ in range(60):
        bounds = [
            rng.choice([None, Fraction(rng.randint(-300, 3000), rng.choice([1, 3, 7, 100]))]) for _ in "ab"
        ]
        lo, hi = sorted(bounds, key=lambda b: (b is None, b)) if None not in bounds else bounds
        rng_ = Interval(lo, hi, rng.random() < 0.3, rng.random() < 0.3)
        if lo is not None and lo == hi:
            continue
        for integer in (True, False):
            for prefix in ("", "-", "0", "1", "12", "3.", "3.4", "-2", "250", "0.0"):
                got = _bits(numbers.allowed(prefix, rng_, integer), len(texts))
                for k, t in enumerate(texts):
                    s = prefix + t
                    if not re.fullmatch(r"-?(0|[1-9][0-9]*)(\.[0-9]*)?", s):
                        continue  # no JSON number: the grammar never offers it
                    assert got[k] == number_prefix_ok(s, rng_, integer), (prefix, t, rng_, integer)
                    compared += 1
    assert compared > 100_000


def test_one_open_number_is_solved_without_z3_and_agrees_with_z3(monkeypatch):
    """Random linear rails with every field but one written: the answer read off the rail is
    Z3's answer, and Z3 is not asked."""
    import workbench.decoding.solver as solver

    typ = parse_type({"a": {"int": {"ge": -20, "le": 20}}, "b": {"float": {"gt": -5}}, "c": {"int": {}}})
    rng = random.Random(2)
    agreed = 0
    for _ in range(40):
        ops = ["<=", "<", ">=", ">", "==", "!="]
        rails = {
            f"r{k}": f"{rng.randint(-3, 3)} * order.{rng.choice('abc')} + {rng.randint(-2, 2)} * order.c "
            f"{rng.choice(ops)} cash{rng.choice(['', ' - 1', ' / 2'])}"
            for k in range(2)
        }
        rails["either"] = f"order.a > {rng.randint(-5, 5)} or order.b <= {rng.randint(-5, 5)}"
        plan = _plan(rails, typ)
        cash = rng.choice([0.0, 2.5, 9.0])
        open_field = rng.choice(["order.a", "order.b", "order.c"])
        values = {"order.a": rng.randint(-20, 20), "order.b": rng.choice([-4.5, 0.0, 1.25, 7.0]),
                  "order.c": rng.randint(-9, 9), "cash": cash}  # fmt: skip
        fixed = tuple(sorted((p, v) for p, v in values.items() if p != open_field))
        direct = z3.Solver(ctx=plan.ctx)
        direct.add(*plan._formulas(dict(fixed), ()))
        want = direct.check() == z3.sat
        monkeypatch.setattr(solver.z3, "Solver", None)  # any Z3 query would fail now
        assert plan.feasible(fixed) == want, (rails, fixed)
        monkeypatch.undo()
        agreed += 1
    assert agreed == 40
