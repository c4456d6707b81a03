"""The sync-tool benchmark, run tiny: both placements compute the chain, and the report is whole.

Keeps ``benchmarks/bench_tools.py`` from rotting; it says nothing about speed.
"""

from __future__ import annotations

from tests.bench_loader import load_benchmark


def test_quick_run_reports_both_placements(tmp_path):
    bench = load_benchmark("bench_tools")
    out = tmp_path / "report.json"
    args = ["--runs", "2", "--sleep", "0.01", "--nodes", "5", "--rounds", "1", "--json", str(out)]
    report = bench.main(args)
    assert out.exists()
    sleepers, overhead = report["concurrent_sleepers"], report["per_call_us"]
    assert sleepers["runs"] == 2 and sleepers["wall_s"] >= 0.01
    assert overhead["nodes"] == 5
    assert isinstance(overhead["default"], float) and isinstance(overhead["inline: true"], float)
