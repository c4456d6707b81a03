"""Wires drawn in a 200-node flow in a real browser: patched in place, not the whole wire list again.

The page already shows a wire the user drew; the server checks it and sends back only what
changed (the wire restyled, the one it replaced taken off). The websocket frames the page
receives are counted: a connect or a deletion gets a small patch, while an undo (a full
redraw from the document) gets the whole list, which shows the count sees it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .browser import expect_count
from .chain import chain_flow
from .conftest import Served, save_shot
from .test_browser import browser, context, drag, handle, text_of

__all__ = ["browser", "context"]  # the fixtures, shared with the main browser module

NODES = 200
WIRE_LIST_BYTES = 40_000  # every wire of the chain as the canvas sends it (about 50 KB)
PATCH_BYTES = 5_000  # what one changed wire may take


def zoom_in_on(page: Any, node: str) -> None:
    """Zoom (the mouse wheel, around the pointer) on ``node`` until the handles are full size."""
    box = page.locator(f'.react-flow__node[data-id="{node}"]').bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    viewport = page.locator(".react-flow__viewport")
    for _ in range(60):
        found = re.search(r"scale\(([0-9.]+)\)", viewport.get_attribute("style") or "")
        if found and float(found.group(1)) >= 0.9:
            break
        page.mouse.wheel(0, -200)
        page.wait_for_timeout(50)
    page.wait_for_timeout(300)


def edge(page: Any, wire: str) -> Any:
    """A wire on the canvas (React Flow leaves hidden ones out of the page)."""
    return page.locator(f'.react-flow__edge[data-id="{wire}"]')


def shown(wire: Any) -> None:
    """Wait until ``wire`` is drawn (attached: Playwright counts a straight SVG wire as invisible)."""
    wire.wait_for(state="attached")


def test_a_connect_in_a_big_flow_sends_no_wire_list(context: Any, server: Served, shots: Path) -> None:
    (server.cwd / "big").mkdir(exist_ok=True)
    (server.cwd / "big" / "chain.flow.yaml").write_text(chain_flow(NODES), encoding="utf-8")
    frames: list[int] = []  # sizes of the websocket frames the page received

    page = context.new_page()
    page.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append(len(f))))
    page.goto(server.url + "/")
    page.locator(".react-flow__node").first.wait_for(timeout=30_000)
    box = page.locator(".wb-open-path input")
    box.fill("big/chain.flow.yaml")
    box.press("Enter")
    page.locator(f'.react-flow__node[data-id="n{NODES - 1}"]').wait_for(state="attached", timeout=60_000)
    zoom_in_on(page, "n100")
    message = page.locator(".wb-canvas-message")
    wires = page.locator(".react-flow__edge")
    expect_count(wires, NODES + 1)

    # A new wire into n101.ticket replaces n100's.
    frames.clear()
    drag(page, handle(page, "n99", "text", "source"), handle(page, "n101", "ticket", "target"))
    message.get_by_text("connected n99.text -> n101.ticket").wait_for()
    shown(edge(page, "n99.text -> n101.ticket"))
    edge(page, "n100.text -> n101.ticket").wait_for(state="detached")
    page.wait_for_timeout(300)
    assert frames and max(frames) < PATCH_BYTES, frames
    expect_count(wires, NODES + 1)
    # Coloured as a str wire (the browser drew it plain).
    stroke = edge(page, "n99.text -> n101.ticket").locator("path").first
    assert stroke.evaluate("p => getComputedStyle(p).stroke") == "rgb(37, 99, 235)"
    save_shot(page, shots, "30-big-flow-connected")

    # The replaced wire can be drawn again (the page holds no stale copy of it).
    frames.clear()
    drag(page, handle(page, "n100", "text", "source"), handle(page, "n101", "ticket", "target"))
    message.get_by_text("connected n100.text -> n101.ticket").wait_for()
    edge(page, "n99.text -> n101.ticket").wait_for(state="detached")
    shown(edge(page, "n100.text -> n101.ticket"))
    page.wait_for_timeout(300)
    assert frames and max(frames) < PATCH_BYTES, frames
    expect_count(wires, NODES + 1)

    # A wire deleted in the page leaves the document; nothing big comes back either.
    frames.clear()
    wire = edge(page, "n100.text -> n101.ticket")
    wire_box = wire.bounding_box()
    page.mouse.click(wire_box["x"] + wire_box["width"] / 2, wire_box["y"] + wire_box["height"] / 2)
    page.keyboard.press("Backspace")
    message.get_by_text("removed wire n100.text -> n101.ticket").wait_for()
    wire.wait_for(state="detached")
    page.wait_for_timeout(300)
    assert frames and max(frames) < PATCH_BYTES, frames
    expect_count(wires, NODES)

    # Undo redraws from the document: the whole wire list, so the count above sees one.
    frames.clear()
    page.get_by_role("button", name="Undo").click()
    message.get_by_text("undo: disconnect n100.text -> n101.ticket").wait_for()
    shown(edge(page, "n100.text -> n101.ticket"))
    page.wait_for_timeout(300)
    assert max(frames) > WIRE_LIST_BYTES, frames
    expect_count(wires, NODES + 1)
    assert "chain" in text_of(page, ".wb-flow-info")
    save_shot(page, shots, "31-big-flow-undo")
    page.close()
