"""The agent-loop benchmark, run tiny: every framework answers the script, and the report is whole.

Keeps ``benchmarks/bench_agent.py`` from rotting; it says nothing about speed. The peers
(LangChain, the OpenAI Agents SDK, PydanticAI) are in the ``bench`` extra and the locks, so
a missing one fails this test rather than skipping it.
"""

from __future__ import annotations

import pytest

from tests.bench_loader import load_benchmark

STEPS = 2


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    bench = load_benchmark("bench_agent")
    out = tmp_path_factory.mktemp("bench_agent") / "report.json"
    report = bench.main(["--steps", str(STEPS), "--repeat", "1", "--warmup", "0", "--json", str(out)])
    assert out.exists()
    return report


def test_every_framework_runs_the_script_to_its_typed_answer(report):
    rows = report["rows"]
    cases = {(r["engine"], r["tool"], r["traced"]) for r in rows}
    engines = ("workbench", "langchain", "openai-agents", "pydantic-ai")
    assert cases == {(e, t, on) for e in engines for t in ("sync", "async") for on in (False, True)}
    for row in rows:
        assert row["value"] == STEPS, row  # each tool result reached the model, the answer parsed
        assert row["runs"] == 4 and 0 < row["step_median_us"] <= row["step_p90_us"], row
    assert report["turns"] == STEPS + 1


def test_traced_cases_record_something_and_untraced_ones_nothing(report):
    for row in report["rows"]:
        if row["traced"]:
            # workbench: invoke_agent, a chat span per turn, an execute_tool span per call (and the run)
            floor = 2 * STEPS + 2 if row["engine"] == "workbench" else 1
            assert row["recorded_per_run"] >= floor, row
            assert row["flush_per_run_us"] > 0
        else:
            assert row["recorded_per_run"] == 0


def test_ratios_against_the_fastest_peer_and_a_verdict(report):
    comps = {(c["tool"], c["traced"]): c for c in report["comparisons"]}
    assert set(comps) == {(t, on) for t in ("sync", "async") for on in (False, True)}
    for c in comps.values():
        assert c["fastest_peer"] in c["ratios"]
        assert c["ratio"] == pytest.approx(min(c["ratios"].values()))
    assert isinstance(report["goal_met"], bool) and report["verdict"][-1].startswith("goal ")
