"""How each node kind runs. The flow layer knows kinds' shapes; this module runs them.

A runner is built once per node when an executor plans a flow, so per-run work is only
the call itself. ``inline`` runners are plain synchronous calls made directly on the
event loop (the fast path: no task, no thread: routers, votes, tools marked ``inline:
true``); the others are awaited as tasks, so independent branches and concurrent runs
overlap (synchronous tools run on a bounded worker pool, ``workbench.runtime.threads``).
``loop`` nodes are run by the executor itself, since they re-run part of the graph.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import re
from collections import Counter
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from workbench.errors import ModelUnavailable, NodeError
from workbench.flow.model import Flow, Node
from workbench.runtime.conditions import Condition, compile_condition
from workbench.runtime.decode import DecodeEnforcer
from workbench.runtime.replay import ANSWER_EVENT, REPLAYED, ModelAnswers, answer_event, node_key
from workbench.runtime.streaming import TokenSink
from workbench.runtime.threads import run_in_pool
from workbench.runtime.tools import resolve_tool
from workbench.runtime.trust import check_model_spec
from workbench.spans import NoopTracer
from workbench.types import Record

if TYPE_CHECKING:
    from workbench.models.base import Generation, GenerationRequest
    from workbench.spans import Span

__all__ = ["RUNNERS", "SKIPPED", "Runner", "register_runner"]


class _Skipped:
    """Marks a value that was never produced: an untaken router branch and what follows it."""

    _instance: _Skipped | None = None

    def __new__(cls) -> _Skipped:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "SKIPPED"


SKIPPED = _Skipped()


class Runner:
    """Runs one node. Subclasses set ``inline`` and implement ``run_sync`` or ``run``."""

    inline = False
    supports_repair = False

    def __init__(self, node: Node, flow: Flow, options: Mapping[str, Any]) -> None:
        self.node = node
        self.flow = flow
        self.options = options

    def span_name(self) -> str:
        """The span name, following the GenAI conventions where they have one."""
        return f"{self.node.kind} {self.node.name}"

    def attributes(self) -> dict[str, Any]:
        """Span attributes set when the node starts."""
        return {"openinference.span.kind": "CHAIN"}

    @property
    def ready(self) -> bool:
        """False while ``prepare`` has work to do before the node's span opens."""
        return True

    async def prepare(self, parent: Span) -> None:
        """One-time setup (loading a model), awaited before the node's span opens while not ``ready``.

        Its spans go under ``parent`` (the run's or the loop's span), beside the node's span, so
        the node's span times the call alone, and a node timeout does not count the setup.
        """

    def run_sync(self, inputs: dict[str, Any], span: Span, flow_inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Run inline on the event loop (only when ``inline``); ``flow_inputs`` are the run's inputs."""
        raise NotImplementedError

    async def run(
        self,
        inputs: dict[str, Any],
        span: Span,
        flow_inputs: Mapping[str, Any],
        feedback: list[dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        """Run as a task; ``feedback`` carries repair messages for llm nodes."""
        return self.run_sync(inputs, span, flow_inputs)

    def repair_messages(self, problem: str, span: Span) -> list[dict[str, str]]:
        """The ``feedback`` for another attempt after ``problem`` (when ``supports_repair``)."""
        raise NotImplementedError


RUNNERS: dict[str, type[Runner]] = {}


def register_runner(kind: str, runner: type[Runner]) -> None:
    """Register how nodes of ``kind`` run (pair with ``workbench.flow.register_kind``)."""
    RUNNERS[kind] = runner


class ToolRunner(Runner):
    """Calls a Python function with the node's inputs as keyword arguments."""

    def __init__(self, node: Node, flow: Flow, options: Mapping[str, Any]) -> None:
        super().__init__(node, flow, options)
        self.fn: Callable[..., Any] = resolve_tool(
            node, trust=bool(options.get("trust")), flow_name=flow.name
        )
        self.is_async = inspect.iscoroutinefunction(self.fn)
        # Sync tools run on the worker pool, so a slow one holds up neither the other branches
        # nor the other runs on the loop; ``inline: true`` calls a cheap pure function right
        # on the loop instead (no task, no thread: microseconds against tens to hundreds).
        self.inline = not self.is_async and node.config.get("inline") is True

    def span_name(self) -> str:
        return f"execute_tool {self.node.config['tool']}"

    def attributes(self) -> dict[str, Any]:
        return {
            "openinference.span.kind": "TOOL",
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": self.node.config["tool"],
        }

    def run_sync(self, inputs: dict[str, Any], span: Span, flow_inputs: Mapping[str, Any]) -> dict[str, Any]:
        return self.fn(**inputs)

    async def run(
        self,
        inputs: dict[str, Any],
        span: Span,
        flow_inputs: Mapping[str, Any],
        feedback: list[dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        if self.is_async:
            return await self.fn(**inputs)
        if self.inline:  # an inline tool with retries: the executor awaits it as a task
            return self.fn(**inputs)
        return await run_in_pool(self.fn, inputs)


def _flow_scope(flow: Flow) -> dict[str, Any]:
    return dict(flow.inputs)


class RouterRunner(Runner):
    """Forwards its one input to the first output whose condition holds (else ``default``)."""

    inline = True

    def __init__(self, node: Node, flow: Flow, options: Mapping[str, Any]) -> None:
        super().__init__(node, flow, options)
        ((self.port, in_type),) = node.inputs.items()
        scope = {**_flow_scope(flow), self.port: in_type}
        self.routes: list[tuple[str, Condition]] = [
            (out, compile_condition(cond, scope, flow.constants, f"{node.name}.routes.{out}"))
            for out, cond in node.config["routes"].items()
        ]
        self.default = node.config.get("default")

    def run_sync(self, inputs: dict[str, Any], span: Span, flow_inputs: Mapping[str, Any]) -> dict[str, Any]:
        env = {**flow_inputs, **inputs}
        chosen = next((out for out, cond in self.routes if cond(env)), self.default)
        if chosen is None:
            raise NodeError(self.node.name, "no route matched and there is no default")
        span.attributes["workbench.router.route"] = chosen
        value = inputs[self.port]
        return {out: value if out == chosen else SKIPPED for out in self.node.outputs}


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class VoteRunner(Runner):
    """Majority, plurality or quorum over its inputs; untaken branches abstain."""

    inline = True

    def run_sync(self, inputs: dict[str, Any], span: Span, flow_inputs: Mapping[str, Any]) -> dict[str, Any]:
        cfg = self.node.config
        rule, tie = cfg.get("rule", "majority"), cfg.get("tie", "fail")
        ballots = [v for v in inputs.values() if v is not SKIPPED]
        keys = [_key(v) for v in ballots]
        counts = Counter(keys)
        first_seen = {k: i for i, k in reversed(list(enumerate(keys)))}
        ranked = sorted(counts, key=lambda k: (-counts[k], first_seen[k]))
        span.attributes["workbench.vote.tally"] = json.dumps({k: counts[k] for k in ranked})
        (out,) = self.node.outputs
        winner = None
        if rule == "majority":
            if ranked and counts[ranked[0]] * 2 > len(inputs):
                winner = ranked[0]
        else:
            need = cfg.get("quorum", 1) if rule == "quorum" else 1
            leaders = (
                [k for k in ranked if counts[k] == counts[ranked[0]] and counts[k] >= need] if ranked else []
            )
            if len(leaders) > 1 and tie == "fail":
                raise NodeError(
                    self.node.name,
                    f"tie between {len(leaders)} values with {counts[leaders[0]]} votes each (tie: fail)",
                )
            winner = leaders[0] if leaders else None
        if winner is None:
            if cfg.get("no_winner", "fail") == "skip":
                return {out: SKIPPED}
            raise NodeError(
                self.node.name,
                f"no {rule} among {len(ballots)} votes of {len(inputs)} "
                f"(top value has {counts[ranked[0]] if ranked else 0})",
            )
        return {out: ballots[keys.index(winner)]}


class LlmRunner(Runner):
    """Renders the prompt, asks the node's model for JSON and parses it into the outputs."""

    supports_repair = True

    def __init__(self, node: Node, flow: Flow, options: Mapping[str, Any]) -> None:
        super().__init__(node, flow, options)
        from jinja2 import StrictUndefined
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        # Prompts come from flow files: render them in Jinja2's sandbox, the one that also
        # refuses to change lists and dicts (``{{ order.update(qty=0) }}``): the values a
        # prompt sees are the run's, checked by rails and read by other nodes.
        env = ImmutableSandboxedEnvironment(
            undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
        )
        try:
            self.template = env.from_string(node.config["prompt"])
            system = node.config.get("system")
            self.system = env.from_string(system) if system else None
        except Exception as exc:
            raise NodeError(node.name, f"the prompt is not a valid Jinja2 template: {exc}") from None
        self.model_spec = options.get("model") or node.config.get("model", "default")
        if not options.get("model") and not options.get("trust"):  # the spec comes from the flow
            check_model_spec(self.model_spec, flow.models, where=f"flow '{flow.name}', node '{node.name}'")
        self.single = len(node.outputs) == 1
        out_type = next(iter(node.outputs.values())) if self.single else Record(None, node.outputs)
        self.schema = out_type.to_json_schema()
        self._model: Any = None
        self.decode = DecodeEnforcer.for_node(node, options.get("enforcer"))
        # Replaying a recorded run: answers come from it, and no model is loaded unless asked.
        self.replay: ModelAnswers | None = options.get("replay")

    @property
    def ready(self) -> bool:
        """Whether the model is at hand (``prepare`` loaded it, it was passed in, or a replay needs none)."""
        return self._model is not None or self.replay is not None

    async def prepare(self, parent: Span) -> None:
        """Load the model before the node's span opens, traced as a ``workbench.model.load`` span.

        The span (under ``parent``) carries ``workbench.model.cached`` (another node or run of
        this process had loaded it), ``workbench.model.seconds`` (this wait) and what the model
        says of itself (checkpoint path, parameter count, dtype, device). The load runs in a
        worker thread, so other branches of the run go on meanwhile.
        """
        import asyncio

        from workbench.models.base import Model
        from workbench.models.registry import load_model

        if self._model is not None:
            return
        if isinstance(self.model_spec, Model):  # a backend object passed as model=
            self._model = self.model_spec
            return
        tracer = self.options.get("tracer") or NoopTracer()
        span = tracer.start_span(
            "workbench.model.load",
            parent=parent,
            attributes={
                "workbench.model.spec": _spec_text(self.model_spec),
                "workbench.model.node": self.node.name,
            },
        )
        try:
            loaded = await asyncio.to_thread(load_model, self.model_spec, self.flow.models)
        except BaseException as exc:
            tracer.end_span(span, status="ERROR", message=str(exc) or type(exc).__name__)
            if isinstance(exc, ModelUnavailable):
                raise ModelUnavailable(f"node '{self.node.name}': {exc}") from None
            raise
        describe = getattr(loaded.model, "describe", None)
        span.attributes.update(describe() if callable(describe) else {})
        span.attributes["workbench.model.cached"] = loaded.cached
        span.attributes["workbench.model.seconds"] = loaded.seconds
        tracer.end_span(span)
        self._model = loaded.model

    def model(self) -> Any:
        """The model backend, resolved on first use (so planning needs no weights).

        ``model=`` (executor option) may be a spec or an object implementing ``Model``. The
        executor loads it in ``prepare``; this is the untraced path for callers that do not.
        Replaying, a stand-in: ``generate`` takes the recorded answers.
        """
        if self.replay is not None:
            return REPLAYED
        return self._resolved()

    def _resolved(self) -> Any:
        """The real model backend (for a replay, the live model ``replay_live`` asks)."""
        if self._model is None:
            from workbench.models.base import Model
            from workbench.models.registry import resolve_model

            if isinstance(self.model_spec, Model):  # a backend object passed as model=
                self._model = self.model_spec
                return self._model
            try:
                self._model = resolve_model(self.model_spec, self.flow.models)
            except ModelUnavailable as exc:
                raise ModelUnavailable(f"node '{self.node.name}': {exc}") from None
        return self._model

    def span_name(self) -> str:
        spec = self.model_spec
        return f"chat {spec if isinstance(spec, str) else getattr(spec, 'name', None) or 'model'}"

    def attributes(self) -> dict[str, Any]:
        return {
            "openinference.span.kind": "LLM",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": getattr(self.model_spec, "name", None) or str(self.model_spec),
        }

    def messages(self, inputs: dict[str, Any], flow_inputs: Mapping[str, Any]) -> list[dict[str, str]]:
        """The chat messages for these inputs (system prompt first when the node has one)."""
        context = {**flow_inputs, **self.flow.constants, **inputs}
        try:
            messages = [{"role": "user", "content": self.template.render(**context)}]
            if self.system is not None:
                messages.insert(0, {"role": "system", "content": self.system.render(**context)})
        except Exception as exc:  # jinja2 raises several unrelated types
            raise NodeError(self.node.name, f"rendering the prompt failed: {exc}") from None
        return messages

    async def run(
        self,
        inputs: dict[str, Any],
        span: Span,
        flow_inputs: Mapping[str, Any],
        feedback: list[dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        from workbench.models.base import GenerationRequest

        model = self.model()
        cfg = self.node.config
        env = {**flow_inputs, **self.flow.constants, **inputs}
        attempt = 0
        while True:
            hook = self.decode.bind(env, model, span) if self.decode is not None else None
            temperature = float(cfg.get("temperature", 0.0))
            seed = cfg.get("seed")
            if attempt:  # a resample: greedy decoding would write the same answer again
                temperature, seed = max(temperature, 0.7), (seed or 0) + attempt
            call = f"attempt {attempt + 1} (resample)" if attempt else "repair" if feedback else "answer"
            request = GenerationRequest(
                messages=self.messages(inputs, flow_inputs) + list(feedback or []),
                max_tokens=cfg.get("max_tokens", 256),
                temperature=temperature,
                seed=seed,
                response_schema=self.schema,
                logprobs=self._traced(),  # a log-softmax per token, only wanted for decode steps
                decode_rails=hook,
                on_token=self.token_sink(call),
            )
            with self._profiled(span):
                generation = await self.generate(model, request, span)
            if self.decode is None or attempt + 1 >= self.decode.attempts:
                break
            try:
                broken = self.decode.broken(env, self.parse_outputs(generation.text))
            except NodeError:
                broken = ["(the answer did not parse)"]
            if not broken:
                break
            attempt += 1
            self._event(
                span,
                "workbench.decode.resample",
                {"workbench.decode.attempt": attempt, "workbench.decode.broken": ",".join(broken)},
            )
        self._record_decode_steps(model, generation, span, hook.steps if hook is not None else [])
        span.attributes.update(
            {
                "gen_ai.response.model": getattr(model, "name", str(self.model_spec)),
                "gen_ai.usage.input_tokens": generation.input_tokens,
                "gen_ai.usage.output_tokens": generation.output_tokens,
                "gen_ai.response.finish_reasons": generation.finish_reason,
            }
        )
        # The answer travels on the span: runs of one executor may overlap, so no runner state.
        span.attributes["gen_ai.completion"] = generation.text
        return self.parse_outputs(generation.text)

    async def generate(self, model: Any, request: GenerationRequest, span: Span) -> Generation:
        """One model call, or the recorded answer when replaying; kept as a ``workbench.model.answer``
        event on ``span`` (what a later replay of this run reads)."""
        try:
            if self.replay is not None:
                generation, info = await self.replay.answer(self.node.name, request, self._resolved)
                span.attributes.update(info)
            else:
                (generation,) = await model.generate([request])
        finally:
            if isinstance(request.on_token, TokenSink):
                request.on_token.drain()  # every piece is heard before the answer is used
        if isinstance(request.on_token, TokenSink):  # a recorded answer comes as one piece
            request.on_token.whole(generation.text)
        if self._traced():
            self.options["tracer"].add_event(
                span, ANSWER_EVENT, answer_event(node_key(self.node.name), request, generation)
            )
        return generation

    def token_sink(self, start: str) -> TokenSink | None:
        """The ``on_token`` of one model call of this node when the run listens (``on_token=``
        executor option), announcing the call as ``start``; None (no cost) when it does not."""
        listener = self.options.get("on_token")
        return None if listener is None else TokenSink(listener, node_key(self.node.name), start)

    def _event(self, span: Span, name: str, attributes: dict[str, Any]) -> None:
        if self._traced():
            self.options["tracer"].add_event(span, name, attributes)

    def parse_outputs(self, text: str) -> dict[str, Any]:
        """The node's outputs from the model's JSON answer (a single output is the whole answer)."""
        value = parse_json_answer(self.node.name, text)
        if self.single:
            return {next(iter(self.node.outputs)): value}
        if not isinstance(value, dict):
            raise NodeError(self.node.name, f"expected a JSON object with keys {list(self.node.outputs)}")
        return value

    def _profiled(self, span: Span) -> contextlib.AbstractContextManager[None]:
        """A torch.profiler window around the model call when the run asks for kernel spans."""
        wanted = self.options.get("profile_kernels")
        tracer = self.options.get("tracer")
        if not wanted or tracer is None:
            return contextlib.nullcontext()
        from workbench.profiling import kernel_profile

        return kernel_profile(tracer, span, **(dict(wanted) if isinstance(wanted, Mapping) else {}))

    def _traced(self) -> bool:
        """Whether this run's spans are kept anywhere (the no-op tracer discards them)."""
        tracer = self.options.get("tracer")
        return tracer is not None and type(tracer) is not NoopTracer

    def _record_decode_steps(self, model: Any, generation: Any, span: Span, steps: list[Any]) -> None:
        """One ``workbench.decode.step`` event per generated token (the trace store's decode_steps);
        with decode rails, also the tokens the grammar allowed, those left after the rails, the
        rails that narrowed it and the first tokens they removed."""
        if not self._traced() or not generation.token_ids:
            return
        tracer = self.options["tracer"]
        tokenizer = getattr(model, "tokenizer", None)
        if tokenizer is not None and getattr(tokenizer, "vocab_size", None):
            span.attributes["workbench.decode.vocab_size"] = int(tokenizer.vocab_size)  # for shares
        logprobs = generation.logprobs or []
        # With decode rails the constraint has already built the text of every token (cached):
        # the tokens they removed are looked up there, not decoded one call each.
        pieces: tuple[str, ...] = ()
        if steps and tokenizer is not None:
            from workbench.decoding.vocab import token_table  # numpy: only runs with decode rails

            pieces = token_table(tokenizer).pieces
        for step, token_id in enumerate(generation.token_ids):
            attributes: dict[str, Any] = {
                "workbench.decode.step": step,
                "workbench.decode.token_id": token_id,
            }
            if tokenizer is not None:
                attributes["workbench.decode.token"] = tokenizer.decode([token_id])
            if step < len(logprobs):
                attributes["workbench.decode.logprob"] = logprobs[step]
            if step < len(steps):
                attributes["workbench.decode.allowed"] = steps[step].allowed
                attributes["workbench.decode.schema_allowed"] = steps[step].schema_allowed
                if steps[step].rails:
                    attributes["workbench.decode.rails"] = ",".join(steps[step].rails)
                if steps[step].removed and tokenizer is not None:
                    attributes["workbench.decode.removed"] = [
                        pieces[t] if t < len(pieces) else tokenizer.decode([t]) for t in steps[step].removed
                    ]
            tracer.add_event(span, "workbench.decode.step", attributes)

    def repair_messages(self, problem: str, span: Span) -> list[dict[str, str]]:
        """Messages that show the model its last answer and what was wrong with it."""
        return [
            {"role": "assistant", "content": str(span.attributes.get("gen_ai.completion", ""))},
            {
                "role": "user",
                "content": f"That answer breaks a rule: {problem}. Answer again with JSON that satisfies it.",
            },
        ]


def _spec_text(spec: Any) -> str:
    """A model spec as span text: JSON for a mapping, the name for a string."""
    return spec if isinstance(spec, str) else json.dumps(spec, sort_keys=True, default=str)


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


def parse_json_answer(node: str, text: str) -> Any:
    """Parse a model's JSON answer (tolerating a Markdown code fence around it)."""
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    if fenced:
        stripped = fenced.group(1)
    try:
        return json.loads(stripped)
    except ValueError as exc:  # a JSONDecodeError, or a number too long for int()
        shown = stripped if len(stripped) <= 120 else stripped[:117] + "..."
        why = f"{exc.msg} at char {exc.pos}" if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise NodeError(node, f"the model's answer is not valid JSON ({why}): {shown!r}") from None


register_runner("tool", ToolRunner)
register_runner("router", RouterRunner)
register_runner("vote", VoteRunner)
register_runner("llm", LlmRunner)
