"""Run progress on the canvas in a real browser: a big flow's tint shows, a sub-flow counts once.

A live ``workbench serve`` offers a chain of ``RING_LIMIT + 1`` tool nodes (marked by a
tint, not a ring) and triage with two nodes grouped into a sub-flow. Each is run from the
run view; the test reads the computed style of the nodes and the count line, and writes
screenshots as in test_browser.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from workbench.app.canvas import RING_LIMIT
from workbench.app.document import FlowDocument
from workbench.examples import flow_path
from workbench.flow import dumps, load

from .browser import launch_chromium
from .chain import chain_flow
from .conftest import Served, save_shot, start_server, stop_server
from .test_browser import open_app, tab, text_of

CHAIN = RING_LIMIT + 1


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    cwd = tmp_path_factory.mktemp("serve-marks")
    (cwd / "bigchain.flow.yaml").write_text(chain_flow(CHAIN, "out"), encoding="utf-8")
    doc = FlowDocument(load(flow_path("triage")))
    doc.group(["redact", "classify"])
    text = dumps(doc.flow).replace("flow: triage\n", "flow: grouped\n", 1)
    (cwd / "grouped.flow.yaml").write_text(text, encoding="utf-8")
    server = start_server(cwd, cwd / "traces.duckdb")
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def context(served: Served) -> Iterator[Any]:
    with launch_chromium() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.set_default_timeout(30_000)
        yield context


def run_form(page: Any) -> Any:
    """The run tab's first text input (the flow shown before may linger a moment)."""
    form = page.locator(".wb-run-form textarea").first
    for _ in range(30):
        tab(page, "Run").click()
        if form.is_visible():
            break
        page.wait_for_timeout(500)
    return form


def mark_of(page: Any, node: str) -> dict[str, str]:
    """The computed ring and tint of a canvas node."""
    return page.locator(f'.react-flow__node[data-id="{node}"]').evaluate(
        "e => ({ring: getComputedStyle(e).boxShadow, tint: getComputedStyle(e).backgroundImage})"
    )


def test_a_big_flow_is_tinted_when_its_run_ends(context: Any, served: Served, shots: Path) -> None:
    page, _ = open_app(context, served, "bigchain", f"n{CHAIN - 1}")
    run_form(page).fill("mail me at a@b.example")
    page.locator(".wb-run-button button").click()
    page.locator(".wb-run-status").get_by_text(": ok in").wait_for(timeout=120_000)
    last = f"n{CHAIN - 1}"
    # Green at 40 %, over the node's own colour (set inline on the node), once the page has it.
    for _ in range(40):
        if "gradient" in mark_of(page, last)["tint"]:
            break
        page.wait_for_timeout(250)
    assert mark_of(page, last)["tint"] == "linear-gradient(rgba(22, 163, 74, 0.4), rgba(22, 163, 74, 0.4))"
    assert f"nodes: {CHAIN} done (of {CHAIN})" in text_of(page, ".wb-run-progress")
    save_shot(page, shots, "30-big-run-tinted")
    page.close()


def test_a_sub_flow_run_counts_and_marks_the_sub_flow_node(context: Any, served: Served, shots: Path) -> None:
    page, _ = open_app(context, served, "grouped", "group1")
    run_form(page).fill("Invoice charged twice, urgent! mail a@b.example")
    page.locator(".wb-run-form select").select_option("enterprise")
    page.locator(".wb-run-button button").click()
    page.locator(".wb-run-status").get_by_text(": ok in").wait_for(timeout=30_000)
    # The inner nodes (redact, classify) ran, but the canvas has three nodes: so has the count.
    page.locator(".wb-run-progress").get_by_text("nodes: 3 done (of 3)").wait_for()
    for node in ("group1", "prioritise", "summarise"):
        assert "22, 163, 74" in mark_of(page, node)["ring"], node
    save_shot(page, shots, "31-sub-flow-run-done")
    page.close()
