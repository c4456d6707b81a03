"""Composition of flows in the DisCoPy spirit: ``a >> b`` in sequence, ``a | b`` side by side.

``a >> b`` feeds a's outputs into b's inputs *by name*: the names must be the same and
each type must fit (the error names both ports and both types). ``a | b`` runs both
side by side: outputs must not clash; an input both share must have the same type and
is fed to both (the copy map). ``identity(ports)`` (in ``workbench.flow.model``) passes
its inputs through unchanged.

The results are flat flows (nodes of both sides, wires joined through the boundary), so
they save, validate and run like any other flow. Laws, checked by property tests:
``(a >> b) >> c == a >> (b >> c)``, ``identity >> a == a == a >> identity``, and the
interchange law ``(a >> b) | (c >> d) == (a | c) >> (b | d)`` where both sides exist.
Equality is exact when node names are distinct and up to the renaming of clashing nodes
otherwise (``n_2_2`` on one side, ``n_3`` on the other); both sides always compute the
same function. ``identity`` is a unit of composition, not a runnable flow on its own: its
inputs and outputs share names, which a runnable flow may not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from workbench.errors import FlowError
from workbench.flow.ports import PortRef, Wire

if TYPE_CHECKING:
    from workbench.flow.model import Flow

__all__ = ["parallel", "sequence"]


def _is_identity(flow: Flow) -> bool:
    return (
        not flow.nodes
        and not flow.rails
        and set(flow.inputs) == set(flow.outputs)
        and len(flow.wires) == len(flow.outputs)
        and all(
            w.source.node is None and w.target.node is None and w.source.port == w.target.port
            for w in flow.wires
        )
    )


def _merge_named(
    a: Mapping[str, Any], b: Mapping[str, Any], what: str, names: tuple[str, str]
) -> dict[str, Any]:
    out = dict(a)
    for key, value in b.items():
        if key in out and out[key] != value:
            raise FlowError(
                f"cannot compose '{names[0]}' with '{names[1]}': both define {what} '{key}' differently"
            )
        out[key] = value
    return out


def _fresh(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    i = 2
    while f"{name}_{i}" in taken:
        i += 1
    return f"{name}_{i}"


class _Builder:
    """Accumulates the nodes, wires and rails of a composite, renaming clashing nodes."""

    def __init__(self, left: Flow, right: Flow, name: str) -> None:
        names = (left.name, right.name)
        # type(left): the Flow class, without importing the module that imports this one.
        self.flow = type(left)(
            name,
            types=_merge_named(left.types, right.types, "type", names),
            constants=_merge_named(left.constants, right.constants, "constant", names),
            models=_merge_named(left.models, right.models, "model", names),
            use=list(dict.fromkeys(left.use + right.use)),
        )

    def add_nodes(self, flow: Flow) -> dict[str, str]:
        renames = {}
        for node in flow.nodes.values():
            new = _fresh(node.name, set(self.flow.nodes))
            renames[node.name] = new
            self.flow.nodes[new] = dataclasses.replace(
                node, name=new, config=dict(node.config), guarantees=list(node.guarantees)
            )
        return renames

    def add_rails(self, flow: Flow, renames: dict[str, str]) -> None:
        for rail in flow.rails.values():
            if rail.on.node is None:
                raise FlowError(
                    f"cannot compose '{flow.name}': rail '{rail.name}' sits on its boundary port "
                    f"'{rail.on}'; attach it to a node port first"
                )
            new = _fresh(rail.name, set(self.flow.rails))
            on = PortRef(renames[rail.on.node], rail.on.port)
            self.flow.rails[new] = dataclasses.replace(rail, name=new, on=on)


def _rename(ref: PortRef, renames: dict[str, str]) -> PortRef:
    return ref if ref.node is None else PortRef(renames[ref.node], ref.port)


def sequence(a: Flow, b: Flow) -> Flow:
    """``a >> b``: a's outputs feed b's inputs of the same names."""
    if set(a.outputs) != set(b.inputs):
        raise FlowError(
            f"cannot compose '{a.name}' >> '{b.name}': outputs of '{a.name}' "
            f"({', '.join(a.outputs) or 'none'}) are not the inputs of '{b.name}' "
            f"({', '.join(b.inputs) or 'none'})"
        )
    for port, source_type in a.outputs.items():
        reason = b.inputs[port].accepts(source_type)
        if reason is not None:
            raise FlowError(
                f"cannot compose '{a.name}' >> '{b.name}': {a.name}.{port} is {source_type.describe()} "
                f"but {b.name}.{port} is {b.inputs[port].describe()} ({reason})"
            )
    if _is_identity(b) and all(b.outputs[p] == t for p, t in a.outputs.items()):
        return a.copy()
    if _is_identity(a) and all(a.inputs[p] == t for p, t in b.inputs.items()):
        return b.copy()
    builder = _Builder(a, b, f"{a.name} >> {b.name}")
    flow = builder.flow
    flow.inputs, flow.outputs = dict(a.inputs), dict(b.outputs)
    left = builder.add_nodes(a)
    right = builder.add_nodes(b)
    # Where each of a's outputs comes from, inside a (a flow input or a node output).
    boundary = {w.target.port: _rename(w.source, left) for w in a.wires if w.target.node is None}
    for wire in a.wires:
        if wire.target.node is not None:
            flow.wires.append(Wire(_rename(wire.source, left), _rename(wire.target, left)))
    for wire in b.wires:
        if wire.source.node is None and wire.source.port not in boundary:
            raise FlowError(
                f"cannot compose '{a.name}' >> '{b.name}': output '{wire.source.port}' of '{a.name}' "
                "is not connected"
            )
        source = boundary[wire.source.port] if wire.source.node is None else _rename(wire.source, right)
        flow.wires.append(Wire(source, _rename(wire.target, right)))
    builder.add_rails(a, left)
    builder.add_rails(b, right)
    return flow


def parallel(a: Flow, b: Flow) -> Flow:
    """``a | b``: both side by side; shared inputs (same type) feed both, outputs must differ."""
    clash = sorted(set(a.outputs) & set(b.outputs))
    if clash:
        raise FlowError(f"cannot compose '{a.name}' | '{b.name}': both have an output named '{clash[0]}'")
    for port in sorted(set(a.inputs) & set(b.inputs)):
        if a.inputs[port] != b.inputs[port]:
            raise FlowError(
                f"cannot compose '{a.name}' | '{b.name}': shared input '{port}' is "
                f"{a.inputs[port].describe()} in '{a.name}' but {b.inputs[port].describe()} in '{b.name}'"
            )
    for port in sorted((set(a.inputs) & set(b.outputs)) | (set(a.outputs) & set(b.inputs))):
        raise FlowError(
            f"cannot compose '{a.name}' | '{b.name}': '{port}' is an input of one and an output of the other"
        )
    builder = _Builder(a, b, f"{a.name} | {b.name}")
    flow = builder.flow
    flow.inputs = {**a.inputs, **b.inputs}
    flow.outputs = {**a.outputs, **b.outputs}
    for side in (a, b):
        renames = builder.add_nodes(side)
        flow.wires += [Wire(_rename(w.source, renames), _rename(w.target, renames)) for w in side.wires]
        builder.add_rails(side, renames)
    return flow
