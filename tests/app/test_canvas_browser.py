"""The canvas reads well in a real browser: titles at fit, a long flow as a grid, the
selected node highlighted, an agent's inspector with its tools."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .chain import chain_flow
from .conftest import Served, save_shot
from .test_browser import browser, context, open_app, text_of

__all__ = ["browser", "context"]  # the fixtures this module uses from test_browser

# Text px on screen of each node title: its font size times the canvas zoom.
TITLES_JS = """es => es.map(e => {
  const r = e.getBoundingClientRect();
  return [e.textContent, r.height, parseFloat(getComputedStyle(e).fontSize) * r.height / e.offsetHeight];
})"""


def _zoom(page: Any) -> float:
    matrix = page.locator(".react-flow__viewport").evaluate("e => getComputedStyle(e).transform")
    return float(matrix.removeprefix("matrix(").split(",")[0])


def test_titles_read_at_fit_and_agent_tools_show(context: Any, server: Served, shots: Path) -> None:
    page, _ = open_app(context, server, "triage", "classify")
    page.wait_for_timeout(500)  # the canvas fits its view once the nodes are measured
    titles = page.locator(".react-flow__node .rf-node-label").evaluate_all(TITLES_JS)
    assert len(titles) == 6
    for text, height, px in titles:  # a 1400-pixel window, the canvas fitted to the flow
        assert height >= 10 and px >= 10, (text, height, px)
    save_shot(page, shots, "35-triage-at-fit")

    page.locator(".wb-picker select").select_option("desk")
    node = page.locator('.react-flow__node[data-id="desk"]')
    node.wait_for()
    node.click()
    details = page.locator(".wb-node-details")
    details.get_by_text("buy · python function workbench.examples.desk:buy").wait_for()
    tools = text_of(page, ".wb-node-details")
    assert "quote · python function workbench.examples.desk:quote" in tools
    assert "approve: yes, a human decides each call" in tools and "approve: no" in tools
    assert page.locator(".wb-field-max_steps input").input_value() == "8"
    # The selected node is highlighted (React Flow's .selected class, our border).
    assert "29, 78, 216" in node.evaluate("e => getComputedStyle(e).borderColor")
    save_shot(page, shots, "36-agent-inspector")
    page.close()


def test_a_200_node_chain_opens_as_a_grid(context: Any, server: Served, shots: Path) -> None:
    (server.cwd / "chain200.flow.yaml").write_text(chain_flow(200), encoding="utf-8")
    page, _ = open_app(context, server)
    box = page.locator(".wb-open-path input")
    box.fill("chain200.flow.yaml")
    box.press("Enter")
    page.locator('.react-flow__node[data-id="n199"]').wait_for(state="attached", timeout=60_000)
    page.wait_for_timeout(800)
    # One row of 202 nodes was fitted at the least zoom (0.1); a grid fits at twice that.
    assert _zoom(page) >= 0.2
    first = page.locator('.react-flow__node[data-id="n0"]').bounding_box()
    last = page.locator('.react-flow__node[data-id="n199"]').bounding_box()
    assert last["y"] > first["y"] + 10 * first["height"]  # wrapped into bands, top to bottom
    save_shot(page, shots, "37-chain200-at-fit")
    for _ in range(4):
        page.locator(".react-flow__controls-zoomin").click()
        page.wait_for_timeout(250)
    save_shot(page, shots, "38-chain200-zoomed")
    page.close()


def test_a_message_never_moves_the_canvas(context: Any, server: Served, shots: Path) -> None:
    page, _ = open_app(context, server, "triage", "classify")
    page.wait_for_timeout(500)  # the canvas fits its view once the nodes are measured
    node = page.locator('.react-flow__node[data-id="classify"]')
    before = node.bounding_box()
    page.get_by_role("button", name="Delete").click()  # nothing selected: a message appears
    page.locator(".wb-canvas-message").get_by_text("select a node to delete first").wait_for()
    page.wait_for_timeout(300)
    after = node.bounding_box()
    assert abs(after["y"] - before["y"]) < 1 and abs(after["x"] - before["x"]) < 1, (before, after)
    # A refusal too long for one line (the reason) lies over the canvas: still no move.
    page.locator('.react-flow__node[data-id="summarise"]').click()
    page.get_by_role("button", name="Group").click()
    page.locator(".wb-canvas-message").get_by_text("group nodes without rails").wait_for()
    page.wait_for_timeout(300)
    assert node.bounding_box()["y"] == after["y"]
    save_shot(page, shots, "37-message-canvas-still")
    page.close()


def test_a_new_node_shows_in_free_space(context: Any, server: Served, shots: Path) -> None:
    page, _ = open_app(context, server, "triage", "classify")
    page.wait_for_timeout(500)  # the canvas fits its view once the nodes are measured
    page.get_by_role("button", name="+ agent").click()
    added = page.locator('.react-flow__node[data-id="agent1"]')
    added.wait_for()
    page.wait_for_timeout(500)
    box, canvas = added.bounding_box(), page.get_by_test_id("rf__wrapper").bounding_box()
    for a, size in (("x", "width"), ("y", "height")):  # inside the canvas
        assert canvas[a] <= box[a] and box[a] + box[size] <= canvas[a] + canvas[size], (box, canvas)
    for other in page.locator(".react-flow__node").all():  # on no other node
        b = other.bounding_box()
        if other.get_attribute("data-id") != "agent1":
            apart = b["x"] + b["width"] <= box["x"] or box["x"] + box["width"] <= b["x"]
            assert apart or b["y"] + b["height"] <= box["y"] or box["y"] + box["height"] <= b["y"], b
    save_shot(page, shots, "38-added-agent-in-view")
    page.close()
