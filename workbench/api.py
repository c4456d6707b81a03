"""The short Python API for scripts and notebooks: ``workbench.run``, ``check``, ``load``.

Unlike ``workbench.runtime.execute`` (which records nothing unless handed a tracer), these
record every run in the trace store the command line uses, ``.workbench/traces.duckdb``
under the working directory, or send it to the trace sink (``workbench traces serve``)
that owns that file.

    import workbench
    result = workbench.run("triage", ticket="Refund please", tier="pro")
    workbench.check("trader").rails
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workbench.errors import UsageError
from workbench.flow import Flow
from workbench.flow import load as load_file
from workbench.flow.verify import VerifyReport, verify
from workbench.runtime.executor import Executor, RunResult, run_sync

__all__ = ["arun", "check", "load", "run"]


def load(flow: Flow | str | Path) -> Flow:
    """A ``Flow`` from a flow object, a file path or the name of a shipped example."""
    if isinstance(flow, Flow):
        return flow
    from workbench.examples import flow_path, list_flows

    path = Path(flow)
    if not path.exists() and isinstance(flow, str) and flow in list_flows():
        path = flow_path(flow)
    return load_file(path)


async def arun(
    flow: Flow | str | Path,
    inputs: dict[str, Any] | None = None,
    *,
    db: str | Path | None = None,
    trace: bool = True,
    trust: bool = False,
    model: Any = None,
    profile_kernels: bool = False,
    **named: Any,
) -> RunResult:
    """Run a flow once and record it in the trace store (``trace=False`` records nothing).

    ``profile_kernels``: also record each model call's torch ops and kernels as its child spans.
    """
    if inputs is not None and not isinstance(inputs, Mapping):
        raise UsageError("inputs must be a mapping of input name to value")
    values = {**(inputs or {}), **named}
    tracer = None
    if trace:
        from workbench.traces import tracer_for

        tracer = tracer_for(db)
    try:
        executor = Executor(
            load(flow), tracer=tracer, trust=trust, model=model, profile_kernels=profile_kernels
        )
        return await executor.arun(values)
    finally:
        if tracer is not None:
            tracer.close()


def run(
    flow: Flow | str | Path,
    inputs: dict[str, Any] | None = None,
    *,
    db: str | Path | None = None,
    trace: bool = True,
    trust: bool = False,
    model: Any = None,
    profile_kernels: bool = False,
    **named: Any,
) -> RunResult:
    """Synchronous ``arun``; works in notebooks too (a running loop is left alone)."""
    return run_sync(
        arun(
            flow,
            inputs,
            db=db,
            trace=trace,
            trust=trust,
            model=model,
            profile_kernels=profile_kernels,
            **named,
        )
    )


def check(flow: Flow | str | Path, *, timeout_ms: int = 2000) -> VerifyReport:
    """Validate a flow and give each rail its status (proved, enforced, conflict...)."""
    return verify(load(flow), timeout_ms=timeout_ms)
