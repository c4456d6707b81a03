"""The ``Tracer`` protocol: how every layer reports spans without knowing the store.

The runtime (and the model runtime, for decode steps) emits OpenTelemetry-shaped spans
through this protocol; the DuckDB trace store implements it, ``NoopTracer`` discards
everything and ``MemoryTracer`` keeps finished spans in a list (notebooks, tests).

A span is plain data (``Span``). ``start_span`` opens one, ``add_event`` attaches a
timestamped event (a rail check, a token), ``end_span`` closes it and hands it to the
sink. Parents are passed explicitly, never taken from ambient context, because many
nodes run concurrently in one event loop.

Attribute names follow the OpenTelemetry GenAI conventions (``gen_ai.*``) and
OpenInference where GenAI has no word (``openinference.span.kind``: CHAIN, LLM, TOOL,
GUARDRAIL...). Workbench's own attributes live under ``workbench.*``; a run's root span
carries ``workbench.run.id``, ``workbench.flow.name``, ``workbench.flow.hash``,
``workbench.run.inputs`` and ``workbench.run.outputs`` (JSON text).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["MemoryTracer", "NoopTracer", "Span", "SpanEvent", "Tracer", "new_span_id", "new_trace_id"]


def new_trace_id() -> str:
    """A random 128-bit trace id as 32 lowercase hex digits (OTLP's form)."""
    return os.urandom(16).hex()


def new_span_id() -> str:
    """A random 64-bit span id as 16 lowercase hex digits."""
    return os.urandom(8).hex()


@dataclass(slots=True)
class SpanEvent:
    """A timestamped point inside a span (a rail verdict, a retry, a token)."""

    name: str
    time_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Span:
    """One OpenTelemetry-shaped span; ``end_ns`` is 0 until it ends."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    start_ns: int
    kind: str = "INTERNAL"
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[SpanEvent] = field(default_factory=list)
    end_ns: int = 0
    status: str = "UNSET"  # UNSET | OK | ERROR, as in OTLP
    status_message: str | None = None

    @property
    def duration_ns(self) -> int:
        """Nanoseconds from start to end (0 while open)."""
        return self.end_ns - self.start_ns if self.end_ns else 0


@runtime_checkable
class Tracer(Protocol):
    """What a trace sink implements. Every method must be cheap and must not raise."""

    def start_span(
        self,
        name: str,
        *,
        parent: Span | None = None,
        kind: str = "INTERNAL",
        attributes: dict[str, Any] | None = None,
    ) -> Span:
        """Open a span; a ``parent`` of ``None`` starts a new trace."""
        ...

    def add_event(self, span: Span, name: str, attributes: dict[str, Any] | None = None) -> None:
        """Attach a timestamped event to an open span."""
        ...

    def end_span(self, span: Span, *, status: str = "OK", message: str | None = None) -> None:
        """Close a span and hand it to the sink."""
        ...

    def flush(self) -> object:
        """Block until every ended span is stored (the result is the sink's own: the trace
        writers return whether they finished in time)."""
        ...


class _BaseTracer:
    """Span bookkeeping shared by the in-process tracers; subclasses override ``_export``."""

    def start_span(
        self,
        name: str,
        *,
        parent: Span | None = None,
        kind: str = "INTERNAL",
        attributes: dict[str, Any] | None = None,
    ) -> Span:
        return Span(
            name=name,
            trace_id=parent.trace_id if parent is not None else new_trace_id(),
            span_id=new_span_id(),
            parent_id=parent.span_id if parent is not None else None,
            start_ns=time.time_ns(),
            kind=kind,
            attributes=dict(attributes or {}),
        )

    def add_event(self, span: Span, name: str, attributes: dict[str, Any] | None = None) -> None:
        span.events.append(SpanEvent(name, time.time_ns(), dict(attributes or {})))

    def end_span(self, span: Span, *, status: str = "OK", message: str | None = None) -> None:
        span.end_ns = time.time_ns()
        span.status = status
        span.status_message = message
        self._export(span)

    def _export(self, span: Span) -> None:
        pass

    def flush(self, timeout: float | None = None) -> bool:
        return True  # nothing waits in process: each span was exported when it ended


class NoopTracer(_BaseTracer):
    """Discards every span (the default when nothing records)."""


class MemoryTracer(_BaseTracer):
    """Keeps finished spans in ``spans``, in the order they ended (thread-safe)."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._lock = threading.Lock()

    def _export(self, span: Span) -> None:
        with self._lock:
            self.spans.append(span)

    def by_name(self, prefix: str) -> list[Span]:
        """Finished spans whose name starts with ``prefix``."""
        return [s for s in self.spans if s.name.startswith(prefix)]
