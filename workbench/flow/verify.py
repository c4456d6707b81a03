"""Static verification of a flow's rails with Z3 (``workbench check``, ``verify(flow)``).

The flow becomes proof obligations for the rails layer's ``Prover``:

- every port is one declared value (``analyst.order``; flow inputs and outputs by bare
  name), with its type's bounds as a hypothesis;
- every wire says its two ends are equal; a router's taken branch equals its input and
  satisfies the branch's condition;
- hypotheses of a rail at port P: rails on the flow's inputs, and the rails (not
  ``observe``) and ``guarantees`` at every port strictly upstream of P, plus, for a
  node's output port, the rails on that node's inputs and the node's own guarantees
  (they are checked at runtime too);
- a rail on an agent's tool (``on: desk.buy``) is about each call's arguments, declared
  with the tool's input types; its hypotheses are those of the node's output ports but
  the node's guarantees, and it is no hypothesis of anything else (a model that makes no
  call checks nothing).

Each rail gets one status (docs/architecture.md): ``proved``, ``enforced`` (with a counterexample
that passes everything upstream and breaks it), ``conflict`` (with the rails it
contradicts), ``vacuous`` or ``unsupported`` (with the reason). The rails the runtime
checks in one go (on one port, on a node's inputs, on a tool or llm node's outputs) are
then asked together: where no value passes them all, the rails of a minimal core are
``conflict`` as well (``Prover.together``). Loops, votes and the
values of tool and llm outputs are known only by their types and guarantees: sound, but
a rail may show ``enforced`` where it always holds in practice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import RailError, UsageError, WorkbenchError
from workbench.flow.agent_tools import agent_tool, arguments_type
from workbench.flow.graph import analyse
from workbench.flow.model import Flow, PortRef
from workbench.flow.port_rails import FlowRail, flow_rails, scope_at
from workbench.flow.validate import problems

__all__ = ["RailStatus", "VerifyReport", "check_report", "verify"]

APPROXIMATE_KINDS = {"loop": "loops", "vote": "votes"}


@dataclass
class RailStatus:
    """The verdict on one rail."""

    name: str
    port: str
    status: str
    counterexample: dict[str, Any] | None = None
    conflict_with: list[str] = field(default_factory=list)
    reason: str = ""
    hypotheses: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``workbench check --json`` shape of one rail."""
        return {
            "name": self.name,
            "port": self.port,
            "status": self.status,
            "counterexample": self.counterexample,
            "conflict_with": self.conflict_with,
            "reason": self.reason or None,
        }


