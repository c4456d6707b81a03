"""Kernel-level spans of a real run: the tiny model's torch ops under its model call span."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.api import load
from workbench.profiling import kernel_profile
from workbench.runtime import Executor
from workbench.traces import TraceWriter
from workbench.tracing import MemoryTracer, NoopTracer

pytest.importorskip("torch")

NEWS = "BOLT shares jump after a record quarter; the stock trades at 12.50"


def test_a_profiled_run_records_the_model_calls_ops_under_its_span(tmp_path: Path) -> None:
    with TraceWriter(tmp_path / "t.duckdb") as writer:
        executor = Executor(load("trader"), tracer=writer, profile_kernels={"limit": 3000})
        result = executor.run({"news": NEWS, "cash": 1000})
        assert result.status == "ok"
        spans = writer.store().spans("latest").set_index("span_id")
    (call_id,) = spans.index[spans["name"].str.startswith("chat ")]
    call = spans.loc[call_id]
    ops = spans[spans["name"].str.startswith("op ")]
    assert len(ops) == json.loads(call["attributes"])["workbench.kernel.profiled"] > 0
    # Every op hangs under the model call, directly or under the op that ran it.
    for parent in ops["parent_id"]:
        while parent != call_id:
            assert parent in ops.index
            parent = ops.loc[parent, "parent_id"]
    # The model decodes in its worker thread: its matrix products are seen all the same.
    assert ops["name"].str.contains("aten::(?:mm|addmm|linear|matmul)").any()
    margin = 50_000_000  # profiler and span clocks agree to well within 50 ms
    assert ops["start_ns"].min() >= call["start_ns"] - margin
    assert ops["start_ns"].max() <= call["end_ns"] + margin


def test_kernel_profile_is_a_no_op_for_tracers_that_cannot_store_timed_spans() -> None:
    for tracer in (NoopTracer(), MemoryTracer()):
        span = tracer.start_span("chat x")
        with kernel_profile(tracer, span):
            pass
        assert "workbench.kernel.profiled" not in span.attributes


def test_overlapping_model_calls_profile_one_and_say_so_on_the_other(tmp_path: Path) -> None:
    import asyncio

    import torch

    x = torch.randn(64, 64)
    with TraceWriter(tmp_path / "t.duckdb") as writer:
        first, second = writer.start_span("chat a"), writer.start_span("chat b")

        async def call(span: object, delay: float) -> None:
            await asyncio.sleep(delay)
            with kernel_profile(writer, span):  # type: ignore[arg-type]
                await asyncio.sleep(0.05)  # the other call starts meanwhile
                (x @ x).relu()

        async def both() -> None:
            await asyncio.gather(call(first, 0), call(second, 0.01))

        asyncio.run(both())
        assert first.attributes["workbench.kernel.profiled"] > 0
        assert "workbench.kernel.profiled" not in second.attributes
        assert second.attributes["workbench.kernel.skipped"] == "another model call was being profiled"
        with kernel_profile(writer, second):  # free again once the first window closed
            (x @ x).relu()
        assert second.attributes["workbench.kernel.profiled"] > 0
