"""Validation of a flow: kinds, names, wires, types, cycles and rails' ports.

``problems(flow)`` lists every problem found (one sentence each, naming the nodes,
ports and types involved); ``validate(flow)`` raises ``FlowValidationError`` with all
of them. Rails' *expressions* are checked by the rails layer, not here.
"""

from __future__ import annotations

from workbench.errors import FlowValidationError
from workbench.flow.agent_tools import agent_tool, arguments_type, mcp_servers
from workbench.flow.graph import analyse
from workbench.flow.kinds import KINDS
from workbench.flow.model import Flow, PortRef, Wire

__all__ = ["problems", "validate"]


def validate(flow: Flow) -> Flow:
    """Return ``flow`` if it is valid, else raise ``FlowValidationError`` listing all problems."""
    found = problems(flow)
    if found:
        raise FlowValidationError([f"flow '{flow.name}': {p}" for p in found])
    return flow


def problems(flow: Flow) -> list[str]:
    """Every problem in ``flow``, in a stable order (empty when valid)."""
    found: list[str] = []
    found += _name_problems(flow)
    found += _node_problems(flow)
    found += _wire_problems(flow)
    found += _rail_problems(flow)
    if not found:  # the graph is only meaningful once the wires point somewhere real
        found += analyse(flow).errors
    return found


def _name_problems(flow: Flow) -> list[str]:
    found = []
    for name in sorted(set(flow.inputs) & set(flow.outputs)):
        found.append(f"duplicate name '{name}': it is both a flow input and a flow output")
    for node in flow.nodes.values():
        for port in sorted(set(node.inputs) & set(node.outputs)):
            found.append(f"node '{node.name}': duplicate port name '{port}' (both an input and an output)")
    return found


def _node_problems(flow: Flow) -> list[str]:
    found = []
    for node in flow.nodes.values():
        spec = KINDS.get(node.kind)
        if spec is None:
            known = ", ".join(sorted(KINDS))
            found.append(f"node '{node.name}': unknown node kind '{node.kind}' (known kinds: {known})")
            continue
        for key in node.config:
            if key not in spec.keys:
                allowed = ", ".join(spec.keys) or "none"
                found.append(
                    f"node '{node.name}': unknown key '{key}' for kind {node.kind} (allowed: {allowed})"
                )
        missing = [k for k in spec.required if k not in node.config]
        if missing:
            found.append(f"node '{node.name}': kind {node.kind} needs '{missing[0]}'")
            continue
        if spec.check is not None:
            found += spec.check(node, flow)
        inner = node.config.get("flow") if node.kind == "flow" else None
        if isinstance(inner, Flow):  # a sub-flow is valid only if its own flow is
            found += [f"node '{node.name}': sub-flow '{inner.name}': {p}" for p in problems(inner)]
        if node.timeout is not None and (not isinstance(node.timeout, int | float) or node.timeout <= 0):
            found.append(f"node '{node.name}': timeout must be a positive number of seconds")
        if not isinstance(node.retries, int) or isinstance(node.retries, bool) or node.retries < 0:
            found.append(f"node '{node.name}': retries must be a non-negative integer")
        for text in node.guarantees:
            if not isinstance(text, str) or not text.strip():
                found.append(f"node '{node.name}': guarantees must be rail expressions (strings)")
    return found


def _describe_ports(names: list[str]) -> str:
    return ", ".join(names) if names else "none"


def _missing_source(flow: Flow, ref: PortRef) -> str | None:
    if ref.node is None:
        if ref.port in flow.outputs:
            return f"'{ref.port}' is a flow output, not a source"
        return f"the flow has no input '{ref.port}' (inputs: {_describe_ports(list(flow.inputs))})"
    node = flow.nodes.get(ref.node)
    if node is None:
        return f"there is no node '{ref.node}'"
    if ref.port in node.inputs:
        return f"'{ref}' is an input port, not a source"
    return (
        f"node '{ref.node}' has no output port '{ref.port}' (outputs: {_describe_ports(list(node.outputs))})"
    )


