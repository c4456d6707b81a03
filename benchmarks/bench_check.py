"""Benchmark: ``workbench check`` on a generated 50-node flow with 100 rails (goal <= 2 s).

The flow is a trading pipeline: an llm analyst proposes an Order, then 49 tool nodes
(risk, sizing, compliance...) each take the previous Order and the cash and pass on an
approved Order. Every other node states guarantees (quantity never grows; price, ticker, side kept),
so some rails downstream are proved and others stay enforced. Two rails per node (100 in
all), cycling through notional caps (non-linear: qty * price), restricted lists, bounds,
``implies`` and string rails, plus flow-input rails counted among the 100.

    python benchmarks/bench_check.py [--nodes 50] [--rails 100] [--repeat 3] [--profile]

Prints the time of each phase (parse the flow file, verify) and of the whole command in
process (``workbench check FILE --json``), best of ``--repeat`` runs (wall and CPU
seconds: on a shared machine CPU time is the steadier figure), and the statuses. The
goal is judged on the command's best wall time.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import platform
import pstats
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

GOAL_S = 2.0

HEADER = """flow: bench_check
version: 1
description: generated benchmark flow for workbench check
types:
  Side: {enum: [buy, sell, hold]}
  Order: {side: Side, ticker: {str: {pattern: "[A-Z]{1,5}"}}, qty: {int: {ge: 0}}, price: {float: {gt: 0}}}
constants:
  RESTRICTED: [ACME, GLOBX, INITECH]
  MAX_QTY: 5000
