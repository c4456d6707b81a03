"""The decode-rails benchmark, run tiny: every mode is measured and the rails always hold.

Keeps ``benchmarks/bench_decode_rails.py`` from rotting; it says nothing about speed.
"""

from __future__ import annotations

from tests.bench_loader import load_benchmark


def test_quick_run_reports_every_mode_and_rails_hold(tmp_path):
    bench = load_benchmark("bench_decode_rails")
    out = tmp_path / "report.json"
    report = bench.main(["--docs", "2", "--cases", "3", "--max-tokens", "40", "--json", str(out)])
    assert out.exists()
    assert set(report["mask"]) == {"schema", "schema+rails"}
    assert all(m["tokens"] > 10 and m["p99_us"] > 0 for m in report["mask"].values())
    assert set(report["generation"]) == {"unconstrained", "schema", "schema+rails"}
    assert report["generation"]["schema+rails"]["satisfied"] == 1.0
    assert all(g["tokens"] > 0 for g in report["generation"].values())
