"""The token view in a real browser: run the trader flow (tiny model, budget rail enforced
while decoding, little cash) from the app, then read its tokens in the traces view."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .conftest import Served, save_shot
from .test_browser import browser, context, fill_trader_form, open_app, tab, text_of

__all__ = ["browser", "context"]  # the fixtures, shared with the main browser module


def test_token_view_shows_the_budget_rail_narrowing_the_price(
    context: Any, server: Served, shots: Path
) -> None:
    page, _ = open_app(context, server, "trader", "analyst")
    fill_trader_form(page, "3")
    page.locator(".wb-run-button button").click()
    page.locator(".wb-run-status").get_by_text(": ok in").wait_for(timeout=60_000)
    run_id = text_of(page, ".wb-run-status").split()[1].rstrip(":")

    tab(page, "Traces").click()
    page.locator(".wb-runs").get_by_text(run_id).first.click()
    page.locator(".wb-span-details").get_by_text("invoke_flow trader").wait_for()
    tab(page, "Tokens").click()
    info = page.locator(".wb-token-info")
    info.get_by_text("the rails narrowed").wait_for()
    assert "budget: " in text_of(page, ".wb-token-info")
    strip = page.locator(".wb-token-strip .wb-strip")
    tokens = strip.locator("span.t")
    assert tokens.count() > 20
    text = "".join(tokens.all_inner_texts())
    assert '"qty":·' in text and '"price":·' in text  # whitespace drawn, JSON shown as text
    narrowed = strip.locator("span.c1, span.c2, span.c3")
    assert narrowed.count() >= 1
    assert "narrowed by budget" in (narrowed.first.get_attribute("title") or "")
    page.locator(".wb-token-table").get_by_text("budget").first.wait_for()
    page.locator(".wb-token-chart canvas").first.wait_for()
    narrowed.first.hover()
    page.wait_for_timeout(600)
    save_shot(page, shots, "16-token-view")

    host = server.url.removeprefix("http://")
    local = (f"http://{host}/", f"ws://{host}/", f"blob:http://{host}/")
    assert [u for u in context.requests if not u.startswith(local)] == []
    page.close()
