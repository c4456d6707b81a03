"""Two runs compared in a real browser: every span row shows (the table is as tall as its
rows), and the rule for a marked duration is said above it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import workbench
from workbench.flow import loads

from .chain import chain_flow
from .conftest import Served, save_shot, start_server, stop_server
from .test_browser import browser, context, tab

__all__ = ["browser", "context"]  # the fixtures, shared with the main browser module

NODES = 12  # 13 spans a run: more rows than the old fixed height showed


@pytest.fixture(scope="module")
def chain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    cwd = tmp_path_factory.mktemp("compare-cwd")
    db = cwd / "traces.duckdb"
    flow = loads(chain_flow(NODES, "out"))
    for text in ("mail me at a@b.example", "call +1 555 123 4567"):
        assert workbench.run(flow, {"text": text}, db=db).status == "ok"
    served = start_server(cwd, db)  # written before: the server owns the trace file
    yield served
    stop_server(served)


def test_compare_shows_every_span_row(context: Any, chain_server: Served, shots: Path) -> None:
    page = context.new_page()
    page.goto(chain_server.url + "/")
    page.locator(".react-flow__node").first.wait_for(timeout=30_000)
    tab(page, "Traces").click()
    tab(page, "Compare").click()
    page.locator(".wb-compare-run button").click()
    info = page.locator(".wb-compare-info")
    info.get_by_text("duration off by at least 1 ms and 20%").wait_for()
    table = page.locator(".wb-compare-spans")
    rows = table.locator(".tabulator-row")
    last = rows.filter(has_text=f"redact #{NODES}")  # the last span of a run
    page.wait_for_timeout(300)
    box, frame = last.bounding_box(), table.locator(".tabulator-tableholder").bounding_box()
    assert box["y"] + box["height"] <= frame["y"] + frame["height"] + 1, (box, frame)  # not cut off
    last.scroll_into_view_if_needed()  # the page scrolls to the table's end
    save_shot(page, shots, "40-compare-every-span")
    page.close()
