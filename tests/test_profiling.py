"""Kernel-level spans of a real run: the tiny model's torch ops under its model call span."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.api import load
from workbench.profiling import kernel_profile, record_profile
from workbench.runtime import Executor
from workbench.spans import MemoryTracer, NoopTracer
from workbench.traces import TraceWriter

torch = pytest.importorskip("torch")

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


def test_profiler_events_become_child_spans_of_the_model_call(tmp_path: Path) -> None:
    from torch.profiler import ProfilerActivity, profile

    with TraceWriter(tmp_path / "t.duckdb") as w:
        root = w.start_span("run", attributes={"workbench.run.id": "k"})
        call = w.start_span("chat tiny", parent=root, attributes={"gen_ai.request.model": "tiny"})
        x = torch.randn(32, 32)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            (x @ x).relu().sum()
        w.end_span(call)
        w.end_span(root)
        n = record_profile(w, call, prof)
        assert n > 0
        spans = w.store().spans("k").set_index("span_id")
    ops = spans[spans["name"].str.startswith("op ")]
    assert len(ops) == n
    assert "op aten::matmul" in set(ops["name"])
    ids = set(spans.index)
    assert ops["parent_id"].isin(ids).all()  # each under the call or under the op that ran it
    assert (ops["parent_id"] == call.span_id).any()
    assert (ops["duration_ns"] >= 0).all()
    # profiler times are on the same wall clock as the run (within a generous margin)
    assert ops["start_ns"].min() >= root.start_ns - 10_000_000_000
    assert record_profile(NoopTracer(), call, prof) == 0
