"""Executor overhead per node, side by side with LangGraph running the same graphs.

    .venv/bin/python benchmarks/bench_executor.py            # full run (about a minute)
    .venv/bin/python benchmarks/bench_executor.py --quick    # fewer repeats
    .venv/bin/python benchmarks/bench_executor.py --json out.json

What runs, in one process:

1. **chain**: N trivial tool nodes in a line (default 1,000), each ``x -> x + 1`` on an int port.
2. **fan-out**: one input fanned out to B trivial nodes (default 100), each ``x -> x + 1``, then
   one node summing the B results (B + 1 nodes in all).
3. **single**: one trivial node, to show the fixed cost of a run (not a per-node figure).

Each shape is built three ways with the same arithmetic:

- **workbench**: a ``Flow`` of ``tool`` nodes with typed ``int`` ports, planned once by
  ``Executor`` (planning timed separately) and run with ``arun`` on one event loop that lives
  for the whole benchmark. The tools are marked ``inline: true`` (trivial pure functions,
  called on the event loop: the executor's fast path; unmarked, a sync tool runs on the worker
  pool, whose cost ``bench_tools.py`` measures). Tracers: ``NoopTracer`` (the default, the
  figure the goal is about), then
  ``MemoryTracer`` (keeps every span in a list) and the DuckDB ``TraceWriter`` (spans queued to
  a background writer thread; flushed after each round, off the clock so its thread does not
  run into the next case's timing, with the flush time, one commit per round, reported
  per run) to show what tracing costs.
- **langgraph**: a ``StateGraph`` compiled once (compile timed separately), ``invoke`` repeated.
  The chain is nodes reading and writing ``x`` joined by edges (``recursion_limit`` raised to fit
  N steps); the fan-out is B parallel edges from ``START``, each branch appending to a list
  channel with an ``operator.add`` reducer, and edges from every branch to a summing node, so
  the branches run in one superstep and the sum in the next.
- **baseline**: the same node functions called in a plain Python loop, per engine (our tools take
  keyword arguments, LangGraph's nodes take the state dict), so the work itself can be subtracted.

Timing: ``time.perf_counter_ns`` around each run (baselines: around a loop of many calls, as one
call is too short to time), warm-up runs first, then the engines interleaved round by round so that
load on a shared machine hits them alike, each timed run right after an untimed run of the same
case (a run that follows another engine's run pays 0.1-0.3 ms of cold caches on this machine,
which is not executor overhead); the median of the samples is the figure (min also shown).
LangGraph gives one sample per round, the cheap cases (ours, the baselines) five, so their
medians are steadier at no real cost in time. The garbage collector runs as it normally would
(it is part of each engine's cost); ``gc.collect()`` is called once per shape before warm-up,
not before each run, since that would leave every run starting on cold caches.

Per-node overhead = (median run time - baseline time) / node count, in microseconds; it
includes each engine's fixed per-run cost spread over the nodes. The goal is judged on wall
time (``perf_counter_ns``); the process CPU time of each run (``process_time_ns``, all threads,
so the DuckDB writer's background thread counts) is reported beside it, because on a shared
machine a long run is often descheduled and its wall time then says more about the load than
about the engine. Every run's result is checked
against the expected value, so both engines are known to compute the same thing.

Goal (issue 2): per-node overhead of at most 50 us and at least 3x lower than LangGraph's, on
both the chain and the fan-out. The exit status is 0 whether or not it holds; read the verdict.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import operator
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypedDict

from workbench.flow.model import Flow, Node
from workbench.runtime import Executor
from workbench.spans import MemoryTracer, NoopTracer

GOAL_US = 50.0
GOAL_RATIO = 3.0
DUCKDB = "workbench + DuckDB TraceWriter"
CHEAP_SAMPLES = 5  # timed samples per round of each case but LangGraph's (ms each, not seconds)


# -- the node functions (the "work") ------------------------------------------------------------
def inc(x: int) -> dict[str, int]:
    """Workbench tool: ``x -> x + 1`` (input port ``x``, output port ``y``)."""
    return {"y": x + 1}


def total(**values: int) -> dict[str, int]:
    """Workbench tool: the sum of all its inputs."""
    return {"total": sum(values.values())}


def lg_inc(state: dict[str, Any]) -> dict[str, int]:
    """LangGraph chain node: ``x -> x + 1``."""
    return {"x": state["x"] + 1}


def lg_branch(state: dict[str, Any]) -> dict[str, list[int]]:
    """LangGraph fan-out branch: ``x + 1`` appended to the ``vals`` channel."""
    return {"vals": [state["x"] + 1]}


def lg_sum(state: dict[str, Any]) -> dict[str, int]:
    """LangGraph fan-in node: the sum of the branches' values."""
    return {"total": sum(state["vals"])}


