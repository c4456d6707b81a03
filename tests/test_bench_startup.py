"""The start-up benchmark, run once: it finds the run's load and chat spans and prints its table.

Keeps ``benchmarks/bench_startup.py`` from rotting; it says nothing about speed.
"""

from __future__ import annotations

import json

from tests.bench_loader import load_benchmark


def test_one_sample_reads_the_spans_back(tmp_path, capsys):
    bench = load_benchmark("bench_startup")
    out = tmp_path / "report.json"
    report = bench.main(["--repeat", "1", "--warmup", "0", "--json", str(out)])
    assert json.loads(out.read_text())["verdict"] == report["verdict"]
    (sample,) = report["trees"]["ours"]["samples"]
    assert sample["wall"] > sample["run"] > sample["load"] > 0
    assert sample["1st token"] > sample["load"]  # the first token comes after the load span
    assert 0 < sample["chat->1st"] < sample["chat"] < sample["run"] - sample["load"]
    table = capsys.readouterr().out
    assert "| ours |" in table and report["verdict"][-1].startswith(("goal met", "goal missed"))
    # with a peer the table gains the ratios (the same tree twice here: about 1x)
    lines = bench.report({"peer": report["trees"]["ours"], **report["trees"]}, 0.0, 0.0, 1)
    assert any(line.startswith("ratio peer/ours, median wall: 1.00x") for line in lines)


def test_the_what_if_launcher_runs_the_example_without_pandas_triton_or_teardown():
    bench = load_benchmark("bench_startup")
    case = {"all three": (bench.HERE, bench.WHAT_IF["ours, all three"])}
    (sample,) = bench.measure(case, repeat=1, warmup=0)["all three"]["samples"]
    assert sample["wall"] > sample["run"] > sample["load"] > 0 and sample["chat"] > 0
