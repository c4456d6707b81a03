"""Kernel-level spans from a real torch.profiler run, under a model call span."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.traces import TraceWriter
from workbench.traces.kernels import record_profile
from workbench.tracing import NoopTracer

torch = pytest.importorskip("torch")


def test_profiler_events_become_child_spans_of_the_model_call(db: Path) -> None:
    from torch.profiler import ProfilerActivity, profile

    with TraceWriter(db) as w:
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
