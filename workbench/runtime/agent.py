"""Agent nodes: a model that calls typed tools, each call checked, until it gives typed outputs.

One run of an ``agent`` node is a loop of model turns (at most ``max_steps``). The model
is offered the node's tools in OpenAI's ``tools`` form (parameters: the tool's input
types as JSON Schema, bounds included). Each call it makes is checked before anything
runs: the tool must exist, the arguments must be a JSON object that fits the tool's
input types, and every rail ``on: NODE.TOOL`` must hold (compiled once, at plan time,
with the flow's other rails). A tool marked ``approve: true`` then waits for the
executor's ``approve`` callback, bound to the exact arguments: edited arguments are
checked again. Only then does the tool run (sync tools on the worker pool, async ones on
the loop, each under its timeout), and its outputs, checked against its output types, go
back to the model as a ``tool`` message. Whatever goes wrong with one call (a refusal, a
denial, an unknown tool, bad JSON, a raising, hanging or mistyped tool) also goes back
as that call's ``tool`` message: the model may try something else, within ``max_steps``.
Calls of one turn run concurrently; none runs twice.

The answer, a turn without tool calls, is parsed as llm nodes parse theirs; an answer
that does not parse or fit the output types is sent back for another turn.

Spans follow the OpenTelemetry GenAI conventions: ``invoke_agent {node}`` (the node's
span, with the transcript as ``workbench.agent.transcript``), ``chat {model}`` per turn,
``execute_tool {tool}`` per call and ``apply_guardrail {rail}`` per rail check of a call.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.errors import NodeError, TrustError, ValueValidationError
from workbench.flow.agent_tools import AgentTool, arguments_type, tool_parameters, with_defaults
from workbench.flow.model import Flow, Node, PortRef
from workbench.flow.port_rails import FlowRail
from workbench.otel import use_span
from workbench.runtime.decode import DecodeEnforcer
from workbench.runtime.enforce import RUN_RECORDS, RailEnforcer, RailRecord, violation_message
from workbench.runtime.mcp import McpSessions
from workbench.runtime.memory import THREAD_MEMORY
from workbench.runtime.nodes import LlmRunner, register_runner
from workbench.runtime.replay import node_key
from workbench.runtime.threads import run_in_pool
from workbench.runtime.tools import resolve_tool
from workbench.spans import NoopTracer, Span, Tracer
from workbench.types import Record

if TYPE_CHECKING:
    from workbench.models.base import Generation, ToolCall

__all__ = [
    "DEFAULT_MAX_STEPS",
    "DEFAULT_TOOL_TIMEOUT",
    "AgentRunner",
    "Approve",
    "Approver",
    "Decision",
    "Deny",
    "Edit",
]

DEFAULT_MAX_STEPS = 8
DEFAULT_TOOL_TIMEOUT = 60.0  # seconds; a tool's own ``timeout:`` replaces it


@dataclass(frozen=True)
class Approve:
    """Run the call with the arguments the model sent."""


@dataclass(frozen=True)
class Edit:
    """Run the call with these arguments instead (they are type- and rail-checked again)."""

    arguments: dict[str, Any]


@dataclass(frozen=True)
class Deny:
    """Do not run the call; ``reason`` goes back to the model as the tool's answer."""

    reason: str = "denied by the approver"


Decision = Approve | Edit | Deny
# (node, tool, call_id, arguments) -> a decision, or an awaitable of one.
Approver = Callable[[str, str, str, dict[str, Any]], "Decision | Awaitable[Decision]"]


@dataclass
class _Tool:
    """One tool as planned: its function, argument and result types, and its rails."""

    name: str
    spec: AgentTool
    fn: Callable[..., Any]
    is_async: bool
    arguments: Record | None
    outputs: Record | None  # None for an MCP tool: its server gives the result
    rails: list[FlowRail]
    offer: dict[str, Any]  # the OpenAI ``tools`` entry


@dataclass
class _AgentRun:
    """One run of the node: what rails may read, which calls were handled, the approval queue."""

    span: Span
    env: dict[str, Any]
    records: list[RailRecord] | None
    mcp: McpSessions | None = None
    seen: set[str] = field(default_factory=set)
    approvals: asyncio.Lock = field(default_factory=asyncio.Lock)


