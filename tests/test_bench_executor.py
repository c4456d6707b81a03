"""The executor benchmark, run tiny: both engines compute the same value, and the report is whole.

Keeps ``benchmarks/bench_executor.py`` from rotting; it says nothing about speed.
"""

from __future__ import annotations

import pytest

from tests.bench_loader import load_benchmark

pytest.importorskip("langgraph.graph")


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_executor")


def test_quick_run_engines_agree(bench, tmp_path):
    out = tmp_path / "report.json"
    args = ["--quick", "--chain", "30", "--branches", "8", "--repeat", "1", "--warmup", "0"]
    report = bench.main([*args, "--tracers", "memory", "--json", str(out)])
    assert out.exists()
    shapes = {s["shape"]: s for s in report["shapes"]}
    assert set(shapes) == {"chain", "fan", "single"}
    expected = {"chain": 30, "fan": 8, "single": 1}
    for name, res in shapes.items():
        values = {row["engine"]: row["value"] for row in res["rows"]}
        assert values["workbench"] == values["langgraph"] == expected[name], values
        assert values["workbench + MemoryTracer"] == expected[name]
        assert res["ours_per_node_us"] > 0 and res["langgraph_per_node_us"] > 0
    assert shapes["fan"]["nodes"] == 9
    assert isinstance(report["goal_met"], bool) and report["verdict"][-1].startswith("goal ")
