"""Suite-wide rules. In CI (``CI`` set) a skipped test fails the run: nothing skips silently,
and hypothesis runs derandomized so a verdict can be reproduced.

Tests skip themselves when an optional part is missing (no triton, no transformers...).
On a developer's partial install that is a convenience; in CI every extra is installed,
so a skip there means the set-up is broken and must be loud.

What a machine cannot run by its nature is not a skip: tests marked ``cuda`` (they need a
CUDA device) are deselected where there is none, and tests marked ``cpu_only`` (they check
what happens without one) where there is one. The run prints how many and why, so a GPU
machine and a CPU machine both pass ``CI=1 make test`` with every applicable test run.
"""

from __future__ import annotations

import functools
import os

import pytest
from hypothesis import settings

# CI explores a fixed sequence of examples (reproducible verdicts); local runs keep exploring.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@functools.cache
def _has_cuda() -> bool:
    if os.environ.get("WORKBENCH_TEST_CUDA_DEVICE") == "cpu":  # run the GPU tests' code on the CPU
        return True
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


_DESELECTED: dict[str, int] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    for item in items:
        wrong = (item.get_closest_marker("cuda") and not _has_cuda()) or (
            item.get_closest_marker("cpu_only") and _has_cuda()
        )
        (drop if wrong else keep).append(item)
    if drop:
        why = "need a CUDA device (none here)" if not _has_cuda() else "check the CPU-only path (CUDA here)"
        _DESELECTED[why] = len(drop)
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """pytest-xdist: workers collect, so the controller learns their deselections here."""
    for why, count in getattr(node, "workeroutput", {}).get("workbench_deselected", {}).items():
        _DESELECTED[why] = max(count, _DESELECTED.get(why, 0))  # every worker collects every test


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for why, count in _DESELECTED.items():
        terminalreporter.write_line(f"device: {count} test(s) deselected: they {why}")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand the deselections to the controller
        workeroutput["workbench_deselected"] = dict(_DESELECTED)
    if not os.environ.get("CI"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped:
        where = ", ".join(sorted({r.nodeid or str(r.location) for r in skipped})[:10])
        print(f"\nCI: {len(skipped)} test(s) skipped, which CI treats as a failure: {where}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