class AgentRunner(LlmRunner):
    """Runs an ``agent`` node: model turns and checked tool calls until a typed answer."""

    supports_repair = False

    def __init__(self, node: Node, flow: Flow, options: Mapping[str, Any]) -> None:
        super().__init__(node, flow, options)
        self.tracer: Tracer = options.get("tracer") or NoopTracer()
        self.enforcer: RailEnforcer | None = options.get("enforcer")
        self.approver: Approver | None = options.get("approve")
        self.max_steps: int = node.config.get("max_steps", DEFAULT_MAX_STEPS)
        self.tools = {name: self._plan_tool(name, spec) for name, spec in node.config["tools"].items()}
        self.offers = [tool.offer for tool in self.tools.values()]
        # rails ``enforce: decode`` on a tool shape its arguments while a local model writes them
        self.tool_decode = {
            name: enforcer
            for name, tool in self.tools.items()
            if (enforcer := DecodeEnforcer.for_tool(node, name, tool.arguments, tool.rails)) is not None
        }

    def _plan_tool(self, name: str, spec: AgentTool) -> _Tool:
        # The same trust rule as tool nodes: a stand-in node names the tool in errors.
        if spec.mcp is not None:  # called through its server, which only a trusted run may start
            if not self.options.get("trust"):
                raise TrustError(
                    f"flow '{self.flow.name}' node '{self.node.name}': tool '{name}' is served by the MCP "
                    f"server {spec.mcp.server.describe()}, whose tools could do anything, so an "
                    "untrusted flow may not use it. If you trust this flow, pass --trust on the "
                    "command line or trust=True in Python"
                )
            fn: Callable[..., Any] = _unused
        else:
            stand_in = Node(f"{self.node.name}.{name}", "tool", config={"tool": spec.tool}, fn=spec.fn)
            fn = resolve_tool(stand_in, trust=bool(self.options.get("trust")), flow_name=self.flow.name)
        arguments = arguments_type(spec)
        function: dict[str, Any] = {"name": name, "parameters": tool_parameters(spec)}
        if spec.description:
            function["description"] = spec.description
        rails = self.enforcer.by_port.get(PortRef(self.node.name, name), []) if self.enforcer else []
        return _Tool(
            name,
            spec,
            fn,
            inspect.iscoroutinefunction(fn),
            arguments,
            Record(None, spec.outputs) if spec.outputs else None,
            list(rails),
            {"type": "function", "function": function},
        )

    # -- spans ----------------------------------------------------------------------------

    def _model_label(self) -> str:
        spec = self.model_spec
        return spec if isinstance(spec, str) else getattr(spec, "name", None) or "model"

    def span_name(self) -> str:
        return f"invoke_agent {self.node.name}"

    def attributes(self) -> dict[str, Any]:
        return {
            "openinference.span.kind": "AGENT",
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": self.node.name,
            "gen_ai.request.model": getattr(self.model_spec, "name", None) or str(self.model_spec),
        }

    # -- the loop -------------------------------------------------------------------------

    def agent_messages(self, inputs: dict[str, Any], flow_inputs: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The first messages: the node's system prompt and how to answer, then the prompt."""
        messages: list[dict[str, Any]] = list(self.messages(inputs, flow_inputs))
        howto = (
            "Use the tools to do the task. When you are done, reply without calling a tool, with "
            f"only JSON that matches this JSON Schema: {json.dumps(self.schema)}"
        )
        if messages[0]["role"] == "system":
            messages[0] = {"role": "system", "content": f"{messages[0]['content']}\n\n{howto}"}
        else:
            messages.insert(0, {"role": "system", "content": howto})
        return messages

    async def run(
        self,
        inputs: dict[str, Any],
        span: Span,
        flow_inputs: Mapping[str, Any],
        feedback: list[dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        model = self.model()
        if not getattr(model, "supports_tools", False):
            raise NodeError(
                self.node.name,
                f"model '{getattr(model, 'name', self._model_label())}' cannot call tools; an agent node "
                "needs a backend that takes tools, such as an OpenAI-compatible server "
                "(model: {openai: {base_url: ...}})",
            )
        messages = self.agent_messages(inputs, flow_inputs)
        memory = THREAD_MEMORY.get()
        if memory is not None:  # a thread: earlier turns go between the system prompt and the new one
            earlier = memory.history(node_key(self.node.name))
            messages[1:1] = earlier
            span.attributes["workbench.thread.id"] = memory.thread
            span.attributes["workbench.thread.earlier_messages"] = len(earlier)
        env = {**flow_inputs, **inputs}
        served = [tool.spec for tool in self.tools.values() if tool.spec.mcp is not None]
        if not served:
            outputs = await self._loop(model, messages, _AgentRun(span, env, RUN_RECORDS.get()))
        else:
            async with McpSessions(self.node.name, served) as sessions:  # started once per node run
                outputs = await self._loop(model, messages, _AgentRun(span, env, RUN_RECORDS.get(), sessions))
        if memory is not None:  # saved with the thread only if the whole run succeeds
            memory.remember(node_key(self.node.name), messages[1:])
        return outputs

    async def _loop(self, model: Any, messages: list[dict[str, Any]], run: _AgentRun) -> dict[str, Any]:
        """Model turns and their tool calls until a valid answer or ``max_steps``."""
        span = run.span
        steps = 0
        tool_rails = {
            n: h for n, e in self.tool_decode.items() if (h := e.bind_tool(run.env, model, span)) is not None
        }
        try:
            for steps in range(1, self.max_steps + 1):
                generation = await self._chat(model, messages, span, steps, tool_rails or None)
                if generation.tool_calls:
                    messages.append(_assistant_calls(generation))
                    answers = await asyncio.gather(*(self._execute(c, run) for c in generation.tool_calls))
                    messages += [
                        {"role": "tool", "tool_call_id": call.id, "content": answer}
                        for call, answer in zip(generation.tool_calls, answers, strict=True)
                    ]
                    continue
                messages.append({"role": "assistant", "content": generation.text})
                try:
                    return self._answer(generation.text)
                except (NodeError, ValueValidationError) as exc:
                    problem = exc.cause if isinstance(exc, NodeError) else str(exc)
                    self.tracer.add_event(span, "workbench.agent.bad_answer", {"message": problem})
                    messages.append(
                        {
                            "role": "user",
                            "content": f"That answer is not valid: {problem}. Call a tool, or answer "
                            "again with only JSON that matches the schema.",
                        }
                    )
            raise NodeError(
                self.node.name,
                f"the agent gave no final answer within max_steps={self.max_steps} model turns "
                "(its transcript is on the run's invoke_agent span)",
            )
        finally:  # kept on success, failure and cancellation (a node timeout) alike
            span.attributes["workbench.agent.steps"] = steps
            span.attributes["workbench.agent.transcript"] = _json(messages)

    def _answer(self, text: str) -> dict[str, Any]:
        """The node's outputs from the final answer, checked against their types."""
        outputs = self.parse_outputs(text)
        return {port: typ.validate(outputs.get(port), port) for port, typ in self.node.outputs.items()}

    async def _chat(
        self, model: Any, messages: list[dict[str, Any]], parent: Span, step: int, tool_rails: Any = None
    ) -> Generation:
        """One model turn under its own ``chat`` span."""
        from workbench.models.base import GenerationRequest

        cfg = self.node.config
        span = self.tracer.start_span(
            f"chat {self._model_label()}",
            parent=parent,
            attributes={
                "openinference.span.kind": "LLM",
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": getattr(model, "name", self._model_label()),
                "workbench.agent.step": step,
            },
        )
        request = GenerationRequest(
            messages=list(messages),
            max_tokens=cfg.get("max_tokens", 256),
            temperature=float(cfg.get("temperature", 0.0)),
            seed=cfg.get("seed"),
            tools=self.offers,
            tool_choice="auto",
            tool_rails=tool_rails,
            on_token=self.token_sink(f"turn {step}"),  # a turn's text streams like an llm node's
        )
        try:
            with use_span(self.tracer, span):  # the HTTP call carries this turn's span (traceparent)
                generation = await self.generate(model, request, span)
        except BaseException as exc:
            self.tracer.end_span(span, status="ERROR", message=str(exc) or type(exc).__name__)
            raise
        span.attributes.update(
            {
                "gen_ai.response.model": getattr(model, "name", self._model_label()),
                "gen_ai.usage.input_tokens": generation.input_tokens,
                "gen_ai.usage.output_tokens": generation.output_tokens,
                "gen_ai.response.finish_reasons": generation.finish_reason,
                "gen_ai.completion": generation.text,
            }
        )
        if generation.tool_calls:
            span.attributes["workbench.agent.tool_calls"] = _json(
                [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in generation.tool_calls]
            )
        self.tracer.end_span(span)
        return generation

    # -- one tool call --------------------------------------------------------------------

    async def _execute(self, call: ToolCall, run: _AgentRun) -> str:
        """Check, approve and run one call under its ``execute_tool`` span; returns the tool message."""
        span = self.tracer.start_span(
            f"execute_tool {call.name}",
            parent=run.span,
            attributes={
                "openinference.span.kind": "TOOL",
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.type": "function",
                "gen_ai.tool.name": call.name,
                "gen_ai.tool.call.id": call.id,
                "gen_ai.tool.call.arguments": call.arguments,
            },
        )
        try:
            with use_span(self.tracer, span):  # current for the tool's code and its MCP request
                status, answer = await self._outcome(call, run, span)
        except asyncio.CancelledError:
            self.tracer.end_span(span, status="ERROR", message="cancelled")
            raise
        except NodeError as exc:  # an MCP server that died: the node fails
            self.tracer.end_span(span, status="ERROR", message=exc.cause)
            raise
        except Exception as exc:  # a bug of ours must not end the node: the model hears of it
            status, answer = "error", f"error: {type(exc).__name__}: {exc}"
        span.attributes["gen_ai.tool.call.result"] = answer
        span.attributes["workbench.agent.call.status"] = status
        if status != "ok":
            self.tracer.add_event(span, f"workbench.agent.{status}", {"message": answer})
        self.tracer.end_span(
            span, status="OK" if status == "ok" else "ERROR", message=None if status == "ok" else answer
        )
        return answer

    async def _outcome(self, call: ToolCall, run: _AgentRun, span: Span) -> tuple[str, str]:
        """``(status, tool message)``: ``ok`` or why the call did not run or failed."""
        if call.id in run.seen:
            return "duplicate", f"error: call id {call.id!r} was already handled; a call runs at most once"
        run.seen.add(call.id)
        tool = self.tools.get(call.name)
        if tool is None:
            return "unknown_tool", f"error: there is no tool '{call.name}' (tools: {', '.join(self.tools)})"
        try:
            raw = json.loads(call.arguments or "{}")
        except ValueError as exc:
            return (
                "bad_arguments",
                f"error: the arguments of '{call.name}' are not JSON ({exc}); send a JSON object",
            )
        refused, arguments = self._admit(tool, raw, run, span)
        if refused is not None:
            return refused
        if tool.spec.approve:
            decision = await self._decide(tool, call, arguments, run, span)
            if isinstance(decision, Deny):
                return "denied", f"denied: {decision.reason}"
            if isinstance(decision, Edit):
                span.attributes["workbench.agent.call.edited_arguments"] = _json(decision.arguments)
                refused, arguments = self._admit(tool, decision.arguments, run, span)
                if refused is not None:
                    return refused
        return await self._invoke(tool, arguments, run)

    def _admit(
        self, tool: _Tool, raw: Any, run: _AgentRun, span: Span
    ) -> tuple[tuple[str, str] | None, dict[str, Any]]:
        """The arguments checked against the tool's input types, then its rails."""
        if not isinstance(raw, Mapping):
            return ("bad_arguments", f"error: the arguments of '{tool.name}' must be a JSON object"), {}
        raw = with_defaults(tool.spec, raw)
        try:
            if tool.arguments is not None:
                arguments = tool.arguments.validate(raw, tool.name)
            elif raw:
                raise ValueValidationError(tool.name, f"'{tool.name}' takes no arguments")
            else:
                arguments = {}
        except ValueValidationError as exc:
            return ("bad_arguments", f"error: the arguments do not fit the tool's types: {exc}"), {}
        if not tool.rails or self.enforcer is None:
            return None, arguments
        records: list[RailRecord] = []
        port = f"{self.node.name}.{tool.name}"
        failures = self.enforcer.check(
            tool.rails, {**run.env, tool.name: arguments}, port, self.tracer, None, records
        )
        if run.records is not None:
            run.records.extend(records)
        for record in records:
            self._guardrail_span(span, record)
        blocking = [(rail, record) for rail, record in failures if rail.enforce != "observe"]
        if blocking:
            reasons = "; ".join(violation_message(record, rail.text) for rail, record in blocking)
            return ("refused", f"refused, the call did not run: {reasons}"), arguments
        return None, arguments

    def _guardrail_span(self, parent: Span, record: RailRecord) -> None:
        """An ``apply_guardrail`` span for one rail check of a call (its verdict as an event)."""
        span = self.tracer.start_span(
            f"apply_guardrail {record.name}",
            parent=parent,
            attributes={
                "openinference.span.kind": "GUARDRAIL",
                "gen_ai.operation.name": "apply_guardrail",
                "gen_ai.guardrail.name": record.name,
                "workbench.rail.name": record.name,
                "workbench.rail.port": record.port,
                "workbench.rail.verdict": record.verdict,
                "workbench.rail.enforce": record.enforce,
                "workbench.rail.us": record.us,
                "workbench.node.name": self.node.name,
            },
        )
        result: dict[str, Any] = {
            "gen_ai.guardrail.result": record.verdict,
            "gen_ai.guardrail.source": "tool_input",
        }
        if record.failed_atoms:
            result["gen_ai.guardrail.failed_atoms"] = list(record.failed_atoms)
        self.tracer.add_event(span, "gen_ai.guardrail.result", result)
        self.tracer.end_span(span, status="OK" if record.verdict == "pass" else "ERROR")

    async def _decide(
        self, tool: _Tool, call: ToolCall, arguments: dict[str, Any], run: _AgentRun, span: Span
    ) -> Decision:
        """The approver's decision on this exact call (one question at a time)."""
        if self.approver is None:
            decision: Any = Deny(
                "this call needs a human's approval and nobody was asked (pass approve= to the "
                "Executor, or --approve on the command line)"
            )
        else:
            async with run.approvals:
                try:
                    # A synchronous approver (input() at a terminal) runs on a thread: calls that
                    # need no approval go on meanwhile.
                    question = (self.node.name, tool.name, call.id, dict(arguments))
                    if inspect.iscoroutinefunction(self.approver):
                        decision = await self.approver(*question)
                    else:
                        decision = await asyncio.to_thread(self.approver, *question)
                    if inspect.isawaitable(decision):
                        decision = await decision
                except Exception as exc:
                    decision = Deny(f"the approver failed ({type(exc).__name__}: {exc})")
        if not isinstance(decision, Approve | Edit | Deny):
            decision = Deny(f"the approver answered {decision!r}, not Approve(), Edit(...) or Deny(...)")
        span.attributes["workbench.agent.approval"] = type(decision).__name__.lower()
        self.tracer.add_event(span, "workbench.agent.approval", {"decision": type(decision).__name__.lower()})
        return decision

    async def _invoke(self, tool: _Tool, arguments: dict[str, Any], run: _AgentRun) -> tuple[str, str]:
        """Run the tool under its timeout; its outputs, checked against their types, as JSON."""
        timeout = float(tool.spec.timeout or DEFAULT_TOOL_TIMEOUT)
        if tool.spec.mcp is not None:
            assert run.mcp is not None  # run() starts the servers of a node with MCP tools
            return await run.mcp.call(tool.spec.mcp, arguments, timeout)
        try:
            call = tool.fn(**arguments) if tool.is_async else run_in_pool(tool.fn, arguments)
            raw = await asyncio.wait_for(call, timeout)
        except TimeoutError:
            return "timeout", f"error: tool '{tool.name}' did not finish within {timeout:g} s"
        except Exception as exc:
            return "error", f"error: tool '{tool.name}' raised {type(exc).__name__}: {exc}"
        assert tool.outputs is not None  # tool_problems requires outputs of a declared tool
        try:
            outputs = tool.outputs.validate(raw, f"{tool.name} result")
        except ValueValidationError as exc:
            return (
                "bad_result",
                f"error: tool '{tool.name}' returned a value that does not fit its outputs: {exc}",
            )
        return "ok", _json(outputs)


def _assistant_calls(generation: Generation) -> dict[str, Any]:
    """The assistant message that asked for these calls, as the model must see it again."""
    return {
        "role": "assistant",
        "content": generation.text or None,
        "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in generation.tool_calls
        ],
    }


def _unused(**arguments: Any) -> Any:
    raise AssertionError("an MCP tool is called through its server")


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


register_runner("agent", AgentRunner)
