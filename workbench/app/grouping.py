"""Group selected nodes of a flow into one sub-flow node (the canvas's "Group").

The sub-flow holds the selected nodes and the wires between them. Its ports are the values
that cross the group's boundary, typed as their sources: one input per outside source that
feeds a selected node, one output per selected node's output read outside. Inputs keep a
flow input's name, other ports are named ``node_port``. Nodes that read the run's inputs by
name (llm prompts, agents, loop conditions) see every flow input inside the group too.

Grouping must not change what the flow means nor what ``workbench check`` says, and
``workbench check`` does not look inside sub-flows (a sub-flow node is known by its port
types, like a tool). So a selection is refused, with the reason, when it holds rails or
guarantees, or a router (its branch condition is a fact the checker uses downstream), when
a value that may be skipped (a router's branch, a loop's item) would enter it (a sub-flow
node runs only once all its inputs have values), or when the grouped flow would be invalid
(a cycle through the group). ``group_flow`` also re-checks both flows and refuses if any
verdict differs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from workbench.errors import FlowError
from workbench.flow import Flow, Node, PortRef, Wire
from workbench.flow.validate import problems
from workbench.flow.verify import check_report
from workbench.types import List, Record, Type

__all__ = ["GroupRefused", "group_flow", "verdicts"]

# Kinds whose nodes read the run's inputs by name (prompt templates, conditions).
READS_FLOW_INPUTS = ("llm", "agent", "loop")


class GroupRefused(FlowError):
    """The selection cannot become one sub-flow node without changing the flow (says why)."""


def verdicts(report: dict[str, Any]) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """The verdicts of a ``check_report``: each rail's name, port, status and conflicts."""
    return sorted((r["name"], r["port"], r["status"], tuple(r["conflict_with"])) for r in report["rails"])


def _named_types(typ: Type, known: dict[str, Type], out: dict[str, Type]) -> None:
    """The ``types:`` entries that ``typ`` writes itself with (by name)."""
    if typ.name is not None and known.get(typ.name) == typ:
        out[typ.name] = typ
    if isinstance(typ, List):
        _named_types(typ.item, known, out)
    elif isinstance(typ, Record):
        for _, sub in typ.fields:
            _named_types(sub, known, out)


def _maybe_skipped(flow: Flow) -> set[PortRef]:
    """Sources that may carry no value: a router's branches, a loop's item, and what they feed.

    A node with a skipped input is skipped (its outputs too); votes and loops run anyway.
    """
    todo = [PortRef(n.name, p) for n in flow.nodes.values() if n.kind == "router" for p in n.outputs]
    todo += [PortRef(n.name, "item") for n in flow.nodes.values() if n.kind == "loop"]
    found: set[PortRef] = set(todo)
    while todo:
        source = todo.pop()
        for wire in flow.wires:
            node = flow.nodes.get(wire.target.node or "")
            if wire.source != source or node is None or node.kind in ("vote", "loop"):
                continue
            for port in node.outputs:
                ref = PortRef(node.name, port)
                if ref not in found:
                    found.add(ref)
                    todo.append(ref)
    return found


def _refusal(flow: Flow, chosen: list[str]) -> str | None:
    """Why ``chosen`` cannot be grouped as it stands, or None."""
    if not chosen:
        return "select the nodes to group first"
    missing = [n for n in chosen if n not in flow.nodes]
    if missing:
        return f"flow '{flow.name}' has no node {', '.join(repr(n) for n in missing)}"
    inside = set(chosen)
    rails = [f"rail {r.name} (on {r.on})" for r in flow.rails.values() if r.on.node in inside]
    rails += [f"the guarantees of {n}" for n in chosen if flow.nodes[n].guarantees]
    if rails:
        return (
            f"{', '.join(rails)} would move into the sub-flow, where `workbench check` does not "
            "look, and their verdicts would change: group nodes without rails"
        )
    routers = [n for n in chosen if flow.nodes[n].kind == "router"]
    if routers:
        return (
            f"router {', '.join(routers)}: the checker uses a router's branch condition on the "
            "branch downstream, and cannot see it inside a sub-flow"
        )
    skipped = _maybe_skipped(flow)
    entering = sorted(
        {str(w.source) for w in flow.wires if w.target.node in inside and w.source.node not in inside}
        & {str(s) for s in skipped}
    )
    if entering:
        return (
            f"{', '.join(entering)} may carry no value (a router's branch or a loop's item); a "
            "sub-flow node runs only once all its inputs have values, so the whole group would be "
            "skipped where only part of it was"
        )
    return None


def _unique(base: str, taken: set[str]) -> str:
    name, i = base, 2
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