# -- workbench flows ------------------------------------------------------------------------------
def _inline(node: Node) -> Node:
    """The node with ``inline: true``: a cheap pure function, called right on the event loop."""
    node.config["inline"] = True
    return node


def chain_flow(n: int) -> Flow:
    """``x -> n0 -> n1 -> ... -> n{n-1} -> y``, each node ``inc``."""
    flow = Flow("bench_chain", inputs={"x": int}, outputs={"y": int})
    for i in range(n):
        flow.add(_inline(Node.tool(f"n{i}", inc, inputs={"x": int}, outputs={"y": int})))
    flow.connect("x", "n0.x")
    for i in range(n - 1):
        flow.connect(f"n{i}.y", f"n{i + 1}.x")
    return flow.connect(f"n{n - 1}.y", "y")


def fan_flow(branches: int) -> Flow:
    """``x`` to ``b0..b{B-1}`` (each ``inc``), all into one ``total`` node, then ``y``."""
    flow = Flow("bench_fan", inputs={"x": int}, outputs={"y": int})
    ports = {f"v{i}": int for i in range(branches)}
    flow.add(_inline(Node.tool("sum", total, inputs=ports, outputs={"total": int})))
    for i in range(branches):
        flow.add(_inline(Node.tool(f"b{i}", inc, inputs={"x": int}, outputs={"y": int})))
        flow.connect("x", f"b{i}.x").connect(f"b{i}.y", f"sum.v{i}")
    return flow.connect("sum.total", "y")


# -- LangGraph graphs ----------------------------------------------------------------------------
class ChainState(TypedDict):
    x: int


class FanState(TypedDict):
    x: int
    vals: Annotated[list[int], operator.add]
    total: int


def lg_chain(n: int) -> Any:
    from langgraph.graph import END, START, StateGraph

    builder = StateGraph(ChainState)
    for i in range(n):
        builder.add_node(f"n{i}", lg_inc)
    builder.add_edge(START, "n0")
    for i in range(n - 1):
        builder.add_edge(f"n{i}", f"n{i + 1}")
    builder.add_edge(f"n{n - 1}", END)
    return builder.compile()


def lg_fan(branches: int) -> Any:
    from langgraph.graph import END, START, StateGraph

    builder = StateGraph(FanState)
    builder.add_node("sum", lg_sum)
    for i in range(branches):
        builder.add_node(f"b{i}", lg_branch)
        builder.add_edge(START, f"b{i}")
        builder.add_edge(f"b{i}", "sum")
    builder.add_edge("sum", END)
    return builder.compile()


# -- plain-Python baselines -----------------------------------------------------------------------
def base_chain_ours(n: int, x: int) -> int:
    for _ in range(n):
        x = inc(x=x)["y"]
    return x


def base_fan_ours(branches: int, x: int) -> int:
    values = {f"v{i}": inc(x=x)["y"] for i in range(branches)}
    return total(**values)["total"]


def base_chain_lg(n: int, x: int) -> int:
    state = {"x": x}
    for _ in range(n):
        state = lg_inc(state)
    return state["x"]


def base_fan_lg(branches: int, x: int) -> int:
    vals: list[int] = []
    for _ in range(branches):
        vals += lg_branch({"x": x})["vals"]
    return lg_sum({"x": x, "vals": vals})["total"]


