"""Suite-wide rules. In CI (``CI`` set) a skipped test fails the run: nothing skips silently,
and hypothesis runs derandomized so a verdict can be reproduced.

Tests skip themselves when an optional part is missing (no triton, no transformers...).
On a developer's partial install that is a convenience; in CI every extra is installed,
so a skip there means the set-up is broken and must be loud.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

# CI explores a fixed sequence of examples (reproducible verdicts); local runs keep exploring.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not os.environ.get("CI"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped:
        where = ", ".join(sorted({r.nodeid or str(r.location) for r in skipped})[:10])
        print(f"\nCI: {len(skipped)} test(s) skipped, which CI treats as a failure: {where}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
