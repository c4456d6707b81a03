"""The flow data model: ``Flow``, ``Node``, ``Wire``, ``PortRef`` and ``RailSpec``.

A flow is typed boxes (nodes) and wires between their ports. Wires run from a *source*
(a flow input or a node output) to a *target* (a node input or a flow output); a source
may fan out, a target takes exactly one wire. Everything here is plain data: loading,
saving, validation, composition and execution live in their own modules.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import FlowError
from workbench.flow.compose import parallel, sequence
from workbench.flow.ports import PortRef, Wire
from workbench.types import Type, as_type

__all__ = ["ENFORCE_MODES", "Flow", "Node", "PortRef", "RailSpec", "Wire"]

ENFORCE_MODES = ("block", "repair", "decode", "observe")


@dataclass(frozen=True)
class RailSpec:
    """A rail as written in a flow file: where it sits, what it checks, how it is enforced.

    ``check`` is rail text; or ``use`` names a rail pack template (``finance.notional_cap``)
    instantiated with ``args`` (docs/rails.md, "Rail packs").
    """

    name: str
    on: PortRef
    check: str | None = None
    enforce: str = "block"
    max_attempts: int | None = None  # for enforce: repair
    use: str | None = None
    args: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.enforce not in ENFORCE_MODES:
            raise FlowError(
                f"rail '{self.name}': enforce must be one of {', '.join(ENFORCE_MODES)}, got {self.enforce!r}"
            )
        if (self.check is None) == (self.use is None):
            raise FlowError(f"rail '{self.name}': give either check (rail text) or use (a pack template)")
        if self.check is not None and (not isinstance(self.check, str) or not self.check.strip()):
            raise FlowError(f"rail '{self.name}': check must be a non-empty rail expression")
        if self.use is not None and (not isinstance(self.use, str) or self.use.count(".") != 1):
            raise FlowError(f"rail '{self.name}': use must name a pack template as 'pack.rail'")


def _types(ports: Mapping[str, Any] | None) -> dict[str, Type]:
    return {str(k): as_type(v) for k, v in (ports or {}).items()}


@dataclass
class Node:
    """A typed box. ``config`` holds the kind-specific keys (``tool``, ``prompt``, ``routes``...).

    ``fn`` optionally carries the Python callable of a tool node built in Python; it is
    never written to files (``config["tool"]`` is) and is trusted because the caller
    handed it over.
    """

    name: str
    kind: str
    inputs: dict[str, Type] = field(default_factory=dict)
    outputs: dict[str, Type] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    guarantees: list[str] = field(default_factory=list)
    timeout: float | None = None
    retries: int = 0
    fn: Callable[..., Any] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.inputs = _types(self.inputs)
        self.outputs = _types(self.outputs)

    def port_type(self, port: str) -> Type | None:
        """The type of input or output ``port``, or ``None`` if there is none."""
        return self.inputs.get(port) or self.outputs.get(port)

    # -- constructors for Python-built flows ---------------------------------------------

    @classmethod
    def tool(
        cls,
        name: str,
        fn: str | Callable[..., Any],
        *,
        inputs: Mapping[str, Any],
        outputs: Mapping[str, Any],
        **extra: Any,
    ) -> Node:
        """A ``tool`` node calling ``fn`` (a callable or ``"module:function"``)."""
        ref = fn if isinstance(fn, str) else f"{fn.__module__}:{fn.__qualname__}"
        return cls(
            name,
            "tool",
            dict(inputs),
            dict(outputs),
            config={"tool": ref},
            fn=None if isinstance(fn, str) else fn,
            **extra,
        )

    @classmethod
    def llm(
        cls,
        name: str,
        prompt: str,
        *,
        inputs: Mapping[str, Any],
        outputs: Mapping[str, Any],
        model: Any = "default",
        **extra: Any,
    ) -> Node:
        """An ``llm`` node rendering ``prompt`` (Jinja2) and asking ``model`` for the outputs."""
        return cls(
            name, "llm", dict(inputs), dict(outputs), config={"model": model, "prompt": prompt}, **extra
        )


@dataclass
class Flow:
    """A typed flow: inputs, outputs, nodes, wires and rails (docs/architecture.md, "Flow files").

    Build one in Python::

        flow = Flow("greet", inputs={"name": str}, outputs={"text": str})
        flow.add(Node.tool("hello", "workbench.examples.text:greet",
                           inputs={"name": str}, outputs={"text": str}))
        flow.connect("name", "hello.name").connect("hello.text", "text")

    or load one with ``workbench.flow.load``. ``a >> b`` and ``a | b`` compose flows.
    """

    name: str
    inputs: dict[str, Type] = field(default_factory=dict)
    outputs: dict[str, Type] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)
    wires: list[Wire] = field(default_factory=list)
    rails: dict[str, RailSpec] = field(default_factory=dict)
    types: dict[str, Type] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)
    use: list[str] = field(default_factory=list)
    version: int = 1
    description: str | None = None
    # Where a sub-flow was loaded from, as written in its parent file; saving writes it back.
    origin: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.inputs = _types(self.inputs)
        self.outputs = _types(self.outputs)

    # -- building -------------------------------------------------------------------------

    def add(self, *nodes: Node) -> Flow:
        """Add nodes (a duplicate name is an error); returns the flow for chaining."""
        for node in nodes:
            if node.name in self.nodes:
                raise FlowError(f"flow '{self.name}': duplicate node name '{node.name}'")
            self.nodes[node.name] = node
        return self

    def connect(self, source: str | PortRef, target: str | PortRef) -> Flow:
        """Add a wire ``source -> target``; returns the flow for chaining."""
        src = source if isinstance(source, PortRef) else PortRef.parse(source)
        dst = target if isinstance(target, PortRef) else PortRef.parse(target)
        self.wires.append(Wire(src, dst))
        return self

    def add_rail(self, name: str, on: str, check: str, enforce: str = "block", **extra: Any) -> Flow:
        """Attach a rail to port ``on``; returns the flow for chaining."""
        if name in self.rails:
            raise FlowError(f"flow '{self.name}': duplicate rail name '{name}'")
        self.rails[name] = RailSpec(name, PortRef.parse(on), check, enforce, **extra)
        return self

    # -- queries --------------------------------------------------------------------------

    def source_type(self, ref: PortRef) -> Type | None:
        """Type of a wire source (flow input or node output), ``None`` if it does not exist."""
        if ref.node is None:
            return self.inputs.get(ref.port)
        node = self.nodes.get(ref.node)
        return node.outputs.get(ref.port) if node else None

    def target_type(self, ref: PortRef) -> Type | None:
        """Type of a wire target (node input or flow output), ``None`` if it does not exist."""
        if ref.node is None:
            return self.outputs.get(ref.port)
        node = self.nodes.get(ref.node)
        return node.inputs.get(ref.port) if node else None

    def incoming(self) -> dict[PortRef, Wire]:
        """The wire feeding each target (the last one if a target is wired twice)."""
        return {w.target: w for w in self.wires}

    def copy(self) -> Flow:
        """A deep-enough copy: nodes, wires and rails may be changed without touching this one."""
        return dataclasses.replace(
            self,
            inputs=dict(self.inputs),
            outputs=dict(self.outputs),
            nodes={
                k: dataclasses.replace(n, config=dict(n.config), guarantees=list(n.guarantees))
                for k, n in self.nodes.items()
            },
            wires=list(self.wires),
            rails=dict(self.rails),
            types=dict(self.types),
            constants=dict(self.constants),
            models=dict(self.models),
            use=list(self.use),
        )

    def as_node(self, name: str | None = None) -> Node:
        """This flow as one node of kind ``flow``; its outer ports are its inputs/outputs."""
        return Node(name or self.name, "flow", dict(self.inputs), dict(self.outputs), config={"flow": self})

    # -- composition (workbench.flow.compose does the work) -------------------------------

    def __rshift__(self, other: Flow) -> Flow:
        return sequence(self, other)

    def __or__(self, other: Flow) -> Flow:
        return parallel(self, other)

    __matmul__ = __or__


def identity(ports: Mapping[str, Any], name: str = "id") -> Flow:
    """The flow that passes each input to the output of the same name (the unit of ``>>``)."""
    types = {k: as_type(v) for k, v in ports.items()}
    flow = Flow(name, inputs=dict(types), outputs=dict(types))
    for port in types:
        flow.connect(PortRef(None, port), PortRef(None, port))
    return flow
