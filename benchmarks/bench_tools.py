"""Synchronous tools: concurrent runs of a sleeping tool, and what the worker pool costs per call.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_tools.py            # about 20 seconds
    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_tools.py --json out.json

What runs, in one process, on one event loop:

1. **concurrent sleepers**: ``--runs`` runs (default 4) of a one-node flow whose synchronous
   tool sleeps ``--sleep`` seconds (default 0.5), started together with ``asyncio.gather`` on
   one ``Executor``; the figure is the wall time until all are done (median of ``--rounds``).
   Run on the event loop, the tools take turns (runs x sleep); on the worker pool they overlap
   (about one sleep).
2. **per-call overhead**: a chain of ``--nodes`` trivial tools (``x -> x + 1``, default 200),
   run with the no-op tracer, once with the tools as they are by default (on the pool) and once
   marked ``inline: true`` (called on the loop), interleaved round by round; per node = (median
   run time - the same functions called in a plain loop) / nodes, in microseconds.

The same script measures the code before ``inline`` existed: there the default was to call
sync tools on the loop, and the ``inline: true`` variant is reported as not available.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from workbench.errors import FlowError
from workbench.flow.model import Flow, Node
from workbench.runtime import Executor


def nap(x: int, seconds: float) -> dict[str, int]:
    """The sleeping tool: blocks its thread for ``seconds``."""
    time.sleep(seconds)
    return {"y": x}


def inc(x: int) -> dict[str, int]:
    """The trivial tool: ``x -> x + 1``."""
    return {"y": x + 1}


def sleeper_flow(seconds: float) -> Flow:
    """One sync tool sleeping ``seconds`` (a constant input, so the flow takes only ``x``)."""
    flow = Flow("sleeper", inputs={"x": int, "seconds": float}, outputs={"y": int})
    flow.add(Node.tool("nap", nap, inputs={"x": int, "seconds": float}, outputs={"y": int}))
    return flow.connect("x", "nap.x").connect("seconds", "nap.seconds").connect("nap.y", "y")


def chain_flow(n: int, inline: bool) -> Flow:
    """``x -> n0 -> ... -> n{n-1} -> y``, each node ``inc``, marked ``inline: true`` if asked."""
    flow = Flow("chain", inputs={"x": int}, outputs={"y": int})
    for i in range(n):
        node = Node.tool(f"n{i}", inc, inputs={"x": int}, outputs={"y": int})
        if inline:
            node.config["inline"] = True
        flow.add(node)
        flow.connect("x" if i == 0 else f"n{i - 1}.y", f"n{i}.x")
    return flow.connect(f"n{n - 1}.y", "y")


def concurrent_sleepers(loop: asyncio.AbstractEventLoop, runs: int, seconds: float, rounds: int) -> dict:
    """Wall seconds for ``runs`` concurrent runs of the sleeper flow (median of ``rounds``)."""
    executor = Executor(sleeper_flow(seconds))

    async def together() -> None:
        results = await asyncio.gather(*(executor.arun({"x": i, "seconds": seconds}) for i in range(runs)))
        assert [r.outputs for r in results] == [{"y": i} for i in range(runs)], results

    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        loop.run_until_complete(together())
        times.append(time.perf_counter() - t0)
    wall = statistics.median(times)
    return {"runs": runs, "sleep_s": seconds, "wall_s": wall, "serial_s": runs * seconds, "min_s": min(times)}


def per_call_overhead(loop: asyncio.AbstractEventLoop, nodes: int, rounds: int) -> dict:
    """Microseconds per trivial tool call: default placement vs ``inline: true``."""
    variants: dict[str, Executor | None] = {"default": Executor(chain_flow(nodes, inline=False))}
    try:
        variants["inline: true"] = Executor(chain_flow(nodes, inline=True))
    except FlowError:  # before `inline` existed
        variants["inline: true"] = None
    samples: dict[str, list[float]] = {label: [] for label, ex in variants.items() if ex is not None}
    baseline: list[float] = []
    for round_ in range(rounds + 1):  # the first round warms up
        for label, executor in variants.items():
            if executor is None:
                continue
            t0 = time.perf_counter_ns()
            result = loop.run_until_complete(executor.arun({"x": 0}))
            elapsed = time.perf_counter_ns() - t0
            assert result.outputs == {"y": nodes}, result.error
            if round_:
                samples[label].append(elapsed)
        t0 = time.perf_counter_ns()
        x = 0
        for _ in range(nodes):
            x = inc(x=x)["y"]
        if round_:
            baseline.append(time.perf_counter_ns() - t0)
    base = statistics.median(baseline)
    out: dict[str, Any] = {"nodes": nodes, "baseline_us_per_call": base / nodes / 1e3}
    for label in variants:
        if label in samples:
            out[label] = (statistics.median(samples[label]) - base) / nodes / 1e3
        else:
            out[label] = None
    return out


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run both measurements, print them and return the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4, help="concurrent runs of the sleeping tool (4)")
    parser.add_argument("--sleep", type=float, default=0.5, help="seconds the tool sleeps (0.5)")
    parser.add_argument("--nodes", type=int, default=200, help="trivial tools in the chain (200)")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds of each (15)")
    parser.add_argument("--json", default=None, help="also write the report here")
    args = parser.parse_args(argv)
    loop = asyncio.new_event_loop()
    try:
        sleepers = concurrent_sleepers(loop, args.runs, args.sleep, max(1, args.rounds // 5))
        overhead = per_call_overhead(loop, args.nodes, args.rounds)
    finally:
        loop.close()
    report = {"machine": machine(), "concurrent_sleepers": sleepers, "per_call_us": overhead}
    print(f"# sync tools: {report['machine']}")
    print(
        f"{sleepers['runs']} concurrent runs of a {sleepers['sleep_s']:g} s sync tool: "
        f"{sleepers['wall_s']:.3f} s (min {sleepers['min_s']:.3f} s; taking turns would be "
        f"{sleepers['serial_s']:.1f} s)"
    )
    shown = {k: v for k, v in overhead.items() if k not in ("nodes", "baseline_us_per_call")}
    print(
        f"per-call overhead over a plain call ({overhead['nodes']}-node chain, median of {args.rounds}): "
        + ", ".join(f"{label} {'n/a' if us is None else f'{us:.1f} us'}" for label, us in shown.items())
    )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
