"""A small run recorded the way the executor records one (shared by the trace tests)."""

from __future__ import annotations

from workbench.spans import Span, Tracer


def record_run(
    tracer: Tracer, run_id: str = "run-1", nodes: int = 3, *, fail: bool = False, end: bool = True
) -> Span:
    """Record a small run like the executor's: a CHAIN root, node spans, rail checks, decode steps."""
    root = tracer.start_span(
        "invoke_agent trader",
        attributes={
            "workbench.run.id": run_id,
            "workbench.flow.name": "trader",
            "workbench.flow.hash": "abc123",
            "workbench.run.inputs": '{"news": "ACME up", "cash": 1000}',
            "openinference.span.kind": "CHAIN",
        },
    )
    for i in range(nodes):
        node = tracer.start_span(
            f"chat tiny-{i}",
            parent=root,
            attributes={
                "workbench.node.name": f"node{i}",
                "workbench.node.kind": "llm",
                "workbench.node.attempt": 1,
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "tiny",
                "gen_ai.usage.input_tokens": 12,
                "gen_ai.usage.output_tokens": 4,
                "openinference.span.kind": "LLM",
            },
        )
        for step in range(4):
            tracer.add_event(
                node,
                "workbench.decode.step",
                {
                    "workbench.decode.step": step,
                    "workbench.decode.token": f"t{step}",
                    "workbench.decode.token_id": 100 + step,
                    "workbench.decode.logprob": -0.5,
                    "workbench.decode.allowed": 7,
                    "workbench.decode.rails": ["budget"],
                },
            )
        tracer.add_event(
            node,
            "rail check",
            {
                "workbench.rail.name": "restricted",
                "workbench.rail.port": f"node{i}.order",
                "workbench.rail.verdict": "fail" if i == 0 else "pass",
                "workbench.rail.us": 3.5,
            },
        )
        rail = tracer.start_span(
            "guardrail budget",
            parent=node,
            attributes={
                "openinference.span.kind": "GUARDRAIL",
                "workbench.rail.name": "budget",
                "workbench.rail.port": f"node{i}.order",
                "workbench.rail.verdict": "pass",
            },
        )
        tracer.end_span(rail)
        tracer.end_span(
            node,
            status="ERROR" if fail and i == nodes - 1 else "OK",
            message="boom" if fail and i == nodes - 1 else None,
        )
    if end:
        root.attributes["workbench.run.outputs"] = '{"approved": {"qty": 1}}'
        tracer.end_span(root, status="ERROR" if fail else "OK", message="node failed" if fail else None)
    return root
