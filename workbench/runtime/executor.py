"""The executor: runs a flow as asyncio dataflow, enforcing types and rails at ports.

Planning (once per ``Executor``) validates the flow, resolves tools under the trust
rule, compiles rails and conditions, and works out each node's dependencies. A run
then only moves values: a node starts as soon as its inputs exist; routers, votes and
tools marked ``inline: true`` run inline on the event loop (no task, no thread: the
cheap path), while llm nodes, async tools, sync tools (on the worker pool) and sub-flows
run as tasks, so independent branches and concurrent runs overlap. The first failure
cancels everything still running. A node with ``retries:`` tries again after a failure
that may pass (``workbench.runtime.retry``), waiting with back-off in between.

Loops: a ``loop`` node runs as one step of its surrounding region; inside, its body (the
nodes between ``item`` and ``next``) runs once per iteration on a fresh copy of the
values, until ``until`` holds on ``next``, the bound is reached, or ``next`` is skipped.

Every value is validated against the type of the port it arrives at, so type bounds
hold wherever static verification assumes them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from workbench.errors import (
    NodeError,
    NodeTimeout,
    RunError,
    UsageError,
    ValueValidationError,
    WorkbenchError,
)
from workbench.flow.graph import analyse
from workbench.flow.io import flow_hash
from workbench.flow.model import Flow, Node, PortRef
from workbench.flow.port_rails import FlowRail
from workbench.flow.validate import validate
from workbench.otel import CURRENT_SPAN, follow_nodes
from workbench.runtime.conditions import compile_condition
from workbench.runtime.enforce import RUN_RECORDS, RailEnforcer, RailRecord, violation_message
from workbench.runtime.mcp import expand_mcp
from workbench.runtime.memory import THREAD_MEMORY, ThreadMemory, ThreadStore, check_thread_id, warn_unused
from workbench.runtime.nodes import RUNNERS, SKIPPED, Runner, register_runner
from workbench.runtime.replay import NODE_SCOPE, REPLAY_RUN, ModelAnswers, ReplayRun, node_key
from workbench.runtime.streaming import NodeToken
from workbench.spans import NoopTracer, Span, Tracer
from workbench.types import Type

__all__ = ["Executor", "RunResult", "aexecute", "execute", "run_sync"]

T = TypeVar("T")
Key = tuple[str | None, str]  # (node or None for the flow, port)


@dataclass
class RunResult:
    """What one run produced. ``status`` is ``ok``, ``failed`` or ``cancelled``.

    ``thread``: the thread the run continued; ``replay``: for a replay, ``{"of": RUN_ID,
    "recorded": n, "live": [...], "diverged": [...]}`` (``workbench.runtime.replay``).
    """

    run_id: str
    flow: str
    status: str
    outputs: dict[str, Any] = field(default_factory=dict)
    rails: list[RailRecord] = field(default_factory=list)
    error: WorkbenchError | None = None
    skipped_outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0
    thread: str | None = None
    replay: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` shape of ``workbench run`` (docs/architecture.md, "Command line")."""
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "status": self.status,
            "outputs": self.outputs,
            "rails": [r.to_json() for r in self.rails],
        }
        if self.error is not None:
            out["error"] = str(self.error)
        if self.skipped_outputs:
            out["skipped_outputs"] = self.skipped_outputs
        if self.thread is not None:
            out["thread"] = self.thread
        if self.replay is not None:
            out["replay"] = self.replay
        return out

    def raise_for_status(self) -> RunResult:
        """Re-raise the run's error if it failed; returns ``self`` otherwise."""
        if self.error is not None:
            raise self.error
        return self


@dataclass
class _Plan:
    """Everything needed to run one node, worked out once."""

    node: Node
    runner: Runner | None  # None for loops, which the executor runs itself
    sources: list[tuple[str, Key]]
    checks: dict[str, Type]  # inputs whose type is narrower than their source's
    input_rails: dict[str, list[FlowRail]]
    output_rails: list[FlowRail]
    until: Any = None
    next_source: Key | None = None
    inline: bool = False  # called on the loop without a task (an inline runner with no retries)


