"""The tool-call validity benchmark, run tiny: every mode is measured and constrained calls are all valid.

Keeps ``benchmarks/bench_tool_calls.py`` from rotting; it says nothing about speed.
"""

from __future__ import annotations

from tests.bench_loader import load_benchmark


def test_quick_run_reports_every_mode_and_constrained_calls_are_valid(tmp_path):
    bench = load_benchmark("bench_tool_calls")
    out = tmp_path / "report.json"
    report = bench.main(["--cases", "3", "--max-tokens", "160", "--json", str(out)])
    assert out.exists()
    modes = report["modes"]
    assert set(modes) == {"unconstrained", "auto", "required"}
    assert modes["required"]["valid"] == 1.0
    assert modes["auto"]["valid_of_written"] in (None, 1.0)
    assert all(m["tokens"] > 0 for m in modes.values())
