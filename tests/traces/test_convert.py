"""Span -> Arrow conversion: converting in cache-sized chunks must not change a batch."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.spans import Span, SpanEvent
from workbench.traces import convert
from workbench.traces.convert import Batch, ForeignSpans, Origin, build_batch
from workbench.traces.redact import RegexRedactor

LOCAL = Origin.from_resource({"service.name": "local", "process.pid": 1, "host.name": "a"})
OTHERS = [Origin.from_resource({"service.name": f"other{i}", "process.pid": 2 + i}) for i in range(2)]


@st.composite
def spans(draw: st.DrawFn) -> Span:
    """A span shaped like the runtime's: a run root, a node, an llm call or a guardrail."""
    role = draw(st.sampled_from(["root", "node", "llm", "guardrail"]))
    run = draw(st.integers(0, 3))
    attrs: dict[str, object] = {}
    events: list[SpanEvent] = []
    if role == "root":
        attrs = {"workbench.run.id": f"run{run}", "workbench.flow.name": "f", "workbench.run.inputs": "{}"}
    else:
        node = draw(st.sampled_from(["a", "b", 5]))
        attrs = {"workbench.node.name": node, "note": draw(st.text(max_size=12))}
    if role == "llm":
        attrs |= {"gen_ai.request.model": "m", "gen_ai.usage.output_tokens": draw(st.integers(0, 2**70))}
        step = {"workbench.decode.token": "x", "workbench.decode.rails": ["r"]}
        events += [SpanEvent("workbench.decode.step", 7, step) for _ in range(draw(st.integers(0, 3)))]
    if role == "guardrail":
        attrs |= {"openinference.span.kind": "GUARDRAIL", "workbench.rail.name": "cap"}
        attrs["workbench.rail.us"] = 3.0
    if draw(st.booleans()):
        events.append(SpanEvent("rail", 5, {"workbench.rail.name": "r", "workbench.rail.verdict": "fail"}))
    if draw(st.booleans()):
        events.append(SpanEvent("retry", 6, {"error": "mail bob@example.com"}))
    return Span(
        name=role,
        trace_id=f"{run:032x}",
        span_id=f"{draw(st.integers(0, 2**64 - 1)):016x}",
        parent_id=None if role == "root" else f"{run:016x}",
        start_ns=1,
        kind="INTERNAL",
        attributes=attrs,
        events=events,
        end_ns=draw(st.integers(2, 10**12)),
        status=draw(st.sampled_from(["OK", "ERROR"])),
        status_message=draw(st.none() | st.just("call 555-123-4567")),
    )


items = st.lists(
    spans() | st.builds(ForeignSpans, st.lists(spans(), max_size=4), st.sampled_from(OTHERS)),
    max_size=25,
)


def _same(a: Batch, b: Batch) -> None:
    assert a.tables.keys() == b.tables.keys()
    for name in a.tables:  # rows of a table are a set: guardrail and event rails may interleave
        assert a.tables[name].schema == b.tables[name].schema, name
        assert sorted(map(repr, a.tables[name].to_pylist())) == sorted(map(repr, b.tables[name].to_pylist()))
    assert a.spans == b.spans and a.span_constants == b.span_constants
    assert (a.run_starts is None) == (b.run_starts is None)


@settings(max_examples=60, deadline=None)
@given(items, st.booleans())
def test_chunked_conversion_equals_whole(batch: list[object], redact: bool) -> None:
    redactor = RegexRedactor() if redact else None
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(convert, "_CHUNK", 10**9)
        whole = build_batch(batch, LOCAL, redactor)
        mp.setattr(convert, "_CHUNK", 3)
        chunked = build_batch(batch, LOCAL, redactor)
    _same(whole, chunked)


def test_a_batch_from_one_foreign_origin_keeps_that_origin_on_its_runs() -> None:
    attrs = {"workbench.run.id": "r1"}
    root = Span("root", "t" * 32, "s" * 16, None, 1, attributes=attrs, end_ns=2, status="OK")
    batch = build_batch([ForeignSpans([root], OTHERS[0])], LOCAL, None)
    assert batch.span_constants == {"service": "other0", "resource_id": OTHERS[0].resource_id}
    run = batch.tables["runs"].to_pylist()[0]
    assert (run["service"], run["pid"]) == ("other0", 2)
