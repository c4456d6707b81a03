"""Kernel-level spans: a ``torch.profiler`` run recorded as child spans of a model call.

``kernel_profile(tracer, call_span)`` wraps a model call (the runtime does it for every llm
node when a run asks for ``profile_kernels``); ``record_profile`` turns a finished profile
into spans. Each profiler event (an aten op, a Triton or CUDA kernel) becomes a span under
the op that launched it, or under the call span at the top, so a run can be followed from
flow to node to model call to kernel. Times come from the profiler's own clock origin
(``trace_start_ns``, wall-clock nanoseconds), so the spans line up with the rest of the run.

This module sits beside ``workbench.spans`` (any layer may use it) and imports torch only
when a profile is actually taken.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from workbench.spans import Span, Tracer, new_span_id

__all__ = ["kernel_profile", "record_profile"]

_PROFILING = threading.Lock()  # torch.profiler is one session per process


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


@contextlib.contextmanager
def kernel_profile(
    tracer: Tracer, span: Span, *, min_duration_us: float = 0.0, limit: int = 10_000
) -> Iterator[None]:
    """Profile the block with ``torch.profiler`` and record its ops and kernels under ``span``.

    A no-op (nothing is profiled) when torch is not installed or the tracer cannot store
    already-timed spans. CUDA kernels are included when CUDA is available. The profiler sees
    every thread of the process, so ops of other work running meanwhile (a batched decode
    step serving several calls) are recorded too. torch has one profiler per process: a call
    that starts while another is being profiled is not profiled, and its span says so
    (``workbench.kernel.skipped``).
    """
    if getattr(tracer, "record", None) is None:
        yield
        return
    try:
        import torch
        from torch.profiler import ProfilerActivity, profile
    except ImportError:
        yield
        return
    if not _PROFILING.acquire(blocking=False):
        span.attributes["workbench.kernel.skipped"] = "another model call was being profiled"
        yield
        return
    try:
        activities = [ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(ProfilerActivity.CUDA)
        with profile(activities=activities, record_shapes=True, **_all_threads()) as prof:
            yield
    finally:
        _PROFILING.release()
    recorded = record_profile(tracer, span, prof, min_duration_us=min_duration_us, limit=limit)
    span.attributes["workbench.kernel.profiled"] = recorded
    if recorded >= limit:  # say so rather than let a cut-off profile look complete
        span.attributes["workbench.kernel.truncated"] = True


def _all_threads() -> dict[str, Any]:
    """Profiler options that also record other threads' ops (a local model decodes in its
    worker thread). Older torch lacks the switch: then only the calling thread is seen."""
    try:
        from torch._C._profiler import _ExperimentalConfig

        return {"experimental_config": _ExperimentalConfig(profile_all_threads=True)}
    except (ImportError, TypeError):
        return {}