def _split(flow: Flow, chosen: list[str], name: str) -> Flow:
    """``flow`` with ``chosen`` replaced by one sub-flow node ``name`` (no checks)."""
    inside = set(chosen)
    taken = set(flow.inputs) | set(flow.constants)
    in_names: dict[PortRef, str] = {}  # outside source -> sub-flow input
    out_names: dict[PortRef, str] = {}  # selected node's output -> sub-flow output
    for wire in flow.wires:
        src_in, dst_in = wire.source.node in inside, wire.target.node in inside
        if dst_in and not src_in and wire.source not in in_names:
            src = wire.source
            in_names[src] = src.port if src.node is None else _unique(f"{src.node}_{src.port}", taken)
        if src_in and not dst_in and wire.source not in out_names:
            out_names[wire.source] = _unique(f"{wire.source.node}_{wire.source.port}", taken)
    if any(flow.nodes[n].kind in READS_FLOW_INPUTS for n in chosen):
        for port in flow.inputs:
            in_names.setdefault(PortRef(None, port), port)

    def typed(names: dict[PortRef, str]) -> dict[str, Type]:
        out = {}
        for src, port in names.items():
            typ = flow.source_type(src)
            assert typ is not None, f"wire from {src}, which is no source"
            out[port] = typ
        return out

    copied = flow.copy().nodes  # the sub-flow's nodes are its own
    inner = Flow(name, typed(in_names), typed(out_names), {n: copied[n] for n in chosen})
    for wire in flow.wires:
        src_in, dst_in = wire.source.node in inside, wire.target.node in inside
        if src_in and dst_in:
            inner.wires.append(wire)
        elif dst_in:
            inner.wires.append(Wire(PortRef(None, in_names[wire.source]), wire.target))
    inner.wires += [Wire(src, PortRef(None, port)) for src, port in out_names.items()]
    used: dict[str, Type] = {}
    for typ in [*inner.inputs.values(), *inner.outputs.values()] + [
        t for n in inner.nodes.values() for t in (*n.inputs.values(), *n.outputs.values())
    ]:
        _named_types(typ, flow.types, used)
    agents = any(node.kind == "agent" for node in inner.nodes.values())
    inner.types = dict(flow.types) if agents else {k: t for k, t in flow.types.items() if k in used}
    if any(node.kind in READS_FLOW_INPUTS for node in inner.nodes.values()):
        inner.constants = dict(flow.constants)
    if any(node.kind in ("llm", "agent") for node in inner.nodes.values()):
        inner.models = dict(flow.models)

    group = Node(name, "flow", dict(inner.inputs), dict(inner.outputs), config={"flow": inner})
    out = flow.copy()
    first = min(list(flow.nodes).index(n) for n in chosen)
    kept = [(k, v) for k, v in out.nodes.items() if k not in inside]
    kept.insert(sum(1 for k in list(flow.nodes)[:first] if k not in inside), (name, group))
    out.nodes = dict(kept)
    wires: list[Wire] = []
    for wire in flow.wires:
        src_in, dst_in = wire.source.node in inside, wire.target.node in inside
        if src_in and dst_in:
            continue
        if dst_in:
            new = Wire(wire.source, PortRef(name, in_names[wire.source]))
        elif src_in:
            new = Wire(PortRef(name, out_names[wire.source]), wire.target)
        else:
            new = wire
        if new not in wires:
            wires.append(new)
    # Flow inputs read by name inside the group and wired to nothing selected.
    wires += [
        Wire(src, PortRef(name, port))
        for src, port in in_names.items()
        if Wire(src, PortRef(name, port)) not in wires
    ]
    out.wires = wires
    return out


def group_flow(flow: Flow, names: Iterable[str], name: str | None = None) -> tuple[Flow, str]:
    """``flow`` with the nodes ``names`` grouped into one sub-flow node; and that node's name.

    Raises ``GroupRefused`` (saying why) where grouping would change the flow's meaning,
    its validity or a verdict of ``workbench check``. ``flow`` itself is not changed.
    """
    names = list(names)
    chosen = [n for n in flow.nodes if n in set(names)] + [n for n in names if n not in flow.nodes]
    problem = _refusal(flow, chosen)
    if problem:
        raise GroupRefused(f"cannot group {', '.join(chosen) or 'nothing'}: {problem}")
    if name is None:
        i = 1
        while f"group{i}" in flow.nodes:
            i += 1
        name = f"group{i}"
    elif name in flow.nodes and name not in chosen:
        raise GroupRefused(f"flow '{flow.name}' already has a node '{name}'")
    grouped = _split(flow, chosen, name)
    if not problems(flow):
        after = problems(grouped)
        if after:
            raise GroupRefused(f"cannot group {', '.join(chosen)}: the flow would be invalid: {after[0]}")
        before_v, after_v = verdicts(check_report(flow)), verdicts(check_report(grouped))
        if before_v != after_v:
            changed = sorted({v[0] for v in set(before_v) ^ set(after_v)})
            raise GroupRefused(
                f"cannot group {', '.join(chosen)}: the verdicts of rail {', '.join(changed)} would change"
            )
    return grouped, name
