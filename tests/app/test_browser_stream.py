"""Live output in a real browser: run the trader flow (tiny model) from the app and watch the
analyst's answer grow under *live output*, then stay as the node's answer.

The tiny model writes the trader's answer (some 30 tokens) in about a third of a second
here, so this module's own server sends progress every 10 ms (``WORKBENCH_FLUSH_S``)
instead of the default 200 ms, and the page itself records each text the live pane shows
(a 5 ms sampler in the page), so the test sees every batch however slowly it polls.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from .conftest import Served, save_shot, start_server, stop_server
from .test_browser import browser, context, fill_trader_form, open_app, text_of

__all__ = ["browser", "context"]  # the fixtures, shared with the main browser module

HEAD = "live output:\nanalyst \u00b7 answer\n"

# Finds the live pane's host through Panel's shadow roots once, then records every distinct
# text it shows (and the run's progress line at that moment) until the test reads them.
SAMPLER = """() => {
  const find = (root, sel) => {
    const hit = root.querySelector(sel);
    if (hit) return hit;
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot) { const inner = find(el.shadowRoot, sel); if (inner) return inner; }
    }
    return null;
  };
  const text = (host) => {
    const t = host && host.shadowRoot && host.shadowRoot.querySelector('.wb-text');
    return t ? t.textContent : '';
  };
  let live = null, progress = null;
  window.__liveTexts = [];
  window.__liveSampler = setInterval(() => {
    if (!live || !live.isConnected) live = find(document, '.wb-run-live');
    if (!progress || !progress.isConnected) progress = find(document, '.wb-run-progress');
    const now = text(live), seen = window.__liveTexts;
    if (now && (!seen.length || seen[seen.length - 1].text !== now)) {
      seen.push({text: now, progress: text(progress)});
    }
  }, 2);
}"""


@pytest.fixture(scope="module")
def fast_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    cwd = tmp_path_factory.mktemp("serve-stream")
    with mock.patch.dict(os.environ, {"WORKBENCH_FLUSH_S": "0.01"}):
        served = start_server(cwd, cwd / "traces.duckdb")
    yield served
    stop_server(served)


def test_the_analysts_answer_streams_into_the_run_view(
    context: Any, fast_server: Served, shots: Path
) -> None:
    page, _ = open_app(context, fast_server, "trader", "analyst")
    fill_trader_form(page, "3")
    page.evaluate(SAMPLER)
    page.locator(".wb-run-button button").click()
    page.locator(".wb-run-status").get_by_text(": ok in").wait_for(timeout=60_000)
    page.wait_for_timeout(100)
    samples = page.evaluate("clearInterval(window.__liveSampler) || window.__liveTexts")

    final = text_of(page, ".wb-run-live")
    assert final.startswith(HEAD)
    answer = final.removeprefix(HEAD)
    texts = [s["text"].removeprefix(HEAD) for s in samples]
    assert texts[-1] == answer
    # Shown in steps, each one the last plus more, while the analyst was still running: at
    # least one part of the answer reached the page before the whole (on a loaded machine
    # the page may draw only one of the batches before the answer is complete).
    partial = [s for s in samples if 0 < len(s["text"].removeprefix(HEAD)) < len(answer)]
    assert partial, f"the answer did not grow on the page: {texts}"
    assert all("running" in s["progress"] for s in partial)
    assert all(b.startswith(a) for a, b in itertools.pairwise(texts))

    # The analyst's output is its answer parsed, and the budget rail (enforced while decoding)
    # leaves the risk check nothing to cut: the flow's output is exactly the streamed answer.
    outputs = json.loads(text_of(page, ".wb-run-outputs").removeprefix("outputs:\n"))
    assert json.loads(answer) == outputs["approved"]
    page.locator(".wb-run-live").scroll_into_view_if_needed()
    save_shot(page, shots, "17-live-output")

    host = fast_server.url.removeprefix("http://")
    local = (f"http://{host}/", f"ws://{host}/", f"blob:http://{host}/")
    assert [u for u in context.requests if not u.startswith(local)] == []
    page.close()
