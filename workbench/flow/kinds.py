"""The node-kind registry: which kinds exist, which keys each takes, what each requires.

The flow layer knows a kind's *shape* (its config keys and port rules); the runtime
registers how to *run* it (``workbench.runtime.nodes``). A new kind registers both::

    register_kind(KindSpec("echo", required=(), optional=("times",), check=my_check))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.flow.agent_tools import tool_problems

if TYPE_CHECKING:
    from workbench.flow.model import Flow, Node

__all__ = ["KINDS", "KindSpec", "register_kind"]


@dataclass(frozen=True)
class KindSpec:
    """A node kind's shape: config keys (in canonical save order) and a port/config check."""

    name: str
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    check: Callable[[Node, Flow], list[str]] | None = None
    description: str = ""

    @property
    def keys(self) -> tuple[str, ...]:
        """All config keys in the order they are saved."""
        return self.required + self.optional


KINDS: dict[str, KindSpec] = {}


def register_kind(spec: KindSpec) -> None:
    """Register (or replace) a node kind."""
    KINDS[spec.name] = spec


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_tool(node: Node, flow: Flow) -> list[str]:
    ref = node.config.get("tool")
    if not isinstance(ref, str) or ref.count(":") != 1 or not all(ref.split(":")):
        return [f"node '{node.name}': tool must be 'module:function', got {ref!r}"]
    for key in ("blocking", "inline"):
        if key in node.config and not isinstance(node.config[key], bool):
            return [f"node '{node.name}': {key} must be true or false"]
    if node.config.get("inline") is True:
        if node.config.get("blocking") is True:
            return [f"node '{node.name}': a tool is either inline (on the event loop) or blocking, not both"]
        if node.timeout is not None:
            return [
                f"node '{node.name}': an inline tool cannot have a timeout (nothing can interrupt a call "
                "on the event loop); drop inline: true to run it on the worker pool"
            ]
    return []


def _check_llm(node: Node, flow: Flow, what: str = "an llm node") -> list[str]:
    errors = []
    if not isinstance(node.config.get("prompt"), str):
        errors.append(f"node '{node.name}': {what} needs 'prompt', a string (a Jinja2 template)")
    if not node.outputs:
        errors.append(f"node '{node.name}': {what} needs at least one output port")
    temperature = node.config.get("temperature", 0.0)
    if not _is_number(temperature) or temperature < 0:
        errors.append(f"node '{node.name}': temperature must be a number >= 0")
    max_tokens = node.config.get("max_tokens", 1)
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        errors.append(f"node '{node.name}': max_tokens must be a positive integer")
    return errors


def _check_agent(node: Node, flow: Flow) -> list[str]:
    errors = _check_llm(node, flow, "an agent")
    max_steps = node.config.get("max_steps", 1)
    if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
        errors.append(f"node '{node.name}': max_steps must be a positive integer (model turns)")
    if node.retries:
        errors.append(
            f"node '{node.name}': an agent cannot have retries (a retry would repeat its tool calls); "
            "drop retries"
        )
    return errors + tool_problems(node)


def _check_router(node: Node, flow: Flow) -> list[str]:
    errors = []
    if len(node.inputs) != 1:
        errors.append(f"node '{node.name}': a router takes exactly one input port, has {len(node.inputs)}")
    routes = node.config.get("routes")
    if not isinstance(routes, dict) or not routes:
        return [*errors, f"node '{node.name}': routes must map output ports to conditions"]
    for port, cond in routes.items():
        if port not in node.outputs:
            errors.append(f"node '{node.name}': route '{port}' is not an output port")
        if not isinstance(cond, str):
            errors.append(f"node '{node.name}': the condition of route '{port}' must be a string")
    default = node.config.get("default")
    if default is not None and (not isinstance(default, str) or default not in node.outputs):
        errors.append(f"node '{node.name}': default route '{default}' is not an output port")
    if len(node.inputs) == 1:
        (in_type,) = node.inputs.values()
        for port, typ in node.outputs.items():
            reason = typ.accepts(in_type)
            if reason:
                errors.append(
                    f"node '{node.name}': output '{port}' ({typ.describe()}) cannot carry the input "
                    f"({in_type.describe()}): {reason}"
                )
    return errors


VOTE_RULES = ("majority", "plurality", "quorum")


