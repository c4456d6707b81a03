"""The current span of code running inside a node, and OpenTelemetry-API spans into the store.

Workbench's own spans name their parents explicitly (``workbench.spans``). Code it does not
own (a tool's body, an instrumented library, an HTTP client) finds its parent in ambient
context instead. So while a node, an agent's tool call or an agent's model turn runs, the
runtime makes its span current with ``use_span`` (a context-variable set and reset):

- ``current_span()`` and ``traceparent()`` read it; the OpenAI client sends
  ``traceparent()`` as the W3C ``traceparent`` header;
- the OpenTelemetry API's current span follows it, but only when ``opentelemetry.trace`` is
  already imported in the process: workbench never imports it itself, so without
  OpenTelemetry nothing is imported and nothing else happens. (Import it at module level,
  as usual: in a run that started before anything imported it, its spans get no parent.)

Following costs a node nothing: once per run (``follow_nodes``, called by the executor) a
``NonRecordingSpan`` is attached to the OpenTelemetry context, whose ``get_span_context()``
answers with the trace id and span id of the node running in the asking context, looked
up only when some code asks (to start a span, or to inject ``traceparent``). Node tasks
and tool threads inherit it with the rest of their context.

Spans made with the API (``get_tracer(...).start_as_current_span(...)``) under it get the
run's trace id and the node's span as parent. They reach the trace store through a bridge,
``install()``, run when the first run starts with the API loaded: it adds a
``SpanProcessor`` to the global SDK ``TracerProvider``, and sets a plain SDK provider first
when none is set (set yours before the first run, or call ``install(provider)`` for one
set later). When a span
starts under a node, the processor notes the workbench tracer that records the node; when
it ends, it converts the span to a ``Span`` (ids, times, kind, status, attributes, events
and ``otel.scope.name`` kept) and hands it to that tracer's ``record`` (``end_span`` for a
tracer without one). Spans started outside nodes are not touched: they go only wherever
else the provider exports. With only the API installed (no ``opentelemetry-sdk``), spans
do not record; the ids still propagate.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any

from workbench.spans import Span, SpanEvent, Tracer

__all__ = ["CURRENT_SPAN", "current_span", "follow_nodes", "install", "traceparent", "use_span"]

_API_MODULE = "opentelemetry.trace"
# The span of the node running in this context and the tracer that records it. ``use_span``
# sets it; the executor sets it directly (inside a run, where ``follow_nodes`` already holds).
CURRENT_SPAN: ContextVar[tuple[Tracer, Span] | None] = ContextVar("workbench_current_span", default=None)
_lock = threading.Lock()
_bridged: set[int] = set()  # id() of each provider that has the processor
_installed = False
_FOLLOWING: ContextVar[bool] = ContextVar("workbench_otel_following", default=False)


def current_span() -> Span | None:
    """The workbench span of the node (tool call, model turn) running in this context, or None."""
    current = CURRENT_SPAN.get()
    return None if current is None else current[1]


def traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, or None outside any span.

    The OpenTelemetry API's current span when the API is loaded (the node's span, or a span
    that user code opened inside it), else the current workbench span.
    """
    if _API_MODULE in sys.modules:
        found = _api_traceparent()
        if found is not None:
            return found
    current = CURRENT_SPAN.get()
    if current is None:
        return None
    return f"00-{current[1].trace_id}-{current[1].span_id}-01"


class _UseSpan:
    """The context manager of ``use_span`` (a class with slots: agents enter one per tool call)."""

    __slots__ = ("_otel", "_token", "span", "tracer")

    def __init__(self, tracer: Tracer, span: Span) -> None:
        self.tracer = tracer
        self.span = span
        self._token: Token[tuple[Tracer, Span] | None] | None = None
        self._otel: Callable[[], None] | None = None

    def __enter__(self) -> Span:
        self._token = CURRENT_SPAN.set((self.tracer, self.span))
        if _API_MODULE in sys.modules and not _FOLLOWING.get():  # outside a run's follow_nodes
            self._otel = follow_nodes()
        return self.span

    def __exit__(self, *exc: object) -> None:
        if self._otel is not None:
            self._otel()
            self._otel = None
        if self._token is not None:
            CURRENT_SPAN.reset(self._token)
            self._token = None


def use_span(tracer: Tracer, span: Span) -> _UseSpan:
    """Make ``span`` (recorded by ``tracer``) current in this context, for the ``with`` block."""
    return _UseSpan(tracer, span)


def _nothing() -> None:
    pass


