"""Approving an agent's tool call in a real browser (Playwright driving Chromium).

A live ``workbench serve`` offers the desk agent with its model pointed at a scripted
OpenAI-compatible server on loopback (``tests.runtime.scripted_openai``); its ``buy`` tool
is marked ``approve: true``. One run is approved from the page; another has an edit that
the runtime refuses (rail ``cap``) and then a denial. Screenshots as in test_browser.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.app.agent_flows import FINAL, NEWS, desk_served
from tests.runtime.scripted_openai import ScriptedServer, answer, calls, scripted

from .browser import launch_chromium
from .conftest import Served, save_shot
from .test_browser import open_app, tab, text_of


@pytest.fixture(scope="module")
def model() -> Iterator[ScriptedServer]:
    with scripted([]) as server:
        yield server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, model: ScriptedServer) -> Iterator[Served]:
    with desk_served(tmp_path_factory.mktemp("serve-agent"), model.url) as server:
        yield server


@pytest.fixture(scope="module")
def page(served: Served) -> Iterator[Any]:
    with launch_chromium() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(15_000)
        context.requests = []
        context.on("request", lambda r: context.requests.append(r.url))
        page, _ = open_app(context, served, "deskbot", "desk")
        # The example flow shown first has a node "desk" too, and its side tabs may still be
        # in the page for a moment: click Run until this flow's form shows.
        page.locator(".wb-open-status").get_by_text("deskbot.flow.yaml").wait_for()
        for _ in range(20):
            tab(page, "Run").click()
            if page.locator(".wb-run-form textarea").is_visible():
                break
            page.wait_for_timeout(500)
        page.locator(".wb-run-form textarea").fill(NEWS)
        cash = page.locator(".wb-run-form input").last
        cash.fill("1000")
        cash.press("Enter")
        yield page
        host = served.url.removeprefix("http://")
        local = (f"http://{host}/", f"ws://{host}/", f"blob:http://{host}/")
        assert [u for u in context.requests if not u.startswith(local)] == []


def start_run(page: Any, model: ScriptedServer, replies: list[dict[str, Any]]) -> None:
    with model.lock:
        model.replies = replies
    page.locator(".wb-run-button button").click()


def test_a_pending_call_is_shown_as_text_and_runs_once_approved(
    page: Any, model: ScriptedServer, shots: Path
) -> None:
    evil = "<img src=x onerror=window.__pwned=1>"
    start_run(
        page,
        model,
        [
            calls(("quote", {"ticker": evil})),  # not a Ticker: refused before anything runs
            calls(("quote", {"ticker": "BOLT"})),
            calls(("buy", {"ticker": "BOLT", "qty": 8, "price": 12.5}), ids=["b1"]),
            answer(FINAL),
        ],
    )
    card = page.locator(".wb-approval")
    card.get_by_text("desk.buy waits for your approval (call b1)").wait_for()
    shown = text_of(page, ".wb-approval-arguments")
    assert shown == '{\n  "ticker": "BOLT",\n  "qty": 8,\n  "price": 12.5\n}'
    calls_text = text_of(page, ".wb-run-calls")
    assert "waiting for approval" in calls_text and '-> ok: {"price": 12.5}' in calls_text
    assert evil in calls_text and "bad_arguments" in calls_text  # the model's markup, as text
    assert page.evaluate("window.__pwned") is None
    glow = page.locator('.react-flow__node[data-id="desk"]').evaluate("e => getComputedStyle(e).boxShadow")
    assert "124, 58, 237" in glow  # purple: the agent waits for a person
    save_shot(page, shots, "20-approval-pending")

    page.locator(".wb-approve button").click()
    page.locator(".wb-run-status").get_by_text(": ok in").wait_for(timeout=30_000)
    assert card.count() == 0
    calls_text = text_of(page, ".wb-run-calls")
    assert 'desk.buy({"ticker": "BOLT", "qty": 8, "price": 12.5})  [b1]\n  -> ok: {"filled": 8}' in calls_text
    assert '"note": "bought 8 BOLT"' in text_of(page, ".wb-run-outputs")
    save_shot(page, shots, "21-approval-approved")


def test_an_edit_refused_by_a_rail_then_a_denial(page: Any, model: ScriptedServer, shots: Path) -> None:
    start_run(
        page,
        model,
        [
            calls(("buy", {"ticker": "BOLT", "qty": 8, "price": 12.5}), ids=["b2"]),
            calls(("buy", {"ticker": "BOLT", "qty": 4, "price": 12.5}), ids=["b3"]),
            answer({"ticker": "BOLT", "qty": 0, "note": "nothing bought: refused, then denied"}),
        ],
    )
    page.locator(".wb-approval").get_by_text("(call b2)").wait_for()
    editor = page.locator(".wb-approval-edit textarea")
    editor.fill('{"ticker": "BOLT", "qty": 100')
    page.locator(".wb-edit button").click()
    page.locator(".wb-approval-problem").get_by_text("not JSON").wait_for()
    editor.fill('{"ticker": "BOLT", "qty": 100, "price": 12.5}')  # 1250 > cash 1000
    page.locator(".wb-edit button").click()
    page.locator(".wb-approval").get_by_text("(call b3)").wait_for()
    # The list may come a moment after the next card (a loaded machine showed it late).
    page.locator(".wb-run-calls").get_by_text("refused by rail cap").wait_for()
    calls_text = text_of(page, ".wb-run-calls")
    assert 'edited to {"ticker": "BOLT", "qty": 100, "price": 12.5}' in calls_text
    assert "-> refused by rail cap: refused, the call did not run: rail 'cap' blocked desk.buy" in calls_text
    page.locator(".wb-approval-reason input").fill("not today")
    save_shot(page, shots, "22-approval-edit-refused")
    page.locator(".wb-deny button").click()
    page.locator(".wb-run-status").get_by_text(": ok in").wait_for(timeout=30_000)
    shown = text_of(page, ".wb-run-calls")
    assert "-> denied: not today" in shown and "denied: denied" not in shown
    # ok (the agent answered), but said plainly and not in green: two calls did not run.
    status = page.locator(".wb-run-status .wb-warn")
    assert status.text_content().endswith(" ms \u2014 1 tool call denied, 1 refused by rails")
    assert text_of(page, ".wb-run-outputs").startswith("outputs (given after 1 tool call denied, 1 refused")
    assert [m["content"] for m in model.tool_messages(-1)] == ["denied: not today"]
    save_shot(page, shots, "23-approval-denied")
