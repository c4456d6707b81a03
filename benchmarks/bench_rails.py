"""Runtime rail checks: compiled evaluator vs Z3 substitute-and-simplify, side by side.

One message (an order, cash, position, time, a note, token usage) against 20 rails,
over many random messages. For each message we time all 20 rails with

- the compiled evaluator (``Rail.holds``, and ``Rail.check`` with its verdict object);
- Z3: the same rails' formulas built once, then per message the leaf values turned
  into Z3 literals, ``substitute``d into each formula and ``simplify``d to true/false.

Both must give the same verdicts (checked). Prints a table; goals from issue 3:
evaluator median <= 20 us per message and >= 50x faster than Z3.

    python benchmarks/bench_rails.py [--messages 300] [--repeat 50]
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import time

import z3

from workbench.rails import Scope, parse_rail
from workbench.rails.parser import sort_of_type
from workbench.rails.rail import leaf_sort
from workbench.rails.z3values import python_to_z3
from workbench.types import Enum, Float, Int, Record, Str

ORDER = Record(
    "Order",
    side=Enum("buy", "sell", "hold"),
    ticker=Str(pattern="[A-Z]{1,5}"),
    qty=Int(ge=0),
    price=Float(gt=0),
)
USAGE = Record("Usage", input_tokens=Int(ge=0), output_tokens=Int(ge=0))
NAMES = {
    "order": ORDER,
    "cash": Float(ge=0),
    "position": Int(),
    "now": Int(),
    "note": Str(),
    "usage": USAGE,
    "limit": Float(gt=0),
}
rng0 = random.Random(7)
RESTRICTED = sorted(
    {"".join(rng0.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4)) for _ in range(200)}
)
CONSTANTS = {"RESTRICTED": RESTRICTED, "max_notional": 250_000}

RAILS = [
    "order.qty * order.price <= cash",
    "order.ticker not in RESTRICTED",
    "order.qty >= 1",
    "order.qty <= 10000",
    "order.price > 0",
    "order.price < 100000",
    "order.side in ['buy', 'sell']",
    "implies(order.side == 'sell', order.qty <= position)",
    "len(order.ticker) <= 5",
    "matches(order.ticker, '[A-Z]{1,5}')",
    "order.qty * order.price <= max_notional",
    "abs(position + order.qty) <= 50000",
    "now < 1000 or now >= 2000 or order.qty == 0",
    "usage.input_tokens + usage.output_tokens <= 4000",
    "usage.input_tokens * 0.000002 + usage.output_tokens * 0.00001 <= 0.05",
    "not contains_email(note)",
    "len(note) <= 200",
    "order.price <= limit * 1.05",
    "min(order.qty, 100) * order.price <= cash * 0.5",
    "order.ticker != '' and not order.ticker.startswith('X')",
]


def message(rng: random.Random) -> dict:
    """A random message; prices and cash are short decimals, as a model would write them."""
    ticker = rng.choice([*RESTRICTED[:5], "AAPL", "MSFT", "XOM", "GOOG", "AB"])
    return {
        "order": {
            "side": rng.choice(["buy", "sell", "hold"]),
            "ticker": ticker,
            "qty": rng.randint(0, 2000),
            "price": round(rng.uniform(1, 500), 2),
        },
        "cash": round(rng.uniform(0, 200_000), 2),
        "position": rng.randint(-1000, 5000),
        "now": rng.randint(0, 3000),
        "note": rng.choice(["ok", "buy on dip", "ping me at a@b.io", "x" * 50]),
        "usage": {"input_tokens": rng.randint(0, 3000), "output_tokens": rng.randint(0, 2000)},
        "limit": round(rng.uniform(1, 500), 2),
    }


class Z3Checker:
    """The Z3 way: formulas built once; per message literals, substitute, simplify."""

    def __init__(self, rails: list) -> None:
        self.ctx = z3.Context()
        self.vars: dict[str, tuple[z3.ExprRef, object]] = {}

        def leaf(var):
            if var.path not in self.vars:
                self.vars[var.path] = (z3.Const(var.path, leaf_sort(var.sort, self.ctx)), var)
            return self.vars[var.path][0]

        self.formulas = [r.to_z3(self.ctx, leaf)[0] for r in rails]

    def check(self, values: dict) -> list[bool | None]:
        subs = []
        for term, var in self.vars.values():
            value = values[var.root]
            for f in var.fields:
                value = value[f]
            sort = sort_of_type(var.type)
            subs.append((term, python_to_z3(value, sort.kind, self.ctx, sort.enum)))
        out: list[bool | None] = []
        for formula in self.formulas:
            res = z3.simplify(z3.substitute(formula, *subs))
            out.append(True if z3.is_true(res) else False if z3.is_false(res) else None)
        return out


def per_message_us(fn, messages: list[dict], repeat: int) -> list[float]:
    """Mean microseconds of ``fn(message)`` over ``repeat`` calls, for each message."""
    times = []
    for msg in messages:
        start = time.perf_counter_ns()
        for _ in range(repeat):
            fn(msg)
        times.append((time.perf_counter_ns() - start) / repeat / 1000)
    return times


def prover_chain(nodes: int = 50) -> tuple[float, dict[str, int]]:
    """Static verification at flow scale: a chain of ``nodes`` nodes (an Order in, an
    Order out, wired in sequence: 2 declared ports per node), 2 rails per node
    (100 for 50 nodes), each proved with every rail upstream as hypothesis."""
    from workbench.rails import Prover

    scope = Scope({"order": ORDER, "cash": Float(ge=0)}, CONSTANTS)
    texts = ["order.qty * order.price <= cash", "order.ticker not in RESTRICTED", "order.qty <= 5000"]
    start = time.perf_counter()
    prover = Prover(timeout_ms=2000)
    prover.declare("cash", Float(ge=0))
    for k in range(nodes):
        prover.declare(f"n{k}.in", ORDER)
        prover.declare(f"n{k}.out", ORDER)
        prover.equate(f"n{k}.in", f"n{k}.out")  # a pass-through node's guarantee
        if k:
            prover.equate(f"n{k - 1}.out", f"n{k}.in")
    counts: dict[str, int] = {}
    upstream: list[str] = []
    for k in range(nodes):
        for j in range(2):
            text = texts[(k + j) % len(texts)]
            rail = parse_rail(text, scope, name=f"n{k}.r{j}")
            bind = {"order": f"n{k}.out", "cash": "cash"}
            status = prover.prove(rail, bind, using=upstream).status
            counts[status] = counts.get(status, 0) + 1
            prover.assume(rail, bind, rail.name)
            upstream.append(rail.name)
    return time.perf_counter() - start, counts


def main() -> None:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=50)
    args = ap.parse_args()

    scope = Scope(NAMES, CONSTANTS)
    rails = [parse_rail(text, scope, name=f"r{i}") for i, text in enumerate(RAILS)]
    rng = random.Random(1)
    messages = [message(rng) for _ in range(args.messages)]
    z3c = Z3Checker(rails)

    undecided = disagree = 0
    violations = 0
    for msg in messages:
        fast = [r.holds(msg) for r in rails]
        slow = z3c.check(msg)
        violations += fast.count(False)
        for a, b in zip(fast, slow):
            if b is None:
                undecided += 1
            elif a != b:
                disagree += 1

    def holds_all(msg: dict) -> None:
        for r in rails:
            r.holds(msg)

    def check_all(msg: dict) -> None:
        for r in rails:
            r.check(msg)

    ev = per_message_us(holds_all, messages, args.repeat)
    ck = per_message_us(check_all, messages, max(1, args.repeat // 2))
    zz = per_message_us(z3c.check, messages[: max(20, args.messages // 5)], max(1, args.repeat // 10))

    def row(name: str, xs: list[float]) -> str:
        med, p95 = statistics.median(xs), statistics.quantiles(xs, n=20)[-1]
        return f"| {name:<36} | {med:>9.1f} | {p95:>9.1f} | {med / len(rails):>9.2f} |"

    print(f"rails benchmark: {len(rails)} rails, {len(messages)} messages, {platform.machine()}, "
          f"python {platform.python_version()}, z3 {z3.get_version_string()}")  # fmt: skip
    print("| backend (all 20 rails per message)   | median us |    p95 us |  us/rail  |")
    print("|--------------------------------------|-----------|-----------|-----------|")
    print(row("evaluator Rail.holds", ev))
    print(row("evaluator Rail.check (Verdict)", ck))
    print(row("Z3 substitute + simplify", zz))
    ratio = statistics.median(zz) / statistics.median(ev)
    print(f"speed-up evaluator vs Z3: {ratio:.0f}x (goal >= 50x); evaluator median "
          f"{statistics.median(ev):.1f} us (goal <= 20 us)")  # fmt: skip
    print(f"verdicts: {violations} rail violations seen, {disagree} disagreements, "
          f"{undecided} Z3 results not simplified to true/false")  # fmt: skip
    seconds, counts = prover_chain(50)
    print(f"static: 50-node chain, 100 ports, 100 rails proved (each against all rails upstream): "
          f"{seconds:.2f} s, statuses {counts} (goal for workbench check: <= 2 s)")  # fmt: skip


if __name__ == "__main__":
    main()
