"""What streaming an llm node's tokens costs: the tiny model, with and without a listener, one run.

    .venv/bin/python benchmarks/bench_streaming.py            # about half a minute
    .venv/bin/python benchmarks/bench_streaming.py --rounds 5 # fewer rounds

Three cases, interleaved round by round so the machine's drift hits each alike, each
reporting the median wall time of one call and its cost per generated token:

- **model**: ``LocalModel.generate`` of one request (greedy, a fixed prompt, ``--tokens``
  tokens, no constraint): no ``on_token`` / a no-op ``on_token`` (called on the worker
  thread) / the executor's ``TokenSink`` (each piece hops to the event loop with
  ``call_soon_threadsafe``, what a run with ``on_token=`` does).
- **trader**: the ``trader`` example flow through ``Executor.arun`` (schema and the budget
  rail enforced while decoding, no tracer): without and with ``on_token=`` (a listener that
  keeps the pieces, as the app's run view does).

Per-token overhead = (median with - median without) / tokens of the call. It is small
enough to hide in the rounds' noise, so the script also times the sink alone: ``TokenSink``
called 100,000 times from a worker thread (each call queues the piece for the loop) and on
the loop's own thread (a direct call to the listener).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from workbench.examples import flow_path
from workbench.flow import load
from workbench.models.base import GenerationRequest, TokenEvent
from workbench.models.local import DEFAULT_MODEL_DIR, LocalModel
from workbench.runtime import Executor
from workbench.runtime.streaming import NodeToken, TokenSink

TRADE = {"news": "BOLT shares jump; the stock trades at 12.50", "cash": 7.0}


async def _timed(call: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = await call()
    return time.perf_counter() - start, out


async def bench(rounds: int, tokens: int) -> dict[str, tuple[float, int]]:
    """Median seconds per call and tokens per call, per case."""
    model = LocalModel.from_pretrained(DEFAULT_MODEL_DIR, device="cpu")
    heard: list[Any] = []

    def ask(on_token: Any) -> Callable[[], Awaitable[Any]]:
        def call() -> Awaitable[Any]:
            request = GenerationRequest(prompt="The market opened", max_tokens=tokens, on_token=on_token)
            return model.generate([request])

        return call

    def noop(event: TokenEvent) -> None:
        pass

    def keep(token: NodeToken) -> None:
        heard.append(token)

    flow = load(flow_path("trader"))
    plain, listening = Executor(flow, model=model), Executor(flow, model=model, on_token=keep)
    cases: dict[str, Callable[[], Callable[[], Awaitable[Any]]]] = {
        "model, no on_token": lambda: ask(None),
        "model, no-op on_token": lambda: ask(noop),
        "model, TokenSink to the loop": lambda: ask(TokenSink(keep, "bench", "answer")),
        "trader, no on_token": lambda: lambda: plain.arun(TRADE),
        "trader, on_token": lambda: lambda: listening.arun(TRADE),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    counts: dict[str, int] = {}
    for make in cases.values():  # warm up: the model's first batch, the rails' solver
        await make()()
    for _ in range(rounds):
        for name, make in cases.items():
            heard.clear()
            seconds, out = await _timed(make())
            times[name].append(seconds)
            if name.startswith("model"):
                counts[name] = out[0].output_tokens
            else:
                assert out.status == "ok", out.error
                if heard:  # the greedy answer is the same with and without a listener
                    counts["trader"] = sum(1 for t in heard if t.start is None)
    return {name: (statistics.median(ts), counts.get(name, counts["trader"])) for name, ts in times.items()}


async def sink_alone(calls: int = 100_000) -> dict[str, float]:
    """Microseconds per ``TokenSink`` call, from a worker thread and on the loop's thread."""
    heard: list[NodeToken] = []
    event = TokenEvent(1, "x")
    sink = TokenSink(heard.append, "bench", "answer")

    def from_thread() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            sink(event)
        return time.perf_counter() - start

    threaded = await asyncio.to_thread(from_thread)
    sink.drain()
    assert len(heard) == calls + 1  # the start, then every piece
    start = time.perf_counter()
    for _ in range(calls):
        sink(event)
    direct = time.perf_counter() - start
    return {
        "sink call, worker thread": threaded / calls * 1e6,
        "sink call, loop thread": direct / calls * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    results = asyncio.run(bench(args.rounds, args.tokens))
    base = {"model": results["model, no on_token"], "trader": results["trader, no on_token"]}
    print(f"{'case':32} {'median ms':>10} {'tokens':>7} {'us/token':>9} {'+us/token':>10}")
    for name, (seconds, n) in results.items():
        b_seconds = base[name.split(",")[0]][0]
        extra = (seconds - b_seconds) / n * 1e6 if n else float("nan")
        print(f"{name:32} {seconds * 1e3:10.2f} {n:7d} {seconds / max(n, 1) * 1e6:9.1f} {extra:+10.1f}")
    for name, us in asyncio.run(sink_alone()).items():
        print(f"{name:32} {us:10.2f} us per token")


if __name__ == "__main__":
    main()
