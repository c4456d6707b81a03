"""The shape of a flow as a graph: dependency order, cycles, and the bodies of loops.

A ``loop`` node L closes a cycle on purpose: the wire into ``L.next`` is a *back edge*
and is left out of the dependency graph. Every other cycle is an error. The *body* of L
is the set of nodes that run once per iteration: reachable from ``L.item`` and reaching
``L.next``. Values made in a body stay in it (they exist once per iteration); only
``L.result`` leaves.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from workbench.flow.model import Flow, PortRef, Wire

__all__ = ["FlowGraph", "analyse"]


@dataclass
class FlowGraph:
    """Dependencies between nodes with loop back edges removed, plus each loop's body."""

    order: list[str]
    preds: dict[str, set[str]]
    succs: dict[str, set[str]]
    back_edges: list[Wire] = field(default_factory=list)
    loop_bodies: dict[str, set[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def _is_back_edge(flow: Flow, wire: Wire) -> bool:
    node = flow.nodes.get(wire.target.node or "")
    return node is not None and node.kind == "loop" and wire.target.port == "next"


def analyse(flow: Flow) -> FlowGraph:
    """Build the dependency graph; problems (cycles, leaking loop bodies) go to ``errors``."""
    preds: dict[str, set[str]] = {name: set() for name in flow.nodes}
    succs: dict[str, set[str]] = {name: set() for name in flow.nodes}
    back: list[Wire] = []
    for wire in flow.wires:
        src, dst = wire.source.node, wire.target.node
        if src not in flow.nodes or dst not in flow.nodes:
            continue  # flow inputs/outputs and broken references (reported elsewhere)
        if _is_back_edge(flow, wire):
            back.append(wire)
            continue
        preds[dst].add(src)
        succs[src].add(dst)
    order, cycle = _toposort(flow, preds, succs)
    graph = FlowGraph(order, preds, succs, back)
    if cycle:
        graph.errors.append(f"cycle {' -> '.join(cycle)} is not broken by a loop node")
        return graph
    for wire in back:
        _loop_body(flow, graph, wire)
    _nest_bodies(graph)
    for wire in back:
        _check_leaks(flow, graph, wire)
    return graph


def _nest_bodies(graph: FlowGraph) -> None:
    """A loop inside a body brings its own body along (its nodes run once per outer iteration)."""
    changed = True
    while changed:
        changed = False
        for body in graph.loop_bodies.values():
            for inner in [n for n in body if n in graph.loop_bodies]:
                if not graph.loop_bodies[inner] <= body:
                    body |= graph.loop_bodies[inner]
                    changed = True


def _toposort(
    flow: Flow, preds: dict[str, set[str]], succs: dict[str, set[str]]
) -> tuple[list[str], list[str]]:
    remaining = {name: len(p) for name, p in preds.items()}
    ready = deque(name for name in flow.nodes if remaining[name] == 0)
    order: list[str] = []
    while ready:
        name = ready.popleft()
        order.append(name)
        for nxt in sorted(succs[name]):
            remaining[nxt] -= 1
            if remaining[nxt] == 0:
                ready.append(nxt)
    if len(order) == len(flow.nodes):
        return order, []
    return order, _find_cycle({n for n, r in remaining.items() if r > 0}, succs)


def _find_cycle(stuck: set[str], succs: dict[str, set[str]]) -> list[str]:
    """One cycle among the nodes left over by the topological sort, as a closed path."""
    start = min(stuck)
    path, seen = [start], {start: 0}
    while True:
        nxt = min(n for n in succs[path[-1]] if n in stuck)
        if nxt in seen:
            return [*path[seen[nxt] :], nxt]
        seen[nxt] = len(path)
        path.append(nxt)


def _reach(start: set[str], edges: dict[str, set[str]]) -> set[str]:
    seen, todo = set(start), list(start)
    while todo:
        for nxt in edges[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _loop_body(flow: Flow, graph: FlowGraph, back: Wire) -> None:
    loop = back.target.node
    assert loop is not None
    feeder = back.source.node
    if feeder == loop:
        graph.loop_bodies[loop] = set()
        if back.source.port != "item":
            graph.errors.append(f"loop '{loop}': next must come from its body or its item")
        return
    starts = {
        w.target.node for w in flow.wires if w.source == PortRef(loop, "item") and w.target.node in flow.nodes
    }
    forward = _reach({s for s in starts if s is not None}, graph.succs)
    backward = _reach({feeder} if feeder in flow.nodes else set(), graph.preds)
    body = forward & backward
    if feeder not in body:
        graph.errors.append(f"loop '{loop}': next is wired from '{back.source}', which is not in its body")
        return
    graph.loop_bodies[loop] = body


def _check_leaks(flow: Flow, graph: FlowGraph, back: Wire) -> None:
    loop = back.target.node
    assert loop is not None
    body = graph.loop_bodies.get(loop)
    if body is None:
        return
    for wire in flow.wires:
        src, dst = wire.source.node, wire.target.node
        inside_src = src in body or wire.source == PortRef(loop, "item")
        if inside_src and dst not in body and wire is not back:
            graph.errors.append(
                f"loop '{loop}': '{wire}' takes a value out of the loop body; use '{loop}.result' instead"
            )
        if wire.source == PortRef(loop, "result") and dst in body:
            graph.errors.append(f"loop '{loop}': its result cannot feed its own body ('{wire}')")