def _missing_target(flow: Flow, ref: PortRef) -> str | None:
    if ref.node is None:
        if ref.port in flow.inputs:
            return f"'{ref.port}' is a flow input, not a target"
        return f"the flow has no output '{ref.port}' (outputs: {_describe_ports(list(flow.outputs))})"
    node = flow.nodes.get(ref.node)
    if node is None:
        return f"there is no node '{ref.node}'"
    if ref.port in node.outputs:
        return f"'{ref}' is an output port, not a target"
    return f"node '{ref.node}' has no input port '{ref.port}' (inputs: {_describe_ports(list(node.inputs))})"


def _wire_problems(flow: Flow) -> list[str]:
    found = []
    fed: dict[PortRef, Wire] = {}
    for wire in flow.wires:
        src_type, dst_type = flow.source_type(wire.source), flow.target_type(wire.target)
        if src_type is None:
            found.append(f"wire '{wire}': {_missing_source(flow, wire.source)}")
        if dst_type is None:
            found.append(f"wire '{wire}': {_missing_target(flow, wire.target)}")
        if src_type is not None and dst_type is not None:
            reason = dst_type.accepts(src_type)
            if reason is not None:
                found.append(
                    f"wire '{wire}': type mismatch: {wire.source} is {src_type.describe()} but "
                    f"{wire.target} is {dst_type.describe()} ({reason})"
                )
        if wire.target in fed:
            found.append(f"'{wire.target}' is wired twice (from {fed[wire.target].source} and {wire.source})")
        fed[wire.target] = wire
    for node in flow.nodes.values():
        for port in node.inputs:
            if PortRef(node.name, port) not in fed:
                found.append(f"node '{node.name}': input '{port}' is not connected")
    for port in flow.outputs:
        if PortRef(None, port) not in fed:
            found.append(f"flow output '{port}' is not connected")
    return found


def _rail_problems(flow: Flow) -> list[str]:
    found = []
    for rail in flow.rails.values():
        ref = rail.on
        if ref.node is None:
            if ref.port not in flow.inputs and ref.port not in flow.outputs:
                found.append(f"rail '{rail.name}': on '{ref}': the flow has no input or output of that name")
        elif ref.node not in flow.nodes:
            found.append(f"rail '{rail.name}': on '{ref}': there is no node '{ref.node}'")
        elif (tool := agent_tool(flow.nodes[ref.node], ref.port)) is not None:
            if arguments_type(tool) is None:
                found.append(f"rail '{rail.name}': on '{ref}': tool '{ref.port}' takes no arguments to check")
        elif flow.nodes[ref.node].port_type(ref.port) is None and mcp_servers(flow.nodes[ref.node]):
            servers = ", ".join(mcp_servers(flow.nodes[ref.node]))
            found.append(
                f"rail '{rail.name}': on '{ref}': node '{ref.node}' has no port or declared tool "
                f"'{ref.port}'; it may be a tool of its MCP server entry ({servers}), which is "
                "known only once the server runs: run the flow with --trust (trust=True) to start the "
                "server, list its tools and check this rail"
            )
        elif flow.nodes[ref.node].port_type(ref.port) is None:
            found.append(
                f"rail '{rail.name}': on '{ref}': node '{ref.node}' has no port "
                + ("or tool " if flow.nodes[ref.node].kind == "agent" else "")
                + f"'{ref.port}'"
            )
        if rail.enforce in ("repair", "decode") and ref.node is not None and ref.node in flow.nodes:
            node = flow.nodes[ref.node]
            if node.kind != "llm" or ref.port not in node.outputs:
                found.append(
                    f"rail '{rail.name}': enforce {rail.enforce} needs an llm node's output port, "
                    f"'{ref}' is not one"
                )
    return found
