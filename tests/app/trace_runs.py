"""A trace database of real runs for the traces view's tests: ok, failed and cancelled runs
of the example flows and of a small flow that waits (``record_runs``)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path

import workbench
from workbench.traces import TraceStore

TICKETS = [
    ("Invoice charged twice, urgent! mail me at a@b.example", "enterprise"),
    ("the app crashes on login", "free"),
]

# A flow whose one node waits ``delay`` seconds (asyncio.sleep returns None, so a run that
# is not cancelled fails: its node returns no outputs).
SLEEPY_FLOW = """\
flow: sleepy
version: 1
description: waits, then fails
inputs: {delay: float}
outputs: {done: float}
nodes:
  wait:
    kind: tool
    tool: asyncio:sleep
    inputs: {delay: float}
    outputs: {done: float}
wires:
  - delay -> wait.delay
  - wait.done -> done
"""


def record_runs(db: Path, triage_runs: int = 5) -> dict[str, list[str]]:
    """Record ``triage_runs`` triage runs, a failed and a cancelled ``sleepy`` run into ``db``;
    returns the run ids by ``triage``, ``error`` and ``cancelled`` (oldest first)."""
    ids: dict[str, list[str]] = {"triage": [], "error": [], "cancelled": []}
    for i in range(triage_runs):
        text, tier = TICKETS[i % len(TICKETS)]
        result = workbench.run("triage", {"ticket": text, "tier": tier}, db=db)
        assert result.status == "ok", result.error
        ids["triage"].append(result.run_id)
    flow = db.parent / "sleepy.flow.yaml"
    flow.write_text(SLEEPY_FLOW, encoding="utf-8")
    failed = workbench.run(flow, {"delay": 0.0}, db=db, trust=True)
    assert failed.status == "failed"
    ids["error"].append(failed.run_id)

    async def cancel() -> None:
        task = asyncio.ensure_future(workbench.arun(flow, {"delay": 30.0}, db=db, trust=True))
        await asyncio.sleep(0.3)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    # In a thread of its own: a browser test's Playwright loop may be running in this one.
    worker = threading.Thread(target=asyncio.run, args=(cancel(),))
    worker.start()
    worker.join()
    with TraceStore(db) as store:
        newest = store.runs(limit=1)
    assert list(newest["flow_name"]) == ["sleepy"]
    ids["cancelled"].append(str(newest["run_id"].iloc[0]))
    return ids
