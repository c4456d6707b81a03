"""Kernel-level spans: a ``torch.profiler`` run recorded as child spans of a model call.

Usage, in the model runtime (torch is imported by the caller, never by this module)::

    with torch.profiler.profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        logits = model(tokens)
    record_profile(tracer, call_span, prof)

Each profiler event (an aten op, a Triton or CUDA kernel) becomes a span under the op that
launched it, or under ``parent`` at the top, so a run can be followed from flow to node to
model call to kernel. Times come from the profiler's own clock origin
(``trace_start_ns``, wall-clock nanoseconds), so the spans line up with the rest of the run.
"""

from __future__ import annotations

from typing import Any

from workbench.tracing import Span, Tracer, new_span_id

__all__ = ["record_profile"]


def record_profile(
    tracer: Tracer, parent: Span, prof: Any, *, min_duration_us: float = 0.0, limit: int = 10_000
) -> int:
    """Record ``prof``'s events as spans under ``parent``; returns how many were recorded.

    ``min_duration_us`` skips shorter events (profiles of a decode loop are large);
    ``limit`` caps the count. Tracers without ``record`` (the no-op one) record nothing.
    """
    record = getattr(tracer, "record", None)
    if record is None:
        return 0
    origin = int(prof.profiler.kineto_results.trace_start_ns())
    spans: dict[int, Span] = {}
    count = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        if count >= limit:
            break
        start_us, end_us = event.time_range.start, event.time_range.end
        if end_us - start_us < min_duration_us:
            continue
        above = spans.get(id(event.cpu_parent)) if event.cpu_parent is not None else None
        device = str(event.device_type).rsplit(".", 1)[-1]
        attributes: dict[str, Any] = {
            "openinference.span.kind": "UNKNOWN",
            "workbench.kernel.name": event.name,
            "workbench.kernel.device": device,
        }
        shapes = getattr(event, "input_shapes", None)
        if shapes:
            attributes["workbench.kernel.input_shapes"] = str(shapes)
        span = Span(
            name=f"{'kernel' if device != 'CPU' else 'op'} {event.name}",
            trace_id=parent.trace_id,
            span_id=new_span_id(),
            parent_id=(above or parent).span_id,
            start_ns=origin + int(start_us * 1000),
            end_ns=origin + int(end_us * 1000),
            attributes=attributes,
            status="OK",
        )
        spans[id(event)] = span
        record(span)
        count += 1
    return count
