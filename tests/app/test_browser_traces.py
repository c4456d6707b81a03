"""The traces tab in a real browser, on a server of its own over a trace file of real runs:
the runs table's filters, the timeline named by node, decoded span details, node latency."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .browser import expect_count
from .conftest import Served, save_shot, start_server, stop_server
from .test_browser import browser, context, open_app, tab, text_of
from .trace_runs import record_runs

__all__ = ["browser", "context"]  # the fixtures, shared with the main browser module

TRIAGE_RUNS = 3


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, dict[str, list[str]]]]:
    cwd = tmp_path_factory.mktemp("traces-serve")
    ids = record_runs(cwd / "traces.duckdb", TRIAGE_RUNS)
    served = start_server(cwd, cwd / "traces.duckdb")
    yield served, ids
    stop_server(served)


def rows(page: Any) -> Any:
    return page.locator(".wb-runs .tabulator-row")


def wait_rows(page: Any, count: int) -> None:
    """Wait until the runs table draws ``count`` rows (its info line may be drawn first)."""
    expect_count(rows(page), count)


def test_runs_filters_timeline_and_latency(
    context: Any, traced: tuple[Served, dict[str, list[str]]], shots: Path
) -> None:
    server, ids = traced
    page, _ = open_app(context, server)
    tab(page, "Traces").click()
    shown = page.locator(".wb-traces-info")
    shown.get_by_text(f"{TRIAGE_RUNS + 2} runs", exact=True).wait_for()
    wait_rows(page, TRIAGE_RUNS + 2)

    page.locator(".wb-runs-status select").select_option("cancelled")
    shown.get_by_text("1 run (filtered)").wait_for()
    wait_rows(page, 1)
    assert (
        ids["cancelled"][0] in rows(page).first.inner_text() and "cancelled" in rows(page).first.inner_text()
    )
    save_shot(page, shots, "40-traces-cancelled")

    page.locator(".wb-runs-status select").select_option("any")
    shown.get_by_text(f"{TRIAGE_RUNS + 2} runs", exact=True).wait_for()
    box = page.locator(".wb-runs-text input")
    box.fill(ids["triage"][1][:10])  # a run id's first characters, as typed
    shown.get_by_text("1 run (filtered)").wait_for()
    wait_rows(page, 1)
    assert ids["triage"][1] in rows(page).first.inner_text()
    box.fill("")
    shown.get_by_text(f"{TRIAGE_RUNS + 2} runs", exact=True).wait_for()
    page.locator(".wb-runs-flow select").select_option("triage")
    shown.get_by_text(f"{TRIAGE_RUNS} runs (filtered)").wait_for()
    wait_rows(page, TRIAGE_RUNS)
    assert all("triage" in t for t in rows(page).all_inner_texts())

    rows(page).get_by_text(ids["triage"][0]).click()
    details = page.locator(".wb-span-details")
    details.get_by_text("invoke_flow triage").wait_for()
    attributes = json.loads(text_of(page, ".wb-span-details"))["attributes"]
    assert attributes["workbench.run.inputs"]["tier"] == "enterprise"  # an object, not a string
    page.wait_for_timeout(500)
    save_shot(page, shots, "41-traces-timeline")

    tab(page, "Latency").click()
    page.locator(".wb-latency canvas").first.wait_for()
    page.locator(".wb-latency-table").get_by_text("summarise").wait_for()
    page.wait_for_timeout(500)
    save_shot(page, shots, "42-traces-latency")

    host = server.url.removeprefix("http://")
    local = (f"http://{host}/", f"ws://{host}/", f"blob:http://{host}/")
    assert [u for u in context.requests if not u.startswith(local)] == []
    page.close()