# -- measuring ------------------------------------------------------------------------------------
@dataclass
class Case:
    """One engine on one shape: a zero-argument callable returning the final value."""

    label: str
    run: Callable[[], int]
    expected: int
    setup_ms: float = 0.0
    after: Callable[[], None] | None = None  # before each run, outside the clock
    settle: Callable[[], None] | None = None  # after each round, outside the clock but timed apart
    settle_ns: int = 0
    runs: int = 0  # every run, timed or not (what ``settle`` worked off)
    inner: int = 1  # calls per sample (baselines: too short to time one by one)
    per_round: int = 1  # timed samples per round (more for the cheap cases: steadier medians)
    samples: list[float] = field(default_factory=list)  # wall ns per run
    cpu_samples: list[float] = field(default_factory=list)  # process CPU ns per run
    value: int | None = None  # what the last run returned

    def once(self, record: bool = True) -> None:
        if self.after is not None:
            self.after()
        got = None
        self.runs += 1
        c0, t0 = time.process_time_ns(), time.perf_counter_ns()
        for _ in range(self.inner):
            got = self.run()
        elapsed = (time.perf_counter_ns() - t0) / self.inner
        cpu = (time.process_time_ns() - c0) / self.inner
        if got != self.expected:
            raise AssertionError(f"{self.label}: got {got}, expected {self.expected}")
        self.value = got
        if record:
            self.samples.append(elapsed)
            self.cpu_samples.append(cpu)

    @property
    def median_us(self) -> float:
        return statistics.median(self.samples) / 1e3

    @property
    def min_us(self) -> float:
        return min(self.samples) / 1e3

    @property
    def cpu_median_us(self) -> float:
        return statistics.median(self.cpu_samples) / 1e3