inputs: {news: {str: {max_len: 2000}}, cash: {float: {ge: 0}}}
outputs: {approved: Order}
"""

# Rail texts for a port named {p}; the port's node has 'cash' among its inputs.
TEMPLATES = [
    "{p}.qty * {p}.price <= cash",
    "{p}.ticker not in RESTRICTED",
    "{p}.qty <= MAX_QTY",
    "implies({p}.side == 'sell', {p}.qty >= 1)",
    "len({p}.ticker) <= 5",
    "{p}.price < 1000000 and {p}.qty * 2 <= 2 * MAX_QTY",
    "{p}.side != 'hold' or {p}.qty == 0",
    "{p}.ticker != 'ACME'",
]


def flow_text(nodes: int = 50, rails: int = 100) -> str:
    """The YAML text of the generated flow (``nodes`` nodes, ``rails`` rails)."""
    lines = [HEADER, "nodes:"]
    lines.append(
        "  analyst: {kind: llm, model: default, prompt: 'News: {{ news }} Cash: {{ cash }}',"
        " inputs: {news: str, cash: float}, outputs: {order: Order}}"
    )
    for k in range(1, nodes):
        guarantees = (
            ', guarantees: ["approved.qty <= proposed.qty", "approved.price == proposed.price",'
            ' "approved.ticker == proposed.ticker", "approved.side == proposed.side"]'
            if k % 2
            else ""
        )
        lines.append(
            f"  n{k}: {{kind: tool, tool: workbench.examples.trading:risk_check,"
            f" inputs: {{proposed: Order, cash: float}}, outputs: {{approved: Order}}{guarantees}}}"
        )
    wires = ["news -> analyst.news", "cash -> analyst.cash", "analyst.order -> n1.proposed"]
    for k in range(1, nodes):
        wires.append(f"cash -> n{k}.cash")
        if k + 1 < nodes:
            wires.append(f"n{k}.approved -> n{k + 1}.proposed")
    wires.append(f"n{nodes - 1}.approved -> approved")
    lines.append("wires:")
    lines += [f"  - {w}" for w in wires]
    lines.append("rails:")
    specs = [
        '  cash_positive: {on: cash, check: "cash > 0"}',
        '  news_short: {on: news, check: "len(news) <= 1000"}',
    ]
    ports = [("analyst.order", "order")] + [(f"n{k}.approved", "approved") for k in range(1, nodes)]
    i = 0
    while len(specs) < rails:
        # port j carries templates j and j + 1: each template meets itself one node later
        j = (i // 2) % len(ports)
        port, name = ports[j]
        text = TEMPLATES[(j + i % 2) % len(TEMPLATES)].format(p=name)
        specs.append(f'  r{i}: {{on: {port}, check: "{text}"}}')
        i += 1
    lines += specs[:rails]
    return "\n".join(lines) + "\n"


CPU: dict[str, float] = {}  # best CPU seconds per phase (the machine is shared: wall time is noisy)


def best_of(fn, repeat: int, phase: str = "") -> tuple[float, list[float], object]:
    times, cpu, result = [], [], None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    if phase:
        CPU[phase] = min(cpu)
    return min(times), times, result


def profile(flow, verify) -> None:
    """Where verify's time goes: per rail (by status and by rail text) and by function."""
    from workbench.rails import Prover

    original = Prover.prove
    spent: list[tuple[float, str, str, str]] = []

    def timed(self, rail, bind, *, using=None):
        start = time.perf_counter()
        result = original(self, rail, bind, using=using)
        spent.append((time.perf_counter() - start, rail.name, rail.text, result.status))
        return result

    Prover.prove = timed
    profiler = cProfile.Profile()
    try:
        start = time.perf_counter()
        profiler.enable()
        verify(flow)
        profiler.disable()
        total = time.perf_counter() - start
    finally:
        Prover.prove = original
    proving = sum(t for t, *_ in spent)
    print(f"\nverify {total:.2f} s, of which Prover.prove {proving:.2f} s over {len(spent)} rails")
    by_status: dict[str, list[float]] = {}
    by_text: dict[str, float] = {}
    for t, _, text, status in spent:
        by_status.setdefault(status, []).append(t)
        by_text[text] = by_text.get(text, 0.0) + t
    for status, ts in sorted(by_status.items()):
        print(f"  {status:<11} {len(ts):3d} rails  {sum(ts):6.2f} s  (max {max(ts):.2f} s)")
    print("slowest rail texts (total over the flow):")
    for text, t in sorted(by_text.items(), key=lambda kv: -kv[1])[:6]:
        print(f"  {t:6.2f} s  {text}")
    print("slowest single rails:")
    for t, name, text, status in sorted(spent, reverse=True)[:5]:
        print(f"  {t:6.2f} s  {name} ({status}): {text}")
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(8)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=50)
    ap.add_argument("--rails", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="print where verify spends its time")
    args = ap.parse_args(argv)

    from workbench.cli import main as cli_main
    from workbench.flow import loads
    from workbench.flow.verify import verify

    text = flow_text(args.nodes, args.rails)
    load_s, _, flow = best_of(lambda: loads(text), args.repeat)
    assert len(flow.nodes) == args.nodes and len(flow.rails) == args.rails
    verify_s, verify_all, report = best_of(lambda: verify(flow), args.repeat, "verify")
    assert not report.errors, report.errors
    counts = Counter(r.status for r in report.rails)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench_check.flow.yaml"
        path.write_text(text)

        def command() -> int:
            with contextlib.redirect_stdout(io.StringIO()):
                return cli_main(["check", str(path), "--json"])

        cli_s, cli_all, code = best_of(command, args.repeat, "check")
    assert code == 0, f"workbench check exited {code}"

    print(f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}")
    print(f"flow: {args.nodes} nodes, {len(flow.wires)} wires, {args.rails} rails")
    print(f"statuses: {dict(sorted(counts.items()))}")
    print(f"parse flow file:            {load_s * 1000:8.1f} ms")
    print(
        f"verify(flow):               {verify_s * 1000:8.1f} ms  "
        f"(runs: {', '.join(f'{t:.2f}' for t in verify_all)} s; median {statistics.median(verify_all):.2f} s;"
        f" CPU {CPU['verify']:.2f} s)"
    )
    print(
        f"workbench check FILE --json: {cli_s * 1000:7.1f} ms  "
        f"(runs: {', '.join(f'{t:.2f}' for t in cli_all)} s; CPU {CPU['check']:.2f} s; in process,"
        f" best of {args.repeat})"
    )
    met = cli_s <= GOAL_S
    verdict = "met" if met else f"missed by {cli_s - GOAL_S:.2f} s ({cli_s / GOAL_S:.1f}x the goal)"
    print(f"goal <= {GOAL_S:.0f} s: {verdict}")

    if args.profile:
        profile(flow, verify)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
