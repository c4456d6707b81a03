"""In a real browser: the rails panel's width and Explain, the header, a cancelled run, a closed tab.

A live ``workbench serve`` offers the example flows and the desk agent with its model at a
scripted OpenAI-compatible server on loopback (its ``buy`` waits for approval). Closing a
tab while a run waits in it (on an approval card, at a breakpoint) must end that run as
cancelled, as ``GET /api/runs`` shows, within the server's unused-session check.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.app.agent_flows import NEWS, desk_served
from tests.runtime.scripted_openai import ScriptedServer, calls, scripted

from .browser import launch_chromium
from .conftest import Served, save_shot
from .test_browser import open_app, tab, text_of

# Bokeh destroys a session 15 s after its last connection went, looked for every 2 s here.
CLOSED_RUN_LIMIT_S = 60.0
GREY = "148, 163, 184"  # the canvas mark of a cancelled node


@pytest.fixture(scope="module")
def model() -> Iterator[ScriptedServer]:
    with scripted([]) as server:
        yield server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, model: ScriptedServer) -> Iterator[Served]:
    with desk_served(tmp_path_factory.mktemp("serve-cancel"), model.url) as server:
        yield server


@pytest.fixture(scope="module")
def context() -> Iterator[Any]:
    with launch_chromium() as browser:
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        ctx.set_default_timeout(15_000)
        yield ctx


def runs(served: Served) -> list[dict[str, Any]]:
    return list(httpx.get(served.url + "/api/runs?limit=20", timeout=10).json())


def running(served: Served, flow: str) -> str:
    """The id of the one run of ``flow`` the server has as running (waits for its start)."""
    for _ in range(100):
        ids = [r["run_id"] for r in runs(served) if r["flow_name"] == flow and r["status"] == "running"]
        if ids:
            assert len(ids) == 1, ids
            return str(ids[0])
        time.sleep(0.1)
    raise AssertionError(f"no running run of {flow}")


def status_of(served: Served, run_id: str) -> str:
    return str(next(r["status"] for r in runs(served) if r["run_id"] == run_id))


def desk_waiting(context: Any, served: Served, model: ScriptedServer) -> Any:
    """A page whose desk agent run waits on an approval card."""
    page, _ = open_app(context, served, "deskbot", "desk")
    page.locator(".wb-open-status").get_by_text("deskbot.flow.yaml").wait_for()
    for _ in range(20):  # the example desk's side tabs may still be in the page for a moment
        tab(page, "Run").click()
        if page.locator(".wb-run-form textarea").is_visible():
            break
        page.wait_for_timeout(500)
    page.locator(".wb-run-form textarea").fill(NEWS)
    cash = page.locator(".wb-run-form input").last
    cash.fill("1000")
    cash.press("Enter")
    with model.lock:
        model.replies = [calls(("buy", {"ticker": "BOLT", "qty": 8, "price": 12.5}), ids=["b1"])]
    page.locator(".wb-run-button button").click()
    page.locator(".wb-approval").get_by_text("(call b1)").wait_for(timeout=30_000)
    return page


def test_rails_panel_uses_its_width_and_explains_a_rail(context: Any, served: Served, shots: Path) -> None:
    page, _ = open_app(context, served, "triage", "classify")
    header = page.locator(".wb-open-status")
    header.get_by_text("example triage (read-only) \u2014 Save writes ./triage.flow.yaml").wait_for()
    tab(page, "Rails").click()
    page.locator(".wb-rail-statuses").get_by_text('summarise.reply.summary = "@"').wait_for()
    editor = page.locator(".wb-rail-editor input")
    assert editor.bounding_box()["width"] > 380  # the side panel is 430 px; it was 110
    assert editor.input_value() == 'not matches(reply.summary, ".*@.*")'
    # A counterexample line that wraps goes on under its own indent, not at the left edge.
    line = page.locator(".wb-rail-statuses div").filter(has_text='summarise.reply.summary = "@"').last
    assert line.evaluate("e => getComputedStyle(e).paddingLeft") != "0px"
    page.locator(".wb-rail-explain button").click()
    explained = page.locator(".wb-rail-explained")
    explained.get_by_text("verdict: enforced").wait_for(timeout=30_000)
    assert "(declare-fun summarise.reply.summary () String)" in text_of(page, ".wb-rail-explained")
    save_shot(page, shots, "40-rails-panel-explained")
    page.close()


def test_a_cancelled_run_reads_cancelled(
    context: Any, served: Served, model: ScriptedServer, shots: Path
) -> None:
    page = desk_waiting(context, served, model)
    run_id = running(served, "deskbot")
    page.get_by_role("button", name="Cancel", exact=True).click()
    page.locator(".wb-run-status").get_by_text("cancelled").wait_for()
    page.locator(".wb-run-progress").get_by_text("nodes: 1 cancelled (of 1)").wait_for()
    node = page.locator('.react-flow__node[data-id="desk"]')
    for _ in range(50):  # the canvas restyles with the last progress batch
        if GREY in node.evaluate("e => getComputedStyle(e).boxShadow"):
            break
        page.wait_for_timeout(100)
    assert GREY in node.evaluate("e => getComputedStyle(e).boxShadow")  # grey, not red
    save_shot(page, shots, "41-run-cancelled")
    assert status_of(served, run_id) == "cancelled"
    tab(page, "Traces").click()  # the runs table says so too, not ERROR
    row = page.locator(".wb-runs .tabulator-row").filter(has_text=run_id[:12]).first
    row.get_by_text("cancelled", exact=True).wait_for()
    save_shot(page, shots, "42-runs-table-cancelled")
    page.close()


def test_closing_the_tab_cancels_the_runs_waiting_in_it(
    context: Any, served: Served, model: ScriptedServer
) -> None:
    waiting = desk_waiting(context, served, model)
    on_card = running(served, "deskbot")
    paused, _ = open_app(context, served, "triage", "classify")
    tab(paused, "Run").click()
    paused.locator(".wb-run-form textarea").fill("Invoice charged twice")
    paused.locator(".wb-breakpoints input").first.click()
    paused.keyboard.type("classify")
    paused.keyboard.press("Enter")
    paused.keyboard.press("Escape")
    paused.locator(".wb-run-button button").click()
    paused.locator(".wb-paused").get_by_text("paused before classify").wait_for()
    at_break = running(served, "triage")
    waiting.close()
    paused.close()
    deadline = time.monotonic() + CLOSED_RUN_LIMIT_S
    while time.monotonic() < deadline:
        if status_of(served, on_card) != "running" and status_of(served, at_break) != "running":
            break
        time.sleep(0.5)
    assert (status_of(served, on_card), status_of(served, at_break)) == ("cancelled", "cancelled")
