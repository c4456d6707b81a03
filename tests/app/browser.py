"""How the browser tests and ``benchmarks/bench_app.py`` start Debian's Chromium.

One list of flags for both, so a benchmark measures the browser the tests drive.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "expect_count", "launch_chromium"]

CHROMIUM = "/usr/bin/chromium"
# Headless, no sandbox (containers have no user namespaces), and nothing that calls home:
# the tests assert that every request of the page goes to the local server.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def launch_chromium() -> Iterator[Any]:
    """Debian's Chromium under Playwright, for a test module's fixture; skips (with the reason)
    where the browser or Playwright is missing, which CI turns into a failure.

    Use it from module-scoped fixtures, not session ones: while Playwright's sync API is open
    its event loop counts as running in this thread, and other tests' asyncio.run() fail.
    """
    import pytest  # here, not above: benchmarks import this module without pytest

    if not Path(CHROMIUM).exists():
        pytest.skip(
            f"no browser: {CHROMIUM} is missing (apt-get install chromium); the browser tests need it"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def expect_count(locator: Any, count: int, timeout_ms: int = 15_000) -> None:
    """Wait until ``locator`` matches ``count`` elements (the page may draw them a frame later
    than the text a test waited for), failing with what it saw."""
    from playwright.sync_api import expect

    expect(locator).to_have_count(count, timeout=timeout_ms)
