"""The generated flow of benchmarks/bench_check.py is a valid flow that ``workbench check`` accepts."""

from __future__ import annotations

from tests.bench_loader import load_benchmark
from workbench.flow import loads
from workbench.flow.verify import verify


def test_generated_flow_has_the_requested_size_and_verifies():
    bench = load_benchmark("bench_check")
    full = loads(bench.flow_text(50, 100))
    assert len(full.nodes) == 50 and len(full.rails) == 100
    small = loads(bench.flow_text(5, 10))
    assert len(small.nodes) == 5 and len(small.rails) == 10
    report = verify(small, timeout_ms=500)
    assert report.errors == [] and len(report.rails) == 10
    statuses = {r.name: r.status for r in report.rails}
    assert statuses["r0"] == "enforced"  # nothing upstream bounds the analyst's proposal
    assert "proved" in statuses.values()  # a template met again after a node with guarantees
