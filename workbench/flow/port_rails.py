"""A flow's rails as parsed rails-layer objects, each at its port with its visible names.

This is where flow files meet the rails language: ``rails:`` entries (rail text or a
pack template with ``use:``/``with:``), rail packs pulled in by ``use: [pii]`` whose
templates apply to every string field of every flow output, and nodes' ``guarantees``.
The runtime enforces the result; the verifier proves it.

Names visible at a port (docs/architecture.md): the value on the port (by port name), the node's
other ports (its inputs; for an output port also its other outputs), the flow's inputs
and the constants. Nearer names shadow farther ones. A rail on an agent's tool
(``on: desk.buy``) sees the call's arguments as a record named after the tool, the
node's inputs, the flow's inputs and the constants.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.errors import RailError, UsageError
from workbench.flow.agent_tools import agent_tool, arguments_type
from workbench.flow.model import Flow, PortRef, RailSpec
from workbench.types import List, Record, Str, Type

__all__ = ["FlowRail", "flow_rails", "scope_at"]


@dataclass(frozen=True)
class FlowRail:
    """One parsed rail at one port. ``kind``: ``rail``, ``pack`` or ``guarantee``."""

    name: str
    port: PortRef
    text: str
    enforce: str
    rail: Any  # workbench.rails.Rail
    kind: str = "rail"
    max_attempts: int | None = None

    @property
    def names(self) -> frozenset[str]:
        """The root names the rail reads."""
        return frozenset(self.rail.names)


def scope_at(flow: Flow, ref: PortRef) -> dict[str, Type]:
    """Names visible at port ``ref`` and their types, nearer ones shadowing farther ones."""
    names: dict[str, Type] = dict(flow.inputs)
    if ref.node is None:
        names.update(flow.outputs)
        return names
    node = flow.nodes[ref.node]
    names.update(node.inputs)
    tool = agent_tool(node, ref.port)
    if tool is not None:  # a rail on an agent's tool: the call's arguments, as a record
        arguments = arguments_type(tool)
        assert arguments is not None  # validation refuses rails on tools without arguments
        names[ref.port] = arguments
        return names
    if ref.port in node.outputs:
        names.update(node.outputs)
    port_type = node.port_type(ref.port)
    assert port_type is not None
    names[ref.port] = port_type
    return names


def _parse(flow: Flow, text: str, ref: PortRef, name: str) -> Any:
    from workbench.rails import Scope, parse_rail

    return parse_rail(text, Scope(scope_at(flow, ref), flow.constants), name=name)


def _template_text(spec: RailSpec) -> str:
    from workbench.rails.packs import load_pack

    pack_name, _, template = (spec.use or "").partition(".")
    try:
        return load_pack(pack_name).template(template).instantiate(spec.args)
    except UsageError as exc:
        raise RailError(f"rail '{spec.name}': {exc}") from None


def _str_leaves(typ: Type, path: str) -> list[str]:
    if isinstance(typ, Str):
        return [path]
    if isinstance(typ, Record):
        return [leaf for key, sub in typ.fields for leaf in _str_leaves(sub, f"{path}.{key}")]
    return []  # list items have no rail-language path: packs cannot reach into lists yet


def flow_rails(flow: Flow) -> list[FlowRail]:
    """Every rail of ``flow`` parsed at its port: ``rails:``, packs from ``use:``, guarantees.

    Raises ``RailError`` (naming the rail and the column) for rail text that does not
    parse or type-check.
    """
    out: list[FlowRail] = []
    for spec in flow.rails.values():
        text = spec.check if spec.check is not None else _template_text(spec)
        rail = _parse(flow, text, spec.on, spec.name)
        out.append(
            FlowRail(
                spec.name,
                spec.on,
                text,
                spec.enforce,
                rail,
                "pack" if spec.use else "rail",
                spec.max_attempts,
            )
        )
    out += _pack_rails(flow)
    for node in flow.nodes.values():
        if not node.guarantees or not node.outputs:
            continue
        ref = PortRef(node.name, next(iter(node.outputs)))
        for i, text in enumerate(node.guarantees):
            name = f"{node.name}.guarantees[{i}]"
            out.append(FlowRail(name, ref, text, "block", _parse(flow, text, ref, name), "guarantee"))
    return out


def _pack_rails(flow: Flow) -> list[FlowRail]:
    """Templates of packs in ``use:`` that apply to every string field of every flow output."""
    if not flow.use:
        return []
    from workbench.rails.packs import load_pack

    out = []
    for pack_name in flow.use:
        try:
            pack = load_pack(pack_name)
        except UsageError as exc:
            raise RailError(f"flow '{flow.name}': use: {exc}") from None
        for template in pack.templates:
            if template.applies_to != "each-str-leaf":
                continue
            for port, typ in flow.outputs.items():
                if isinstance(typ, List):
                    continue
                for leaf in _str_leaves(typ, port):
                    name = f"{pack.name}.{template.name}[{leaf}]"
                    text = template.instantiate({"text": leaf})
                    ref = PortRef(None, port)
                    out.append(FlowRail(name, ref, text, "block", _parse(flow, text, ref, name), "pack"))
    return out
