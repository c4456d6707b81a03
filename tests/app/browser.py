"""How the browser tests and ``benchmarks/bench_app.py`` start Debian's Chromium.

One list of flags for both, so a benchmark measures the browser the tests drive.
"""

from __future__ import annotations

__all__ = ["CHROMIUM", "CHROMIUM_ARGS"]

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
