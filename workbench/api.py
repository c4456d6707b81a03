"""The short Python API for scripts and notebooks: ``workbench.run``, ``check``, ``load``.

Unlike ``workbench.runtime.execute`` (which records nothing unless handed a tracer), these
record every run in the trace store the command line uses, ``.workbench/traces.duckdb``
under the working directory, or send it to the trace sink (``workbench traces serve``)
that owns that file.

    import workbench
    result = workbench.run("triage", ticket="Refund please", tier="pro")
    workbench.check("trader").rails
    workbench.run("desk", news="...", cash=1000.0, thread="user-42")   # continue a conversation
    workbench.run("desk", replay="latest")            # the last run again, answers from its trace
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
from workbench.runtime.memory import default_state_path
from workbench.runtime.replay import ModelAnswers

__all__ = ["arun", "check", "load", "replay_answers", "run"]


def load(flow: Flow | str | Path) -> Flow:
    """A ``Flow`` from a flow object, a file path or the name of a shipped example."""
    if isinstance(flow, Flow):
        return flow
    from workbench.examples import flow_path, list_flows

    path = Path(flow)
    if not path.exists() and isinstance(flow, str) and flow in list_flows():
        path = flow_path(flow)
    return load_file(path)


def replay_answers(
    flow: Flow, run_id: str, *, db: str | Path | None = None, live: bool = False
) -> ModelAnswers:
    """The model answers run ``run_id`` (an id, a unique prefix, or ``latest``) recorded in the
    trace store ``db``, for replaying ``flow``. ``UsageError`` when there is no such run, or it
    ran another flow."""
    from workbench.traces import TraceLockedError, TraceStoreError, open_store

    try:
        with open_store(db) as store:
            answers = store.model_answers(run_id, live=live)
    except TraceLockedError:
        raise
    except TraceStoreError as exc:
        raise UsageError(f"cannot replay run {run_id!r}: {exc}") from None
    if answers.flow != flow.name:
        raise UsageError(
            f"run {answers.run_id} ran flow '{answers.flow}', not '{flow.name}': a replay runs the same "
            "flow (edited as you like, under the same name)"
        )
    return answers


async def arun(
    flow: Flow | str | Path,
    inputs: dict[str, Any] | None = None,
    *,
    db: str | Path | None = None,
    trace: bool = True,
    trust: bool = False,
    model: Any = None,
    profile_kernels: bool = False,
    thread: str | None = None,
    state: str | Path | None = None,
    replay: str | ModelAnswers | None = None,
    replay_live: bool = False,
    **named: Any,
) -> RunResult:
    """Run a flow once and record it in the trace store (``trace=False`` records nothing).

    ``profile_kernels``: also record each model call's torch ops and kernels as its child spans.
    ``thread``: continue each agent node's conversation of this thread id (kept in ``state``,
    default ``state.duckdb`` beside the trace file). ``replay``: a run id (or ``latest``) of
    this flow in the trace store: model answers come from its trace, and inputs not given
    are its inputs; ``replay_live`` asks the model where the recording has no answer.
    """
    if inputs is not None and not isinstance(inputs, Mapping):
        raise UsageError("inputs must be a mapping of input name to value")
    values = {**(inputs or {}), **named}
    the_flow = load(flow)
    if isinstance(replay, str):  # read before this run's writer opens the trace file
        replay = replay_answers(the_flow, replay, db=db, live=replay_live)
    elif replay_live and replay is None:
        raise UsageError("replay_live=True needs replay= (a run id)")
    if replay is not None:
        values = {**replay.inputs, **values}
    tracer = None
    if trace:
        from workbench.traces import tracer_for

        tracer = tracer_for(db)
    try:
        executor = Executor(
            the_flow,
            tracer=tracer,
            trust=trust,
            model=model,
            profile_kernels=profile_kernels,
            thread=thread,
            state=state if state is not None else default_state_path(db),
            replay=replay,
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
    thread: str | None = None,
    state: str | Path | None = None,
    replay: str | ModelAnswers | None = None,
    replay_live: bool = False,
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
            thread=thread,
            state=state,
            replay=replay,
            replay_live=replay_live,
            **named,
        )
    )


def check(flow: Flow | str | Path, *, timeout_ms: int = 2000) -> VerifyReport:
    """Validate a flow and give each rail its status (proved, enforced, conflict...)."""
    return verify(load(flow), timeout_ms=timeout_ms)