@dataclass
class VerifyReport:
    """Everything ``workbench check`` prints: problems, rail statuses, notes."""

    flow: str
    errors: list[str]
    rails: list[RailStatus]
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No validation errors and no conflicting rails."""
        return not self.errors and not any(r.status == "conflict" for r in self.rails)


def _port_path(flow: Flow, ref: PortRef) -> str:
    """The prover path of a port; flow ports use their bare name unless a node shares it."""
    if ref.node is not None:
        return f"{ref.node}.{ref.port}"
    return f"flow:{ref.port}" if ref.port in flow.nodes else ref.port


class _Obligations:
    """One prover holding the whole flow; rails are proved against labelled hypotheses."""

    def __init__(self, flow: Flow, rails: list[FlowRail], timeout_ms: int) -> None:
        from workbench.rails import Prover

        self.flow = flow
        self.prover = Prover(timeout_ms=timeout_ms)
        self.graph = analyse(flow)
        self.notes: list[str] = []
        self.routes: dict[str, set[str]] = {}  # route: label -> nodes that run only on that branch
        self._declare_ports()
        self._wire_ports()
        self.labels: dict[str, FlowRail] = {}
        for rail in rails:
            if rail.enforce == "observe" or _on_tool(flow, rail.port):
                continue  # observed rails promise nothing downstream; tool rails hold for calls made
            label = f"rail:{rail.name}" if rail.kind != "guarantee" else rail.name
            try:
                self.prover.assume(rail.rail, self.bind(rail), label)
            except UsageError as exc:
                self.notes.append(f"rail '{rail.name}' is not used as a hypothesis: {exc}")
                continue
            self.labels[label] = rail

    def _declare_ports(self) -> None:
        flow = self.flow
        for name, typ in {**flow.inputs, **flow.outputs}.items():
            self.prover.declare(_port_path(flow, PortRef(None, name)), typ)
        for node in flow.nodes.values():
            for port, typ in {**node.inputs, **node.outputs}.items():
                self.prover.declare(f"{node.name}.{port}", typ)
            for tool in node.config.get("tools") or {} if node.kind == "agent" else ():
                spec = agent_tool(node, tool)  # None for an mcp: entry not expanded
                arguments = arguments_type(spec) if spec is not None else None
                if arguments is not None:  # a call's arguments, known by the tool's input types
                    self.prover.declare(f"{node.name}.{tool}", arguments)

    def _wire_ports(self) -> None:
        flow = self.flow
        for wire in flow.wires:
            source, target = _port_path(flow, wire.source), _port_path(flow, wire.target)
            try:
                self.prover.equate(source, target)
            except UsageError as exc:  # e.g. an enum flowing into a wider enum: dropping it is sound
                self.notes.append(f"wire '{wire}' is not used in proofs: {exc}")
        for node in flow.nodes.values():
            if node.kind == "router":
                self._router_facts(node.name)

    def _router_facts(self, name: str) -> None:
        from workbench.rails import Scope, parse_rail

        node = self.flow.nodes[name]
        ((port, in_type),) = node.inputs.items()
        for i, (out, cond) in enumerate(node.config["routes"].items()):
            try:
                self.prover.equate(f"{name}.{port}", f"{name}.{out}")
                if i == 0:  # the first route taken means its condition held
                    rail = parse_rail(
                        cond,
                        Scope({**self.flow.inputs, port: in_type}, self.flow.constants),
                        name=f"{name}.routes.{out}",
                    )
                    bind = {
                        n: f"{name}.{out}" if n == port else _port_path(self.flow, PortRef(None, n))
                        for n in rail.names
                    }
                    label = f"route:{name}.{out}"
                    self.prover.assume(rail, bind, label)
                    self.routes[label] = self._only_on_branch(PortRef(name, out))
            except (UsageError, RailError) as exc:
                self.notes.append(f"router '{name}' branch '{out}' is only typed in proofs: {exc}")

    def _only_on_branch(self, branch: PortRef) -> set[str]:
        """Nodes that run only when the router output ``branch`` carries a value.

        A node whose input is skipped is skipped; votes (a skipped ballot abstains) and
        loops (a skipped ``next`` ends the loop) run anyway, so the walk stops there.
        """
        flow, found, todo = self.flow, set(), [branch]
        while todo:
            source = todo.pop()
            for wire in flow.wires:
                target = wire.target.node
                if wire.source != source or target is None or target in found:
                    continue
                if flow.nodes[target].kind in ("vote", "loop"):
                    continue
                found.add(target)
                todo += [PortRef(target, port) for port in flow.nodes[target].outputs]
        return found

    def _on_branch(self, ref: PortRef, label: str) -> bool:
        """Is a rail at ``ref`` checked only when the branch of route fact ``label`` is taken?"""
        nodes = self.routes[label]
        router, _, out = label.removeprefix("route:").partition(".")
        if ref.node is None:
            wire = self.flow.incoming().get(ref) if ref.port in self.flow.outputs else None
            if wire is None:
                return False
            ref = wire.source
            if ref == PortRef(router, out):
                return True
            return ref.node in nodes
        return ref.node in nodes or (ref.node == router and ref.port == out)

    def bind(self, rail: FlowRail) -> dict[str, str]:
        """Map the rail's names to the ports they read, with the runtime's shadowing."""
        flow, ref = self.flow, rail.port
        node = flow.nodes.get(ref.node or "")
        out = {}
        for name in rail.names:
            if name not in scope_at(flow, ref):
                continue  # a constant
            if name == ref.port:
                out[name] = _port_path(flow, ref)
            elif node is not None and (
                name in node.inputs or (ref.port in node.outputs and name in node.outputs)
            ):
                out[name] = f"{node.name}.{name}"
            else:
                out[name] = _port_path(flow, PortRef(None, name))
        return out

    def upstream(self, rail: FlowRail) -> list[str]:
        """Labels of the hypotheses that hold whenever ``rail`` is checked."""
        flow, ref = self.flow, rail.port
        if ref.node is None and ref.port in flow.inputs:
            before: set[str] = set()
            same_node_inputs = False
            owner = None
        else:
            if ref.node is None:
                source = flow.incoming()[ref].source.node
                owner = None
                before = _ancestors(self.graph, source) | ({source} if source else set())
            else:
                owner = ref.node
                before = _ancestors(self.graph, ref.node)
            # an output port or a tool call comes after the node's inputs were checked
            same_node_inputs = ref.node is not None and ref.port not in flow.nodes[ref.node].inputs
        labels = []
        for label, hyp in self.labels.items():
            if hyp is rail:
                continue
            at = hyp.port
            if at.node is None:
                if at.port in flow.inputs:
                    labels.append(label)
                continue
            if at.node in before:
                labels.append(label)
            elif at.node == owner and same_node_inputs:
                node = flow.nodes[owner]
                if at.port in node.inputs or (hyp.kind == "guarantee" and ref.port in node.outputs):
                    labels.append(label)
        # A router's condition holds only where its branch was taken: a route fact is a
        # hypothesis of exactly the rails that are checked on that branch alone.
        return labels + [label for label in self.routes if self._on_branch(ref, label)]


def _on_tool(flow: Flow, ref: PortRef) -> bool:
    """Whether ``ref`` names an agent's tool (its rails check each call's arguments)."""
    node = flow.nodes.get(ref.node or "")
    return node is not None and agent_tool(node, ref.port) is not None


def _ancestors(graph: Any, node: str | None) -> set[str]:
    if node is None:
        return set()
    seen, todo = set(), [node]
    while todo:
        for pred in graph.preds[todo.pop()]:
            if pred not in seen:
                seen.add(pred)
                todo.append(pred)
    return seen


def _relevant(example: dict[str, Any] | None, keep: Iterable[str]) -> dict[str, Any] | None:
    if example is None:
        return None
    keep = set(keep)
    return {k: v for k, v in example.items() if k in keep} or example


def _checked_with(flow: Flow, ref: PortRef) -> tuple[str, ...]:
    """The rails that the runtime checks in one go with those on port ``ref``.

    A node runs once all its inputs arrived and checks the rails on all of them first
    (a loop reads ``next`` later); a tool or llm node checks the rails on all its outputs
    together. Elsewhere (flow ports, a router's branches, a loop's or vote's outputs) the
    rails on one port are checked together.
    """
    node = flow.nodes.get(ref.node or "")
    if node is not None and ref.port in node.inputs and node.kind != "loop":
        return (node.name, "inputs")
    if node is not None and ref.port in node.outputs and node.kind in ("tool", "llm"):
        return (node.name, "outputs")
    return (str(ref),)


def _joint_conflicts(
    obligations: _Obligations, verdicts: list[tuple[FlowRail, Any, RailStatus]]
) -> list[str]:
    """Rails checked in one go that no value passes together, though each passes its
    hypotheses (``item.qty + item.price >= 20``, ``item.qty <= 5``, ``item.price <= 10``).

    Such rails block every run that reaches them: each rail of a minimal core becomes
    ``conflict``, naming the others (and the upstream hypotheses the core needs).
    Candidates are the blocking rails found ``enforced``, or ``vacuous`` because their
    hypotheses contradict: on a flow input the other input rails are hypotheses, so rails
    that contradict each other there look unreachable one by one. A proved rail is
    implied by its hypotheses and cannot be needed. Returns notes for rails Z3 could not
    decide in time.
    """
    flow = obligations.flow
    at: dict[tuple[str, ...], list[tuple[str, RailStatus]]] = {}
    for rail, result, status in verdicts:
        label = f"rail:{rail.name}"
        if obligations.labels.get(label) is rail and (
            result.status == "enforced" or (result.status == "vacuous" and result.core)
        ):
            at.setdefault(_checked_with(flow, rail.port), []).append((label, status))
    notes = []
    for where, candidates in at.items():
        # the other rails checked in the same go are not upstream of these
        here = {
            h
            for h, rail in obligations.labels.items()
            if rail.kind != "guarantee" and _checked_with(flow, rail.port) == where
        }
        upstream = sorted({h for _, s in candidates for h in s.hypotheses} - here)
        # rails that share no variable (even through upstream hypotheses) hold or fail apart
        for part in obligations.prover.components([label for label, _ in candidates], using=upstream):
            group = [(label, status) for label, status in candidates if label in part]
            notes += _settle(obligations, group, upstream)
    return notes


def _settle(obligations: _Obligations, group: list[tuple[str, RailStatus]], upstream: list[str]) -> list[str]:
    """Mark the rails of each minimal core in ``group`` ``conflict`` until the rest can hold."""
    while group:
        labels = {label for label, _ in group}
        # an enforced rail that had all the others as hypotheses shows they can all hold
        if any(s.status == "enforced" and labels - {label} <= set(s.hypotheses) for label, s in group):
            return []
        result = obligations.prover.together(sorted(labels), using=upstream, witness=False)
        if result.status == "unknown":
            names = ", ".join(sorted(label.removeprefix("rail:") for label in labels))
            return [f"rails {names}: could not tell whether they can all hold ({result.reason})"]
        if result.status != "conflict":
            return []
        for label, status in group:
            if label in result.core:
                status.status, status.counterexample = "conflict", None
                status.conflict_with = [c.removeprefix("rail:") for c in result.core if c != label]
                status.reason = "no value passes the hypotheses and the rails checked with this one"
        group = [(label, status) for label, status in group if label not in result.core]
    return []


def verify(flow: Flow, *, timeout_ms: int = 2000) -> VerifyReport:
    """Give every rail of ``flow`` a status; validation problems come back as ``errors``."""
    errors = problems(flow)
    if errors:
        return VerifyReport(flow.name, errors, [])
    try:
        rails = flow_rails(flow)
    except WorkbenchError as exc:
        return VerifyReport(flow.name, [str(exc)], [])
    obligations = _Obligations(flow, rails, timeout_ms)
    statuses = []
    verdicts = []
    for rail in rails:
        if rail.kind == "guarantee":
            continue  # promises of a node's code: hypotheses, not goals
        using = obligations.upstream(rail)
        result = obligations.prover.prove(rail.rail, obligations.bind(rail), using=using)
        ports = {_port_path(flow, PortRef(None, n)) for n in flow.inputs}
        ports |= {
            p
            for label in using
            if label in obligations.labels  # route: facts have no FlowRail
            for p in obligations.bind(obligations.labels[label]).values()
        } | set(obligations.bind(rail).values())
        status = RailStatus(
            rail.name,
            str(rail.port),
            result.status,
            _relevant(result.counterexample, ports),
            [c.removeprefix("rail:") for c in result.conflict_with],
            result.reason,
            using,
        )
        statuses.append(status)
        verdicts.append((rail, result, status))
    notes = list(obligations.notes)
    notes += _joint_conflicts(obligations, verdicts)
    approximated = sorted(
        {word for n in flow.nodes.values() for k, word in APPROXIMATE_KINDS.items() if n.kind == k}
    )
    if approximated:
        notes.append(
            f"{' and '.join(approximated)} are known to the solver only by their types: verdicts "
            "stay sound, but some rails may show enforced where they always hold"
        )
    if any(n.kind == "router" and len(n.config["routes"]) > 1 for n in flow.nodes.values()):
        notes.append(
            "routers: only the first route's condition is a hypothesis, of the rails on its branch; "
            "other branches are known by their types (sound, may be conservative)"
        )
    return VerifyReport(flow.name, [], statuses, notes)


def check_report(flow: Flow, *, explain: str | None = None, timeout_ms: int = 2000) -> dict[str, Any]:
    """What ``workbench check`` prints: ``{"errors", "rails", "notes", "explain"}``."""
    report = verify(flow, timeout_ms=timeout_ms)
    out: dict[str, Any] = {
        "errors": report.errors,
        "rails": [r.to_json() for r in report.rails],
        "notes": report.notes,
    }
    if explain is not None and not report.errors:
        out["explain"] = explain_rail(flow, explain, timeout_ms=timeout_ms)
    return out


def explain_rail(flow: Flow, name: str, *, timeout_ms: int = 2000) -> str:
    """The audit text for one rail: its SMT-LIB, the hypotheses used and the verdict."""
    from workbench.rails.explain import explain

    rails = flow_rails(flow)
    match = [r for r in rails if r.name == name]
    if not match:
        raise UsageError(
            f"flow '{flow.name}' has no rail '{name}' (rails: {', '.join(r.name for r in rails)})"
        )
    obligations = _Obligations(flow, rails, timeout_ms)
    rail = match[0]
    return explain(rail.rail, obligations.prover, obligations.bind(rail), using=obligations.upstream(rail))