def _check_vote(node: Node, flow: Flow) -> list[str]:
    errors = []
    if len(node.inputs) < 2:
        errors.append(f"node '{node.name}': a vote needs at least two input ports")
    if len(node.outputs) != 1:
        errors.append(f"node '{node.name}': a vote has exactly one output port, has {len(node.outputs)}")
    rule = node.config.get("rule", "majority")
    if rule not in VOTE_RULES:
        errors.append(f"node '{node.name}': rule must be one of {', '.join(VOTE_RULES)}, got {rule!r}")
    quorum = node.config.get("quorum")
    if rule == "quorum" and (
        not isinstance(quorum, int) or isinstance(quorum, bool) or not 1 <= quorum <= len(node.inputs)
    ):
        errors.append(f"node '{node.name}': quorum must be an integer between 1 and {len(node.inputs)}")
    if node.config.get("tie", "fail") not in ("fail", "first"):
        errors.append(f"node '{node.name}': tie must be 'fail' or 'first'")
    if node.config.get("no_winner", "fail") not in ("fail", "skip"):
        errors.append(f"node '{node.name}': no_winner must be 'fail' or 'skip'")
    if len(node.outputs) == 1:
        (out_type,) = node.outputs.values()
        for port, typ in node.inputs.items():
            reason = out_type.accepts(typ)
            if reason:
                errors.append(f"node '{node.name}': input '{port}' cannot be the output: {reason}")
    return errors


def _check_loop(node: Node, flow: Flow) -> list[str]:
    errors = []
    if set(node.inputs) != {"init", "next"} or set(node.outputs) != {"item", "result"}:
        errors.append(
            f"node '{node.name}': a loop has inputs 'init' and 'next' and outputs 'item' and 'result'"
        )
    max_iter = node.config.get("max_iterations")
    if not isinstance(max_iter, int) or isinstance(max_iter, bool) or max_iter < 1:
        errors.append(f"node '{node.name}': max_iterations must be a positive integer")
    until = node.config.get("until")
    if until is not None and not isinstance(until, str):
        errors.append(f"node '{node.name}': until must be a condition string")
    if not errors:
        for out in ("item", "result"):
            for inp in ("init", "next"):
                reason = node.outputs[out].accepts(node.inputs[inp])
                if reason:
                    errors.append(f"node '{node.name}': '{inp}' cannot flow to '{out}': {reason}")
    return errors


def _check_flow(node: Node, flow: Flow) -> list[str]:
    """Ports of a sub-flow node against the sub-flow's; ``validate`` checks the sub-flow itself."""
    inner = node.config.get("flow")
    if not isinstance(inner, type(flow)):
        return [f"node '{node.name}': flow must be a flow (a file path or an inline mapping)"]
    errors = []
    for side, mine, theirs in (("input", node.inputs, inner.inputs), ("output", node.outputs, inner.outputs)):
        if set(mine) != set(theirs):
            errors.append(
                f"node '{node.name}': {side} ports {sorted(mine)} are not the sub-flow's {sorted(theirs)}"
            )
    return errors


register_kind(KindSpec("tool", ("tool",), ("blocking", "inline"), _check_tool, "call a Python function"))
register_kind(
    KindSpec(
        "llm",
        (),
        ("model", "prompt", "system", "temperature", "max_tokens", "seed"),
        _check_llm,
        "ask a model for typed outputs",
    )
)
register_kind(
    KindSpec(
        "agent",
        (),  # prompt and tools are required: _check_agent says so, keeping this save order
        ("model", "prompt", "system", "max_steps", "temperature", "max_tokens", "seed", "tools"),
        _check_agent,
        "a model that calls typed tools, each call checked by rails, until it gives typed outputs",
    )
)
register_kind(
    KindSpec(
        "router",
        ("routes",),
        ("default",),
        _check_router,
        "forward the input to the first output whose condition holds",
    )
)
register_kind(
    KindSpec(
        "vote", (), ("rule", "quorum", "tie", "no_winner"), _check_vote, "pick the value most inputs agree on"
    )
)
register_kind(
    KindSpec(
        "loop",
        ("max_iterations",),
        ("until",),
        _check_loop,
        "bounded feedback: re-run the body until a condition or the bound",
    )
)
register_kind(KindSpec("flow", ("flow",), (), _check_flow, "a sub-flow used as one node"))