def follow_nodes() -> Callable[[], None]:
    """Make the OpenTelemetry API's current span follow ``use_span`` in this context; the undo.

    Without the API loaded, nothing (and ``_nothing`` as the undo). With it, one span object
    is attached for the whole run (the executor calls this once per run, so its node tasks
    and tool threads inherit it): it answers ``get_span_context()`` with the span of the
    node running in the asking context, read when asked, so a node pays no OpenTelemetry
    cost unless its code makes a span. Outside nodes it answers as the span that was
    current before (the caller's own span, if any).
    """
    if _API_MODULE not in sys.modules or _FOLLOWING.get():
        return _nothing
    if not _API:
        _load_api()
    context, trace, _, follower = _API
    otel_token = context.attach(trace.set_span_in_context(follower(trace.get_current_span())))
    token = _FOLLOWING.set(True)

    def undo() -> None:
        _FOLLOWING.reset(token)
        context.detach(otel_token)

    return undo


def install(provider: Any = None) -> bool:
    """Send OpenTelemetry-API spans started under a workbench span to its tracer.

    Adds the bridge's ``SpanProcessor`` to ``provider`` (default: the global one; a plain SDK
    ``TracerProvider`` is set first when none is). Returns False when that provider is not
    an SDK one (or the SDK is not installed): spans then stay wherever that provider puts them.
    """
    global _installed
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:
        _installed = True  # the API alone: ids propagate, nothing records
        return False
    with _lock:
        if provider is None:
            _installed = True
            provider = trace.get_tracer_provider()
            if isinstance(provider, trace.ProxyTracerProvider):  # nobody set one yet
                trace.set_tracer_provider(TracerProvider())
                provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            return False
        if id(provider) not in _bridged:
            provider.add_span_processor(_processor())
            _bridged.add(id(provider))
    return True


_API: list[Any] = []  # opentelemetry.context, .trace, the SAMPLED flags, the follower class


def _load_api() -> None:
    """Import the API's modules once, install the bridge, and make the follower class."""
    from opentelemetry import context, trace

    if not _installed:
        install()
    sampled = trace.TraceFlags(trace.TraceFlags.SAMPLED)

    class NodeFollower(trace.NonRecordingSpan):
        """The API's current span during a run: the running node's span, read when asked."""

        def __init__(self, outer: Any) -> None:
            super().__init__(trace.INVALID_SPAN_CONTEXT)
            self.outer = outer  # the span that was current when the run started

        def get_span_context(self) -> Any:
            current = CURRENT_SPAN.get()
            if current is None:
                return self.outer.get_span_context()
            span = current[1]
            return trace.SpanContext(
                int(span.trace_id, 16), int(span.span_id, 16), is_remote=False, trace_flags=sampled
            )

    _API[:] = [context, trace, sampled, NodeFollower]


def _api_traceparent() -> str | None:
    from opentelemetry import trace

    ids = trace.get_current_span().get_span_context()
    if not ids.is_valid:
        return None
    return f"00-{ids.trace_id:032x}-{ids.span_id:016x}-{int(ids.trace_flags):02x}"


_PROCESSOR: Any = None


def _processor() -> Any:
    """The one bridge processor of this process (made on first use: the SDK is optional)."""
    global _PROCESSOR
    if _PROCESSOR is None:
        from opentelemetry.sdk.trace import SpanProcessor

        class StoreBridge(SpanProcessor):
            """Hands spans started under a workbench span to the tracer that records it."""

            def __init__(self) -> None:
                self.owners: dict[int, Tracer] = {}  # span id -> tracer, from start to end

            def on_start(self, span: Any, parent_context: Any = None) -> None:
                current = CURRENT_SPAN.get()
                if current is not None and span.context.trace_id == int(current[1].trace_id, 16):
                    self.owners[span.context.span_id] = current[0]

            def on_end(self, span: Any) -> None:
                tracer = self.owners.pop(span.context.span_id, None)
                if tracer is not None:
                    _record(tracer, _convert(span))

        _PROCESSOR = StoreBridge()
    return _PROCESSOR


def _value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _convert(span: Any) -> Span:
    """A workbench ``Span`` from an ended SDK ``ReadableSpan``."""
    attributes = {key: _value(v) for key, v in (span.attributes or {}).items()}
    scope = getattr(span, "instrumentation_scope", None)
    if scope is not None and scope.name:
        attributes["otel.scope.name"] = scope.name
    status = span.status
    return Span(
        name=span.name,
        trace_id=f"{span.context.trace_id:032x}",
        span_id=f"{span.context.span_id:016x}",
        parent_id=f"{span.parent.span_id:016x}" if span.parent is not None else None,
        start_ns=span.start_time or 0,
        kind=span.kind.name,
        attributes=attributes,
        events=[
            SpanEvent(e.name, e.timestamp, {k: _value(v) for k, v in (e.attributes or {}).items()})
            for e in span.events
        ],
        end_ns=span.end_time or 0,
        status=status.status_code.name,
        status_message=status.description,
    )


def _record(tracer: Tracer, span: Span) -> None:
    """Store an ended span as it is (``record``: the trace writer and client), else end it."""
    record = getattr(tracer, "record", None)
    if record is not None:
        record(span)
    else:  # MemoryTracer, or someone else's ``Tracer``: its end time becomes now, microseconds later
        tracer.end_span(span, status=span.status, message=span.status_message)
