"""Tools for tests/runtime/test_otel.py that trace themselves with the OpenTelemetry API, as
instrumented user code does (the API imported at module level)."""

from __future__ import annotations

from opentelemetry import trace

_tracer = trace.get_tracer("tests.otel_tools")


def traced(x: int) -> dict[str, int]:
    """Opens two nested spans (``outer`` and ``inner``) and returns ``{"y": x + 1}``."""
    with _tracer.start_as_current_span("outer", attributes={"test.x": x}) as outer:
        outer.add_event("halfway", {"test.step": 1})
        with _tracer.start_as_current_span("inner", kind=trace.SpanKind.CLIENT):
            pass
    return {"y": x + 1}


def failing() -> dict[str, int]:
    """Opens a span and raises inside it (the span records the error)."""
    with _tracer.start_as_current_span("doomed"):
        raise RuntimeError("boom")