@dataclass
class _Region:
    """One level of the graph (top level or one loop's body), planned once."""

    counts: dict[str, int]  # how many region members each node waits for
    waiting: dict[str, list[str]]  # who waits for each node
    starts: list[str]  # the members that wait for nobody


@dataclass
class _Run:
    """State of one run: values on ports, rail records, the tracer and the root span."""

    values: dict[Key, Any]
    flow_inputs: dict[str, Any]
    records: list[RailRecord]
    root: Span


class Executor:
    """Plans a flow once and runs it many times: ``await Executor(flow).arun(inputs)``.

    ``tracer`` receives the spans; ``trust`` allows tools from outside the workbench package;
    ``model`` stands in for every llm node's model; ``rails=False`` skips enforcement;
    ``profile_kernels`` records each model call's torch ops and kernels as child spans
    (``True``, or ``{"min_duration_us": ..., "limit": ...}``; see ``workbench.profiling``).
    ``retry_backoff`` is the first wait in seconds before a node's retry (doubling per
    attempt, plus jitter), ``retry_max_wait`` caps one wait, a server's ``Retry-After`` included.
    ``approve`` decides agents' tool calls marked ``approve: true``: a callable ``(node, tool,
    call_id, arguments) -> Approve | Edit | Deny``, sync or async (``workbench.runtime.agent``);
    without one, such calls are denied.
    ``before_node``: awaited as ``before_node(node_name, inputs)`` before each node of this
    flow runs (after its inputs are gathered, before its span starts), e.g. to pause at a
    breakpoint; with it, every node runs as a task so the wait never blocks the loop.
    ``thread``: continue each agent node's conversation of this thread (an id) in every run
    (``arun(thread=...)`` for one run), kept in the state file ``state`` (a path or a
    ``ThreadStore``; default ``.workbench/state.duckdb``; ``workbench.runtime.memory``).
    ``replay``: a ``ModelAnswers`` (``workbench.runtime.replay``): llm nodes and agent turns
    take the recorded answers instead of calling the model.
    ``on_token``: called with a ``NodeToken`` (``workbench.runtime.streaming``) for each piece
    of text an llm node or agent turn decodes, on the run's event loop, each model call
    announced first (its ``start``); without it nothing streams and decoding costs nothing more.
    """

    def __init__(
        self,
        flow: Flow,
        *,
        tracer: Tracer | None = None,
        trust: bool = False,
        model: Any = None,
        rails: bool = True,
        profile_kernels: bool | Mapping[str, Any] = False,
        retry_backoff: float = 0.5,
        retry_max_wait: float = 30.0,
        approve: Any = None,
        before_node: Callable[[str, dict[str, Any]], Awaitable[None]] | None = None,
        thread: str | None = None,
        state: str | Path | ThreadStore | None = None,
        replay: ModelAnswers | None = None,
        on_token: Callable[[NodeToken], Any] | None = None,
    ) -> None:
        self.thread = check_thread_id(thread) if thread is not None else None
        if replay is not None and not isinstance(replay, ModelAnswers):
            raise UsageError(
                f"replay= takes a ModelAnswers (workbench.runtime.replay), got {type(replay).__name__}"
            )
        self.replay = replay
        self._state = state
        flow = expand_mcp(flow, trust=trust)  # an agent's mcp: entries become the servers' tools
        validate(flow)
        for name, value in (("retry_backoff", retry_backoff), ("retry_max_wait", retry_max_wait)):
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < float("inf"):
                raise UsageError(f"{name} must be a number of seconds >= 0, got {value!r}")
        self.flow = flow
        self.before_node = before_node
        self.tracer: Tracer = tracer or NoopTracer()
        self.retry_backoff, self.retry_max_wait = float(retry_backoff), float(retry_max_wait)
        self.options = {
            "tracer": self.tracer,
            "trust": trust,
            "model": model,
            "profile_kernels": profile_kernels,
            "retry_backoff": self.retry_backoff,
            "retry_max_wait": self.retry_max_wait,
            "approve": approve,
            "replay": replay,
            "on_token": on_token,
        }
        self.graph = analyse(flow)
        self.enforcer = (
            RailEnforcer(flow) if rails and (flow.rails or flow.use or _has_guarantees(flow)) else None
        )
        self.options["enforcer"] = self.enforcer  # agents check their tool calls' rails with it
        self.hash = flow_hash(flow)
        incoming = flow.incoming()
        self.plans = {name: self._plan(node, incoming) for name, node in flow.nodes.items()}
        nested = set().union(*self.graph.loop_bodies.values()) if self.graph.loop_bodies else set()
        self.top_region = [n for n in self.graph.order if n not in nested]
        self._regions: dict[str, _Region] = {}
        self.output_sources = {p: _key(incoming[PortRef(None, p)].source) for p in flow.outputs}

    # -- planning -------------------------------------------------------------------------

    def _plan(self, node: Node, incoming: Mapping[PortRef, Any]) -> _Plan:
        sources, checks = [], {}
        for port, typ in node.inputs.items():
            if node.kind == "loop" and port == "next":
                continue  # the back edge: read by the loop after each iteration, not before
            wire = incoming[PortRef(node.name, port)]
            sources.append((port, _key(wire.source)))
            if self.flow.source_type(wire.source) != typ:
                checks[port] = typ
        runner = None
        until = next_source = None
        if node.kind == "loop":
            next_source = _key(incoming[PortRef(node.name, "next")].source)
            if node.config.get("until"):
                scope = {**self.flow.inputs, "next": node.inputs["next"]}
                until = compile_condition(
                    node.config["until"], scope, self.flow.constants, f"{node.name}.until"
                )
        else:
            cls = RUNNERS.get(node.kind)
            if cls is None:
                raise UsageError(f"node '{node.name}': no runner is registered for kind '{node.kind}'")
            runner = cls(node, self.flow, self.options)
        enforcer = self.enforcer
        input_rails = {}
        output_rails: list[FlowRail] = []
        if enforcer is not None:
            for port in node.inputs:
                if enforcer.has_rails(PortRef(node.name, port)):
                    input_rails[port] = enforcer.by_port[PortRef(node.name, port)]
            for port in node.outputs:
                output_rails += enforcer.by_port.get(PortRef(node.name, port), [])
            output_rails += enforcer.guarantees.get(node.name, [])
        inline = runner is not None and runner.inline and node.retries == 0 and self.before_node is None
        return _Plan(node, runner, sources, checks, input_rails, output_rails, until, next_source, inline)

    def _region(self, loop: str | None) -> _Region:
        """The nodes one level inside ``loop`` (or the top level) and their dependencies."""
        key = loop or ""
        if key not in self._regions:
            bodies = self.graph.loop_bodies
            if loop is None:
                members = self.top_region
            else:
                inner = (
                    set().union(*(bodies[m] for m in bodies[loop] if m in bodies)) if bodies[loop] else set()
                )
                members = [n for n in self.graph.order if n in bodies[loop] and n not in inner]
            member_set = set(members)
            counts: dict[str, int] = {}
            waiting: dict[str, list[str]] = {n: [] for n in members}
            for name in members:
                needs = set(self.graph.preds[name])
                for inner_node in bodies.get(name, ()):  # a loop waits for what its body reads
                    needs |= self.graph.preds[inner_node]
                needs = (needs & member_set) - {name}
                counts[name] = len(needs)
                for dep in needs:
                    waiting[dep].append(name)
            starts = [n for n in members if counts[n] == 0]
            self._regions[key] = _Region(counts, waiting, starts)
        return self._regions[key]

    # -- running --------------------------------------------------------------------------

    @property
    def threads(self) -> ThreadStore:
        """The state file of threads (opened only for short transactions)."""
        if not isinstance(self._state, ThreadStore):
            self._state = ThreadStore(self._state)
        return self._state

    async def arun(
        self, inputs: Mapping[str, Any], *, parent: Span | None = None, thread: str | None = None
    ) -> RunResult:
        """Run the flow once. Bad inputs raise ``ValueValidationError``; failures are in the result.

        ``thread`` (default: the executor's) continues that thread's agent conversations; a
        thread another run holds raises ``ThreadError``, a bad id or another flow's thread
        ``UsageError``.
        """
        flow_inputs = self._validate_inputs(inputs)
        run_id = uuid.uuid4().hex
        thread = check_thread_id(thread) if thread is not None else self.thread
        attributes = {
            "openinference.span.kind": "CHAIN",
            "workbench.run.id": run_id,
            "workbench.flow.name": self.flow.name,
            "workbench.flow.hash": self.hash,
            "workbench.run.inputs": _json(flow_inputs),
        }
        replaying: ReplayRun | None = None
        if self.replay is not None:
            attributes["workbench.replay.of"] = self.replay.run_id
            if REPLAY_RUN.get() is None:  # a sub-flow's run goes on with its parent's replay
                replaying = ReplayRun()
        # Claimed in line (a few ms): a claim made on a worker thread could land after this task
        # was cancelled, and nobody would let it go.
        memory = self.threads.claim(thread, self.flow.name, run_id) if thread is not None else None
        result: RunResult | None = None
        try:
            if memory is not None:
                attributes["workbench.thread.id"] = memory.thread
                unused = warn_unused(memory, self.flow)
                if unused:
                    attributes["workbench.thread.unused"] = _json(unused)
            name = f"invoke_flow {self.flow.name}"
            root = self.tracer.start_span(name, parent=parent, attributes=attributes)
            result = await self._arun(flow_inputs, run_id, root, memory, replaying)
        finally:  # cancelled or failed: the thread is let go, as it was
            if memory is not None:
                self.threads.release(memory, save=result is not None and result.status == "ok")
        return result

    async def _arun(
        self,
        flow_inputs: dict[str, Any],
        run_id: str,
        root: Span,
        memory: ThreadMemory | None,
        replaying: ReplayRun | None,
    ) -> RunResult:
        state = _Run({(None, k): v for k, v in flow_inputs.items()}, flow_inputs, [], root)
        start = time.perf_counter()
        result = RunResult(
            run_id, self.flow.name, "ok", rails=state.records, thread=memory.thread if memory else None
        )
        records_token = RUN_RECORDS.set(state.records)
        memory_token = THREAD_MEMORY.set(memory) if memory is not None else None
        replay_token = REPLAY_RUN.set(replaying) if replaying is not None else None
        unfollow = follow_nodes()  # OpenTelemetry's current span: the running node's, when loaded
        try:
            # A rail on an input is a rule of the run (exit 1, recorded), not a type error (exit 2).
            self._check_input_rails(flow_inputs, state)
            await self._run_region(None, state.values, state, root)
            result.outputs, result.skipped_outputs = self._collect_outputs(state)
        except asyncio.CancelledError:
            result.status, result.error = (
                "cancelled",
                RunError(f"run of flow '{self.flow.name}' was cancelled"),
            )
            self._end_root(root, result, start, replaying)
            raise
        except WorkbenchError as exc:
            result.status, result.error = "failed", exc
        except Exception as exc:  # a bug of ours or of a runner: still report, never hang
            result.status = "failed"
            result.error = RunError(f"internal error in flow '{self.flow.name}': {type(exc).__name__}: {exc}")
            result.error.__cause__ = exc
        finally:
            unfollow()
            RUN_RECORDS.reset(records_token)
            if memory_token is not None:
                THREAD_MEMORY.reset(memory_token)
            if replay_token is not None:
                REPLAY_RUN.reset(replay_token)
        self._end_root(root, result, start, replaying)
        return result

    def _end_root(self, root: Span, result: RunResult, start: float, replaying: ReplayRun | None) -> None:
        result.seconds = time.perf_counter() - start
        if replaying is not None:
            assert self.replay is not None  # a replay run exists only for an executor that replays
            result.replay = replaying.summary(self.replay.run_id)
            root.attributes["workbench.replay.recorded"] = replaying.recorded
            root.attributes["workbench.replay.live"] = len(replaying.live)
            root.attributes["workbench.replay.diverged"] = _json(replaying.diverged)
        root.attributes["workbench.run.status"] = result.status
        root.attributes["workbench.run.outputs"] = _json(result.outputs)
        status = "OK" if result.status == "ok" else "ERROR"
        self.tracer.end_span(root, status=status, message=str(result.error) if result.error else None)

    def _validate_inputs(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(inputs, Mapping):
            raise UsageError(f"inputs must be a mapping of name to value, got {type(inputs).__name__}")
        unknown = [k for k in inputs if k not in self.flow.inputs]
        if unknown:
            raise ValueValidationError(
                unknown[0],
                f"flow '{self.flow.name}' has no input of that name "
                f"(inputs: {', '.join(self.flow.inputs) or 'none'})",
            )
        values = {}
        for name, typ in self.flow.inputs.items():
            if name not in inputs:
                raise ValueValidationError(name, f"missing input (expected {typ.describe()})")
            values[name] = typ.validate(inputs[name], name)
        return values

    def _check_input_rails(self, values: dict[str, Any], state: _Run) -> None:
        """Rails on the flow's inputs: traced on the root span, recorded in the result."""
        if self.enforcer is None:
            return
        for name in self.flow.inputs:
            rails = self.enforcer.by_port.get(PortRef(None, name))
            if rails:
                failures = self.enforcer.check(rails, values, name, self.tracer, state.root, state.records)
                self.enforcer.raise_blocking(failures, ("block", "repair", "decode"))

    def _collect_outputs(self, state: _Run) -> tuple[dict[str, Any], list[str]]:
        outputs, skipped = {}, []
        for port, key in self.output_sources.items():
            value = state.values[key]
            if value is SKIPPED:
                skipped.append(port)
                continue
            outputs[port] = self.flow.outputs[port].validate(value, port)
        if self.enforcer is not None:
            env = {**state.flow_inputs, **outputs}
            for port in outputs:
                rails = self.enforcer.by_port.get(PortRef(None, port))
                if rails:
                    failures = self.enforcer.check(rails, env, port, self.tracer, state.root, state.records)
                    self.enforcer.raise_blocking(failures, ("block", "repair", "decode"))
        return outputs, skipped

    async def _run_region(self, loop: str | None, values: dict[Key, Any], state: _Run, parent: Span) -> None:
        region = self._region(loop)
        remaining = dict(region.counts)  # the only per-run copy: the graph itself is planned once
        waiting = region.waiting
        ready = deque(region.starts)
        running: dict[asyncio.Task[None], str] = {}

        def finished(name: str) -> None:
            for nxt in waiting[name]:
                remaining[nxt] -= 1
                if remaining[nxt] == 0:
                    ready.append(nxt)

        try:
            while ready or running:
                while ready:
                    name = ready.popleft()
                    plan = self.plans[name]
                    if plan.inline:
                        self._run_inline(plan, values, state, parent)
                        finished(name)
                    else:
                        task = asyncio.ensure_future(self._run_task(plan, values, state, parent))
                        running[task] = name
                if running:
                    done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        name = running.pop(task)
                        task.result()  # re-raises the node's error
                        finished(name)
        finally:
            if running:
                for task in running:
                    task.cancel()
                await asyncio.gather(*running, return_exceptions=True)

    def _gather(self, plan: _Plan, values: dict[Key, Any]) -> dict[str, Any] | None:
        inputs = {}
        for port, key in plan.sources:
            value = values[key]
            if value is SKIPPED:
                return None
            inputs[port] = value
        for port, typ in plan.checks.items():
            inputs[port] = typ.validate(inputs[port], f"{plan.node.name}.{port}")
        return inputs

    def _skip(self, plan: _Plan, values: dict[Key, Any]) -> None:
        for port in plan.node.outputs:
            values[(plan.node.name, port)] = SKIPPED

    def _start(self, plan: _Plan, parent: Span) -> Span:
        runner = plan.runner
        attrs = runner.attributes() if runner else {"openinference.span.kind": "CHAIN"}
        attrs["workbench.node.name"] = plan.node.name
        attrs["workbench.node.kind"] = plan.node.kind
        name = runner.span_name() if runner else f"loop {plan.node.name}"
        return self.tracer.start_span(name, parent=parent, attributes=attrs)

    def _env(
        self, plan: _Plan, inputs: dict[str, Any], outputs: dict[str, Any], state: _Run
    ) -> dict[str, Any]:
        return {**state.flow_inputs, **inputs, **outputs}

    def _check_inputs(self, plan: _Plan, inputs: dict[str, Any], state: _Run, span: Span) -> None:
        env = self._env(plan, inputs, {}, state)
        assert self.enforcer is not None  # a plan has rails only when the flow has an enforcer
        for port, rails in plan.input_rails.items():
            failures = self.enforcer.check(
                rails,
                env,
                f"{plan.node.name}.{port}",
                self.tracer,
                span,
                state.records,
            )
            RailEnforcer.raise_blocking(failures, ("block", "repair", "decode"))

    def _check_outputs(
        self, plan: _Plan, raw: Any, inputs: dict[str, Any], state: _Run, span: Span
    ) -> tuple[dict[str, Any], list[tuple[FlowRail, RailRecord]]]:
        node = plan.node
        if not isinstance(raw, Mapping):
            hint = (
                f" (wrap a single result with @workbench.returns('{next(iter(node.outputs))}'))"
                if len(node.outputs) == 1
                else ""
            )
            raise NodeError(
                node.name,
                f"returned {type(raw).__name__}, expected a dict with keys {list(node.outputs)}{hint}",
            )
        outputs = {}
        for port, typ in node.outputs.items():
            if port not in raw:
                raise NodeError(node.name, f"returned no value for output '{port}'")
            value = raw[port]
            outputs[port] = value if value is SKIPPED else typ.validate(value, f"{node.name}.{port}")
        extra = [k for k in raw if k not in node.outputs]
        if extra:
            raise NodeError(
                node.name, f"returned '{extra[0]}', which is not one of its outputs {list(node.outputs)}"
            )
        failures: list[tuple[FlowRail, RailRecord]] = []
        # A router's untaken branches and a loop's item are SKIPPED: a rail on such a port, or
        # reading one, is not reached this run; every other rail is checked (the verifier counts
        # on them as hypotheses downstream).
        rails = plan.output_rails
        skipped = {p for p, v in outputs.items() if v is SKIPPED} if rails else set()
        if skipped:
            rails = [r for r in rails if r.port.port not in skipped and not r.names & skipped]
        if rails:
            env = self._env(plan, inputs, outputs, state)
            port = f"{node.name}.{next(iter(node.outputs))}" if len(node.outputs) == 1 else node.name
            assert self.enforcer is not None  # a plan has rails only when the flow has an enforcer
            failures = self.enforcer.check(rails, env, port, self.tracer, span, state.records)
        return outputs, failures

    def _store(self, plan: _Plan, outputs: dict[str, Any], values: dict[Key, Any]) -> None:
        name = plan.node.name
        for port, value in outputs.items():
            values[(name, port)] = value

    def _run_inline(self, plan: _Plan, values: dict[Key, Any], state: _Run, parent: Span) -> None:
        inputs = self._gather(plan, values)
        if inputs is None:
            return self._skip(plan, values)
        span = self._start(plan, parent)
        try:
            if plan.input_rails:
                self._check_inputs(plan, inputs, state, span)
            runner = plan.runner
            assert runner is not None  # every plan but a loop's has a runner; loops never run inline
            current = CURRENT_SPAN.set((self.tracer, span))  # for the code it calls (workbench.otel)
            try:
                raw = runner.run_sync(inputs, span, state.flow_inputs)
            except WorkbenchError:
                raise
            except Exception as exc:
                raise NodeError(plan.node.name, _cause(exc, 1)) from exc
            finally:
                CURRENT_SPAN.reset(current)
            outputs, failures = self._check_outputs(plan, raw, inputs, state, span)
            RailEnforcer.raise_blocking(failures, ("block", "repair", "decode"))
        except WorkbenchError as exc:
            self.tracer.end_span(span, status="ERROR", message=str(exc))
            raise
        self.tracer.end_span(span)
        self._store(plan, outputs, values)
        return None

    async def _run_task(self, plan: _Plan, values: dict[Key, Any], state: _Run, parent: Span) -> None:
        inputs = self._gather(plan, values)
        if inputs is None:
            return self._skip(plan, values)
        if self.before_node is not None:  # a breakpoint pauses before anything the node does
            await self.before_node(plan.node.name, dict(inputs))
        if plan.runner is not None and not plan.runner.ready:
            await plan.runner.prepare(parent)  # e.g. load a model: its own span, not the node's
        span = self._start(plan, parent)
        try:
            if plan.input_rails:
                self._check_inputs(plan, inputs, state, span)
            if plan.runner is None:
                raw = await self._run_loop(plan, inputs, values, state, span)
                outputs, failures = self._check_outputs(plan, raw, inputs, state, span)
                RailEnforcer.raise_blocking(failures, ("block", "repair", "decode"))
            else:
                outputs = await self._run_with_repair(plan, inputs, state, span)
        except asyncio.CancelledError:
            self.tracer.end_span(span, status="ERROR", message="cancelled")
            raise
        except WorkbenchError as exc:
            self.tracer.end_span(span, status="ERROR", message=str(exc))
            raise
        self.tracer.end_span(span)
        self._store(plan, outputs, values)
        return None

    async def _run_with_repair(
        self, plan: _Plan, inputs: dict[str, Any], state: _Run, span: Span
    ) -> dict[str, Any]:
        runner = plan.runner
        assert runner is not None
        repairs = [r.max_attempts or 2 for r in plan.output_rails if r.enforce == "repair"]
        budget = max(repairs, default=0)
        feedback: list[dict[str, str]] = []
        for round_ in range(budget + 1):
            raw = await self._attempts(plan, inputs, span, feedback, state)
            outputs, failures = self._check_outputs(plan, raw, inputs, state, span)
            RailEnforcer.raise_blocking(failures, ("block", "decode"))
            repairable = [(c, r) for c, r in failures if c.enforce == "repair"]
            if not repairable:
                return outputs
            if round_ == budget or not runner.supports_repair:
                RailEnforcer.raise_blocking(repairable, ("repair",))
            problem = "; ".join(violation_message(r, c.text) for c, r in repairable)
            self.tracer.add_event(span, "repair", {"workbench.repair.round": round_ + 1, "reason": problem})
            feedback = runner.repair_messages(problem, span)
        raise AssertionError("unreachable")

    async def _attempts(
        self, plan: _Plan, inputs: dict[str, Any], span: Span, feedback: list[dict[str, str]], state: _Run
    ) -> Any:
        """The node's call, tried again after failures that may pass when it has ``retries``."""
        node = plan.node
        if not node.retries:
            try:
                return await self._attempt(plan, inputs, span, feedback, state)
            except WorkbenchError:
                raise
            except Exception as exc:
                raise _failure(node, exc, 1) from exc
        from workbench.runtime.retry import retry_async  # tenacity: imported when first needed

        made = 0

        async def attempt() -> Any:
            nonlocal made
            made += 1
            return await self._attempt(plan, inputs, span, feedback, state)

        def retried(exc: BaseException, wait: float) -> None:
            self.tracer.add_event(
                span,
                "retry",
                {
                    "workbench.node.attempt": made,
                    "error": _describe(node, exc),
                    "workbench.retry.wait_s": round(wait, 3),
                },
            )

        try:
            return await retry_async(
                attempt,
                node.retries + 1,
                backoff=self.retry_backoff,
                max_wait=self.retry_max_wait,
                on_retry=retried,
            )
        except WorkbenchError:
            raise
        except Exception as exc:
            raise _failure(node, exc, made) from exc
        finally:  # repair rounds each make their attempts: the attribute counts them all
            attrs = span.attributes
            attrs["workbench.node.attempts"] = attrs.get("workbench.node.attempts", 0) + made

    async def _attempt(
        self, plan: _Plan, inputs: dict[str, Any], span: Span, feedback: list[dict[str, str]], state: _Run
    ) -> Any:
        runner = plan.runner
        assert runner is not None  # loops are run by _run_loop, never attempted as one node
        current = CURRENT_SPAN.set((self.tracer, span))  # for the code it calls (workbench.otel)
        try:
            call = runner.run(inputs, span, state.flow_inputs, feedback)
            if plan.node.timeout is not None:
                return await asyncio.wait_for(call, plan.node.timeout)
            return await call
        finally:
            CURRENT_SPAN.reset(current)

    async def _run_loop(
        self, plan: _Plan, inputs: dict[str, Any], values: dict[Key, Any], state: _Run, span: Span
    ) -> dict[str, Any]:
        node = plan.node
        item = inputs["init"]
        limit = node.config["max_iterations"]
        next_type, next_source = node.inputs["next"], plan.next_source
        assert next_source is not None  # every loop's plan has one
        for iteration in range(1, limit + 1):
            scope: dict[Key, Any] = dict(values)
            scope[(node.name, "item")] = node.outputs["item"].validate(item, f"{node.name}.item")
            await self._run_region(node.name, scope, state, span)
            nxt = scope[next_source]
            span.attributes["workbench.loop.iterations"] = iteration
            if nxt is SKIPPED:
                break
            item = next_type.validate(nxt, f"{node.name}.next")
            if plan.until is not None and plan.until({**state.flow_inputs, "next": item}):
                break
        return {"item": SKIPPED, "result": node.outputs["result"].validate(item, f"{node.name}.result")}

    # -- conveniences ---------------------------------------------------------------------

    def run(self, inputs: Mapping[str, Any]) -> RunResult:
        """Run synchronously; inside a running event loop (a notebook) it runs on a worker thread."""
        return run_sync(self.arun(inputs))


class FlowRunner(Runner):
    """Runs a sub-flow as one node (its spans nest under this node's span)."""

    def __init__(self, node: Node, flow: Flow, options: Mapping[str, Any]) -> None:
        super().__init__(node, flow, options)
        # The thread and the replay's progress reach the sub-flow's nodes through the run's context.
        passed = (
            "tracer",
            "trust",
            "model",
            "retry_backoff",
            "retry_max_wait",
            "approve",
            "replay",
            "on_token",
        )
        self.inner = Executor(node.config["flow"], **{k: v for k, v in options.items() if k in passed})

    async def run(
        self,
        inputs: dict[str, Any],
        span: Span,
        flow_inputs: Mapping[str, Any],
        feedback: list[dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        scope = NODE_SCOPE.set(node_key(self.node.name) + "/")  # its nodes' keys: outer/inner
        try:
            result = await self.inner.arun(inputs, parent=span)
        finally:
            NODE_SCOPE.reset(scope)
        if result.status != "ok":
            assert result.error is not None
            raise NodeError(self.node.name, f"sub-flow '{self.inner.flow.name}' failed: {result.error}")
        return result.outputs


register_runner("flow", FlowRunner)


def _has_guarantees(flow: Flow) -> bool:
    return any(node.guarantees for node in flow.nodes.values())


def _key(ref: PortRef) -> Key:
    return (ref.node, ref.port)


def _cause(exc: BaseException, attempts: int) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if attempts == 1 else f"{text} (after {attempts} attempts)"


def _timed_out(node: Node, exc: BaseException) -> bool:
    """A timeout of the node's own ``timeout`` (a tool raising TimeoutError itself is no timeout of ours)."""
    return isinstance(exc, TimeoutError) and node.timeout is not None


def _describe(node: Node, exc: BaseException) -> str:
    """One failed attempt's cause, for its ``retry`` event."""
    if _timed_out(node, exc):
        return f"timed out after {node.timeout} s"
    return str(exc) if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {exc}"


def _failure(node: Node, exc: Exception, attempts: int) -> NodeError:
    """The error a node's last failed attempt (not a ``WorkbenchError``) ends the run with."""
    if _timed_out(node, exc):
        each = f" on each of {attempts} attempts" if attempts > 1 else ""
        return NodeTimeout(node.name, f"timed out after {node.timeout} s{each}")
    return NodeError(node.name, _cause(exc, attempts))


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


async def aexecute(flow: Flow, inputs: Mapping[str, Any], **options: Any) -> RunResult:
    """Plan and run ``flow`` once, recording spans only to ``options["tracer"]`` (none by default).

    ``options``: tracer, trust, model, rails, profile_kernels, retry_backoff, retry_max_wait,
    approve (see ``Executor``). ``workbench.arun`` is the same with the trace store as the tracer.
    """
    return await Executor(flow, **options).arun(inputs)


def execute(flow: Flow, inputs: Mapping[str, Any], **options: Any) -> RunResult:
    """Synchronous ``aexecute`` for scripts and notebooks (``options``: tracer, trust, model, rails)."""
    return run_sync(aexecute(flow, inputs, **options))


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code.

    ``asyncio.run`` refuses to start inside a running loop, which is where notebook cells
    execute; there the coroutine runs on a fresh loop in a worker thread instead.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="workbench-run") as pool:
        return pool.submit(asyncio.run, coro).result()
