"""Rails while decoding on the built-in tiny model (CPU): mask cost, tokens/s and rail satisfaction.

    .venv/bin/python benchmarks/bench_decode_rails.py [--docs 40] [--cases 30] [--max-tokens 40]
        [--json report.json]

Three measurements side by side in one run, on the trader flow's ``Order`` answer and its
budget rail ``order.qty * order.price <= cash``:

- mask time per token: valid ``Order`` documents (random, within their cash) replayed token
  by token through the JSON-schema constraint alone (llguidance) and through
  ``RailsConstraint`` on top of it; the time of ``allowed_tokens`` (mean and p99, us). Each
  document gets a fresh constraint, as each request does; the Z3 answers cached in the plan
  are shared, as they are in a flow run;
- tokens/s of sampled generation, one request at a time, for the same prompts and seeds:
  unconstrained, schema-only and schema + decode rails;
- rail satisfaction over (news, cash) cases, small cash included: the share of answers that
  parse as an ``Order`` and keep the rail, for the same three modes.

Not measured here: the tiny model has a 1,024-token byte-level vocabulary; the per-token
rails check grows with the tokens the grammar allows, so 32k/128k BPE vocabularies and a
comparison with llguidance/XGrammar at those sizes need another run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from pathlib import Path
from typing import Any

from workbench.decoding import DecodeRails, RailsConstraint, answer_fields
from workbench.errors import ValueValidationError
from workbench.models.base import GenerationRequest
from workbench.models.json_schema import JsonSchemaConstraint
from workbench.models.local import DEFAULT_MODEL_DIR, LocalModel
from workbench.rails import Scope, parse_rail
from workbench.types import parse_type

ORDER = parse_type(
    {"side": {"enum": ["buy", "sell", "hold"]}, "ticker": {"str": {"pattern": "[A-Z]{1,5}"}},
     "qty": {"int": {"ge": 0}}, "price": {"float": {"gt": 0}}}
)  # fmt: skip
RAIL = "order.qty * order.price <= cash"
NEWS = [
    "ACME beats estimates; shares at 12.50",
    "GLOBX recalls its product; stock falls to 3.20",
    "BOLT shares jump after a record quarter; the stock trades at 12.50",
    "ZED cuts guidance, trades at 0.75",
    "KITE lists at 41.00 a share",
    "ORB doubles its dividend; shares at 7.10",
]
CASH = [0.05, 0.5, 7.0, 100.0, 1000.0]
MODES = ("unconstrained", "schema", "schema+rails")


def build_plan() -> DecodeRails:
    """The budget rail compiled for the ``Order`` answer."""
    scope = Scope({"order": ORDER, "cash": parse_type({"float": {"ge": 0}})}, {})
    return DecodeRails([("budget", parse_rail(RAIL, scope, name="budget"))], answer_fields({"order": ORDER}))


def valid_documents(n: int, rng: random.Random) -> list[tuple[str, float]]:
    """``n`` (Order JSON, cash) pairs that keep the budget rail, written as the grammar writes them."""
    docs = []
    for _ in range(n):
        cash = rng.choice(CASH)
        price = round(rng.uniform(0.01, 50.0), 2)
        qty = rng.randint(0, int(cash // price))
        side, ticker = rng.choice(["buy", "sell", "hold"]), rng.choice(["BOLT", "ZED", "KITE", "ORB"])
        order = {"side": side, "ticker": ticker, "qty": qty, "price": price}
        docs.append((json.dumps(order), cash))
    return docs


def mask_times(
    model: LocalModel, plan: DecodeRails, docs: list[tuple[str, float]]
) -> dict[str, dict[str, float]]:
    """Per-token ``allowed_tokens`` time (us) replaying ``docs``, schema alone vs schema + rails."""
    tok = model.tokenizer
    schema = ORDER.to_json_schema()
    times: dict[str, list[float]] = {"schema": [], "schema+rails": []}
    for text, cash in docs:
        ids = tok.encode(text, add_special_tokens=False) + tok.eos_token_ids[:1]
        known, _ = plan.known({"cash": cash})
        for mode in times:
            constraint: Any = JsonSchemaConstraint(schema, tok)
            if mode == "schema+rails":
                constraint = RailsConstraint(plan, known).constrain(constraint)
            state = constraint.start(tok)
            for t in ids:
                start = time.perf_counter()
                words = state.allowed_tokens()
                times[mode].append((time.perf_counter() - start) * 1e6)
                if not (int(words[t // 32]) >> (t % 32)) & 1:
                    raise AssertionError(f"{mode} refused {tok.decode([t])!r} of the valid {text!r}")
                if t in tok.eos_token_ids:
                    break
                state.advance(t)
    return {mode: _summary(values) for mode, values in times.items()}


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return {"tokens": len(values), "mean_us": statistics.fmean(values), "p99_us": p99, "max_us": ordered[-1]}


def cases(n: int) -> list[tuple[str, float]]:
    """``n`` (news, cash) cases, every cash (small ones included) with every news in turn."""
    return [(NEWS[i % len(NEWS)], CASH[(i // len(NEWS) + i) % len(CASH)]) for i in range(n)]


def keeps_rail(text: str, cash: float) -> bool:
    """Does ``text`` parse as an ``Order`` whose qty * price is within ``cash``?"""
    try:
        order = json.loads(text)
        ORDER.validate(order)
    except (ValueError, ValueValidationError):
        return False
    return bool(order["qty"] * order["price"] <= cash)


def request(
    news: str, cash: float, mode: str, plan: DecodeRails, seed: int, max_tokens: int
) -> GenerationRequest:
    """The generation of one case in one mode (same prompt, seed and sampling in every mode)."""
    rails = None
    if mode == "schema+rails":
        known, _ = plan.known({"cash": cash})
        rails = RailsConstraint(plan, known)
    return GenerationRequest(
        prompt=f"News: {news}\nCash: {cash}\nPropose one order as JSON.",
        max_tokens=max_tokens, temperature=0.8, seed=seed,
        response_schema=None if mode == "unconstrained" else ORDER.to_json_schema(), decode_rails=rails,
    )  # fmt: skip


def generation(model: LocalModel, plan: DecodeRails, n: int, max_tokens: int) -> dict[str, dict[str, float]]:
    """Tokens/s and rail satisfaction of each mode over ``n`` cases, modes interleaved per case."""
    for mode in MODES:  # warm-up: first-call costs (grammar compile, kernels) are not timed
        model.generate_sync([request(NEWS[0], 7.0, mode, plan, 0, 8)])
    stats = {m: {"tokens": 0, "seconds": 0.0, "kept": 0} for m in MODES}
    for i, (news, cash) in enumerate(cases(n)):
        for mode in MODES:
            req = request(news, cash, mode, plan, 1000 + i, max_tokens)
            start = time.perf_counter()
            (out,) = model.generate_sync([req])
            stats[mode]["seconds"] += time.perf_counter() - start
            stats[mode]["tokens"] += out.output_tokens
            stats[mode]["kept"] += keeps_rail(out.text, cash)
    return {
        m: {"tokens": s["tokens"], "tokens_per_s": s["tokens"] / s["seconds"], "satisfied": s["kept"] / n}
        for m, s in stats.items()
    }


def machine() -> str:
    """Where this ran, in a few words."""
    return f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the three measurements, print a table and return the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=40, help="valid documents replayed for mask time (40)")
    parser.add_argument("--cases", type=int, default=30, help="(news, cash) cases generated per mode (30)")
    parser.add_argument("--max-tokens", type=int, default=40, help="token limit of each generation (40)")
    parser.add_argument("--json", default=None, help="also write the report here")
    args = parser.parse_args(argv)
    model = LocalModel.from_pretrained(DEFAULT_MODEL_DIR, device="cpu")
    plan = build_plan()
    masks = mask_times(model, plan, valid_documents(args.docs, random.Random(0)))
    gen = generation(model, plan, args.cases, args.max_tokens)
    report = {"machine": machine(), "rail": RAIL, "mask": masks, "generation": gen}
    print(f"# decode rails on the tiny model: {report['machine']}; rail {RAIL}")
    print(f"mask time per token ({args.docs} valid Orders replayed):")
    for mode, s in masks.items():
        times = f"mean {s['mean_us']:9.1f} us   p99 {s['p99_us']:9.1f} us   max {s['max_us']:9.1f} us"
        print(f"  {mode:<14} {times}   ({s['tokens']} tokens)")
    base = gen["unconstrained"]["tokens_per_s"]
    print(f"generation ({args.cases} cases, temperature 0.8, one request at a time):")
    print(f"  {'mode':<14} {'tokens/s':>9} {'vs uncon.':>9} {'rail kept':>9}")
    for mode, g in gen.items():
        print(f"  {mode:<14} {g['tokens_per_s']:9.1f} {g['tokens_per_s'] / base:9.2f} {g['satisfied']:9.0%}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
