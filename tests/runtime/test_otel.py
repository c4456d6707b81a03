"""OpenTelemetry both ways: API spans made inside tools land in the trace store under the
node's span, and model calls carry the W3C ``traceparent`` of the current span."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.runtime.scripted_openai import answer, calls, scripted
from workbench.api import run
from workbench.flow.io import loads as load_text
from workbench.otel import current_span, traceparent, use_span
from workbench.runtime import Executor
from workbench.spans import MemoryTracer
from workbench.traces import TraceStore

TOOL_FLOW = """
flow: otel_tool
inputs: {x: int}
outputs: {y: int}
nodes:
  step:
    kind: tool
    tool: tests.runtime.otel_tools:traced
    inputs: {x: int}
    outputs: {y: int}
wires:
  - x -> step.x
  - step.y -> y
"""


def test_spans_a_tool_makes_with_the_otel_api_are_stored_under_its_node(tmp_path):
    db = tmp_path / "traces.duckdb"
    result = run(load_text(TOOL_FLOW), {"x": 2}, db=db, trust=True)
    assert result.status == "ok", result.error
    assert result.outputs == {"y": 3}
    with TraceStore(db) as store:
        spans = store.spans(result.run_id).set_index("name")
    node = spans.loc["execute_tool tests.runtime.otel_tools:traced"]
    outer, inner = spans.loc["outer"], spans.loc["inner"]
    assert outer.trace_id == inner.trace_id == node.trace_id
    assert outer.parent_id == node.span_id
    assert inner.parent_id == outer.span_id
    assert inner.kind == "CLIENT"
    attributes = json.loads(outer.attributes)
    assert attributes["test.x"] == 2
    assert attributes["otel.scope.name"] == "tests.otel_tools"
    assert node.start_ns <= outer.start_ns <= inner.start_ns <= inner.end_ns <= outer.end_ns <= node.end_ns


def test_an_agent_tool_calls_spans_and_model_calls_join_the_run():
    flow = load_text(
        """
flow: otel_agent
inputs: {x: int}
outputs: {y: int}
nodes:
  worker:
    kind: agent
    model: default
    prompt: "{{ x }}"
    inputs: {x: int}
    outputs: {y: int}
    tools:
      traced: {tool: "tests.runtime.otel_tools:traced", inputs: {x: int}, outputs: {y: int}}
      failing: {tool: "tests.runtime.otel_tools:failing", outputs: {y: int}}
wires:
  - x -> worker.x
  - worker.y -> y
"""
    )
    tracer = MemoryTracer()
    replies = [calls(("traced", {"x": 4}), ("failing", {})), answer("5")]
    with scripted(replies) as server:
        result = Executor(flow, model=server.model, trust=True, tracer=tracer).run({"x": 4})
    assert result.status == "ok", result.error
    by_name = {s.name: s for s in tracer.spans}
    tool_span = by_name["execute_tool traced"]
    assert by_name["outer"].parent_id == tool_span.span_id
    assert by_name["inner"].parent_id == by_name["outer"].span_id
    doomed = by_name["doomed"]
    assert doomed.parent_id == by_name["execute_tool failing"].span_id
    assert (doomed.status, doomed.status_message) == ("ERROR", "RuntimeError: boom")
    assert [e.name for e in doomed.events] == ["exception"]
    chats = sorted(tracer.by_name("chat "), key=lambda s: s.start_ns)
    assert [h.get("traceparent") for h in server.headers] == [
        f"00-{chat.trace_id}-{chat.span_id}-01" for chat in chats
    ]


def test_an_llm_node_sends_its_span_as_traceparent():
    flow = load_text(
        """
flow: otel_llm
inputs: {q: str}
outputs: {a: str}
nodes:
  ask:
    kind: llm
    model: default
    prompt: "{{ q }}"
    inputs: {q: str}
    outputs: {a: str}
wires:
  - q -> ask.q
  - ask.a -> a
"""
    )
    tracer = MemoryTracer()
    with scripted([answer('"yes"')]) as server:
        result = Executor(flow, model=server.model, tracer=tracer).run({"q": "?"})
    assert result.status == "ok", result.error
    (node,) = [s for s in tracer.spans if s.attributes.get("workbench.node.name") == "ask"]
    assert server.headers[0]["traceparent"] == f"00-{node.trace_id}-{node.span_id}-01"


def test_use_span_sets_and_restores_the_current_span_for_otel_too():
    from opentelemetry import trace

    tracer = MemoryTracer()
    outer = tracer.start_span("outer")
    inner = tracer.start_span("inner", parent=outer)
    assert current_span() is None
    with use_span(tracer, outer):  # outside a run: use_span itself makes OpenTelemetry follow
        with use_span(tracer, inner):
            assert current_span() is inner
            assert traceparent() == f"00-{inner.trace_id}-{inner.span_id}-01"
            assert trace.get_current_span().get_span_context().span_id == int(inner.span_id, 16)
        assert current_span() is outer
        assert trace.get_current_span().get_span_context().span_id == int(outer.span_id, 16)
    assert current_span() is None
    assert not trace.get_current_span().get_span_context().is_valid
    assert traceparent() is None


def test_without_otel_in_the_process_nothing_imports_it(tmp_path):
    # A run of a tool node and an llm node against a real HTTP server: the OpenTelemetry API is
    # never imported (the cost of the bridge without OpenTelemetry is nil), yet traceparent is sent.
    script = textwrap.dedent(
        f"""
        import sys
        from tests.runtime.scripted_openai import answer, scripted
        from workbench.api import run
        from workbench.flow.io import loads
        def echo(a):
            return {{"b": a}}
        flow = loads('''
        flow: plain
        inputs: {{q: str}}
        outputs: {{a: str}}
        nodes:
          ask: {{kind: llm, model: default, prompt: "{{{{ q }}}}", inputs: {{q: str}}, outputs: {{a: str}}}}
          echo: {{kind: tool, tool: "__main__:echo", inputs: {{a: str}}, outputs: {{b: str}}}}
        wires: [q -> ask.q, ask.a -> echo.a, echo.b -> a]
        ''')
        with scripted([answer('"yes"')]) as server:
            db = {str(tmp_path / "t.duckdb")!r}
            result = run(flow, {{"q": "?"}}, db=db, model=server.model, trust=True)
        assert result.status == "ok", result.error
        assert server.headers[0]["traceparent"].startswith("00-"), server.headers
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry.trace")))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