def _timed(build: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter_ns()
    built = build()
    return built, (time.perf_counter_ns() - t0) / 1e6


def _ours(
    label: str,
    flow: Flow,
    tracer: Any,
    loop: asyncio.AbstractEventLoop,
    expected: int,
    after: Any = None,
    settle: Any = None,
) -> Case:
    executor, ms = _timed(lambda: Executor(flow, tracer=tracer))

    def go() -> int:
        result = loop.run_until_complete(executor.arun({"x": 0}))
        result.raise_for_status()
        return result.outputs["y"]

    return Case(label, go, expected, ms, after, settle, per_round=CHEAP_SAMPLES)


def _lg(label: str, build: Callable[[], Any], key: str, steps: int, expected: int) -> Case:
    graph, ms = _timed(build)
    config = {"recursion_limit": steps + 10}
    return Case(label, lambda: graph.invoke({"x": 0}, config)[key], expected, ms)


def _base(label: str, fn: Callable[[], int], expected: int, nodes: int) -> Case:
    return Case(label, fn, expected, inner=max(1, 20_000 // nodes), per_round=CHEAP_SAMPLES)


def build_cases(
    shape: str, size: int, tracers: list[str], loop: asyncio.AbstractEventLoop, tmp: Path
) -> tuple[int, list[Case], list[Callable[[], dict[str, float]]]]:
    """The cases of one shape (``chain``, ``fan``, ``single``), its node count and clean-ups."""
    finals: list[Callable[[], None]] = []
    if shape == "fan":
        nodes, expected = size + 1, size
        flow, lg_build, key, steps = fan_flow(size), (lambda: lg_fan(size)), "total", 2
        base_ours, base_lg = (lambda: base_fan_ours(size, 0)), (lambda: base_fan_lg(size, 0))
    else:
        nodes = expected = size
        flow, lg_build, key, steps = chain_flow(size), (lambda: lg_chain(size)), "x", size
        base_ours, base_lg = (lambda: base_chain_ours(size, 0)), (lambda: base_chain_lg(size, 0))
    cases = [
        _ours("workbench", flow, NoopTracer(), loop, expected),
        _lg("langgraph", lg_build, key, steps, expected),
        _base("baseline (workbench fns)", base_ours, expected, nodes),
        _base("baseline (langgraph fns)", base_lg, expected, nodes),
    ]
    if "memory" in tracers:
        memory = MemoryTracer()
        cases.append(_ours("workbench + MemoryTracer", flow, memory, loop, expected, memory.spans.clear))
    if "duckdb" in tracers:
        from workbench.traces import TraceWriter

        writer = TraceWriter(tmp / f"{shape}.duckdb")
        # Flushed after each round: its background thread must not run on into the next case's clock.
        cases.append(_ours(DUCKDB, flow, writer, loop, expected, settle=writer.flush))
        finals.append(writer.close)
    return nodes, cases, finals


def measure(
    shape: str, size: int, *, warmup: int, repeat: int, tracers: list[str], loop: Any, tmp: Path
) -> dict[str, Any]:
    nodes, cases, finals = build_cases(shape, size, tracers, loop, tmp)
    gc.collect()  # once, before warm-up: collecting before every run would time cold caches instead
    for round_ in range(warmup + repeat):
        for case in cases:
            case.once(record=False)  # so the timed run starts warm, not after another engine's run
            if round_ >= warmup:
                for _ in range(case.per_round):
                    case.once()
            if case.settle is not None:
                t0 = time.perf_counter_ns()
                case.settle()
                case.settle_ns += time.perf_counter_ns() - t0
    by_label = {c.label: c for c in cases}
    base = {
        "workbench": by_label["baseline (workbench fns)"],
        "langgraph": by_label["baseline (langgraph fns)"],
    }
    rows = []
    for case in cases:
        if case.label.startswith("baseline"):
            per_node = cpu_per_node = None
        else:
            engine = base["langgraph" if case.label == "langgraph" else "workbench"]
            per_node = (case.median_us - engine.median_us) / nodes
            cpu_per_node = (case.cpu_median_us - engine.cpu_median_us) / nodes
        rows.append(
            {
                "engine": case.label,
                "value": case.value,
                "setup_ms": case.setup_ms,
                "median_us": case.median_us,
                "min_us": case.min_us,
                "per_node_us": per_node,
                "cpu_median_us": case.cpu_median_us,
                "cpu_per_node_us": cpu_per_node,
            }
        )
        if case.settle is not None:
            rows[-1]["settle_per_run_us"] = case.settle_ns / case.runs / 1e3
    for finish in finals:
        finish()
    ours_row = next(r for r in rows if r["engine"] == "workbench")
    theirs_row = next(r for r in rows if r["engine"] == "langgraph")
    ours, theirs = ours_row["per_node_us"], theirs_row["per_node_us"]
    cpu_ours, cpu_theirs = ours_row["cpu_per_node_us"], theirs_row["cpu_per_node_us"]
    return {
        "shape": shape,
        "size": size,
        "nodes": nodes,
        "rows": rows,
        "ours_per_node_us": ours,
        "langgraph_per_node_us": theirs,
        "ratio": theirs / ours if ours > 0 else float("inf"),
        "cpu_ours_per_node_us": cpu_ours,
        "cpu_langgraph_per_node_us": cpu_theirs,
        "cpu_ratio": cpu_theirs / cpu_ours if cpu_ours > 0 else float("inf"),
        "result": cases[0].expected,
    }


def machine() -> str:
    import importlib.metadata

    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"langgraph {importlib.metadata.version('langgraph')}, load average "
        f"{os.getloadavg()[0]:.1f}"
    )


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def print_report(report: dict[str, Any]) -> None:
    print(f"# executor overhead: {report['machine']}")
    print(
        f"# warm-up {report['warmup']}, {report['repeat']} interleaved rounds; median of {report['repeat']}"
        f" runs for LangGraph, of {report['repeat'] * CHEAP_SAMPLES} for the others"
    )
    print(f"# importing langgraph took {report['langgraph_import_ms']:.0f} ms (not counted below)")
    for res in report["shapes"]:
        label = {"chain": "chain", "fan": "fan-out", "single": "single node"}[res["shape"]]
        print(f"\n## {label}: {res['nodes']} nodes (result {res['result']}, both engines agree)")
        print(
            f"{'engine':32} {'setup ms':>9} {'median us':>12} {'min us':>12} {'us/node':>8}"
            f" {'cpu us':>12} {'cpu us/node':>11}"
        )
        for r in res["rows"]:
            print(
                f"{r['engine']:32} {_fmt(r['setup_ms'] or None):>9} {_fmt(r['median_us']):>12} "
                f"{_fmt(r['min_us']):>12} {_fmt(r['per_node_us'], 2):>8} {_fmt(r['cpu_median_us']):>12}"
                f" {_fmt(r['cpu_per_node_us'], 2):>11}"
            )
        for r in res["rows"]:
            if "settle_per_run_us" in r:
                flush = r["settle_per_run_us"]
                print(
                    f"{r['engine']}: flush (a DuckDB commit) after each round of {CHEAP_SAMPLES + 1} runs, "
                    f"off the clock: {flush:,.1f} us per run = {flush / res['nodes']:.2f} us/node more"
                )
        if res["shape"] != "single":
            print(
                f"per-node overhead: workbench {res['ours_per_node_us']:.2f} us, langgraph "
                f"{res['langgraph_per_node_us']:.2f} us, ratio {res['ratio']:.1f}x (CPU time: "
                f"{res['cpu_ours_per_node_us']:.2f} vs {res['cpu_langgraph_per_node_us']:.2f} us, "
                f"{res['cpu_ratio']:.1f}x)"
            )
    print()
    for line in report["verdict"]:
        print(line)


def verdict(shapes: list[dict[str, Any]]) -> tuple[bool, list[str]]:
    lines, ok = [], True
    for res in shapes:
        if res["shape"] == "single":
            continue
        ours, ratio = res["ours_per_node_us"], res["ratio"]
        met = ours <= GOAL_US and ratio >= GOAL_RATIO
        ok &= met
        lines.append(
            f"{res['shape']}: {ours:.2f} us/node (goal <= {GOAL_US:.0f}), {ratio:.1f}x lower than "
            f"LangGraph (goal >= {GOAL_RATIO:.0f}x): {'MET' if met else 'MISSED'} (wall-clock medians; "
            f"by CPU time {res['cpu_ours_per_node_us']:.2f} us/node, {res['cpu_ratio']:.1f}x)"
        )
    lines.append(f"goal {'met' if ok else 'missed'}")
    return ok, lines


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the report and return it as a dict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 warm-up and 3 runs instead of 2 and 9")
    parser.add_argument("--chain", type=int, default=1000, help="nodes in the chain (1,000)")
    parser.add_argument("--branches", type=int, default=100, help="parallel branches (100)")
    parser.add_argument("--repeat", type=int, default=None, help="timed runs per case")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up runs per case")
    parser.add_argument(
        "--tracers",
        default=None,
        help="extra tracers to measure, comma-separated from memory,duckdb "
        "(default: both; with --quick: memory); 'none' for only the no-op tracer",
    )
    parser.add_argument("--json", default=None, help="also write the report here")
    args = parser.parse_args(argv)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    repeat = args.repeat if args.repeat is not None else (3 if args.quick else 9)
    spec = args.tracers if args.tracers is not None else ("memory" if args.quick else "memory,duckdb")
    tracers = [t for t in spec.split(",") if t and t != "none"]
    t0 = time.perf_counter_ns()
    import langgraph.graph  # noqa: F401  (imported here so no graph build pays for it)

    import_ms = (time.perf_counter_ns() - t0) / 1e6
    loop = asyncio.new_event_loop()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            shapes = [
                measure(shape, size, warmup=warmup, repeat=repeat, tracers=tracers, loop=loop, tmp=Path(tmp))
                for shape, size in (("chain", args.chain), ("fan", args.branches), ("single", 1))
            ]
    finally:
        loop.close()
    ok, lines = verdict(shapes)
    report = {
        "machine": machine(),
        "warmup": warmup,
        "repeat": repeat,
        "langgraph_import_ms": import_ms,
        "shapes": shapes,
        "goal_met": ok,
        "verdict": lines,
    }
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
