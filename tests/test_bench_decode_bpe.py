"""The BPE decode-mask benchmark, run tiny: every engine is measured on a trained 32k vocabulary.

Keeps ``benchmarks/bench_decode_bpe.py`` from rotting; it says nothing about speed.
"""

from __future__ import annotations

from tests.bench_loader import load_benchmark


def test_quick_run_measures_every_engine_and_the_rails_part(tmp_path_factory, tmp_path):
    bench = load_benchmark("bench_decode_bpe")
    cache = tmp_path_factory.getbasetemp() / "bpe"  # shared with tests/decoding/test_decode_bpe.py
    out = tmp_path / "report.json"
    report = bench.main(
        ["--vocab", "32000", "--docs", "2", "--repeats", "3", "--cache", str(cache), "--json", str(out)]
    )
    assert out.exists()
    entry = report["vocab"]["32000"]
    assert entry["tokens"] >= 32000
    assert set(entry["schema"]) == {"llguidance (ours)", "xgrammar", "outlines-core"}
    assert set(entry["rails"]) == {"schema+rails", "rails part"}
    for timing in (*entry["schema"].values(), *entry["rails"].values()):
        assert timing["cpu"]["tokens"] > 20 and timing["wall"]["p99_us"] > 0
    assert set(entry["apply"]) == {"1%", "50%", "99%"}
    assert set(report["versions"]) >= {"llguidance", "xgrammar", "outlines_core"}
