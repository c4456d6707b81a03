"""A flow as Python code that rebuilds it with ``Flow``, ``Node``, ``.connect`` and ``.add_rail``.

``flow_python(flow)`` returns a script whose last statement leaves the rebuilt flow in
``flow``; ``dumps`` of it is ``dumps`` of the original. Types are written as the flow
file writes them (``"str"``, ``{"int": {"ge": 0}}``, a name from the flow's ``types``),
and a sub-flow as its own builder above the flow that uses it.
"""

from __future__ import annotations

from typing import Any

from workbench.flow import Flow, Node
from workbench.flow.io import dump

__all__ = ["flow_python"]


def _plain(value: Any) -> Any:
    """Plain dicts and lists (the YAML reader hands out dict subclasses that remember lines)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _strings(spec: Any) -> set[str]:
    if isinstance(spec, str):
        return {spec}
    if isinstance(spec, dict):
        return set().union(*(_strings(v) for v in spec.values())) if spec else set()
    if isinstance(spec, list):
        return set().union(*(_strings(v) for v in spec)) if spec else set()
    return set()


def _type(spec: Any, named: set[str]) -> str:
    """A type spec as code: the spec itself, or parsed against ``types`` where it names one."""
    spec = _plain(spec)
    if isinstance(spec, str) and spec in named:
        return f"types[{spec!r}]"
    if _strings(spec) & named:
        return f"parse_type({spec!r}, types)"
    return repr(spec)


def _ports(specs: dict[str, Any], named: set[str]) -> str:
    return "{" + ", ".join(f"{k!r}: {_type(v, named)}" for k, v in specs.items()) + "}"


def _agent_tools(specs: dict[str, Any], named: set[str]) -> str:
    """An agent's ``tools:`` (as the flow file writes them) as ``AgentTool(...)`` code."""
    items = []
    for name, spec in _plain(specs).items():
        if "mcp" in spec:
            items.append(f"{name!r}: McpServer(**{spec['mcp']!r})")
            continue
        args = [repr(spec["tool"])]
        if spec.get("description") is not None:
            args.append(f"description={spec['description']!r}")
        for side in ("inputs", "outputs"):
            if spec.get(side):
                args.append(f"{side}={_ports(spec[side], named)}")
        if spec.get("approve"):
            args.append(f"approve={spec['approve']!r}")
        if spec.get("timeout") is not None:
            args.append(f"timeout={spec['timeout']!r}")
        items.append(f"{name!r}: AgentTool({', '.join(args)})")
    return "{" + ", ".join(items) + "}"


def _config_value(
    name: str,
    key: str,
    node_spec: dict[str, Any],
    node: Node,
    subs: dict[tuple[str, str], str],
    named: set[str],
) -> str:
    """One config value of node ``name`` as code."""
    if (name, key) in subs:
        return subs[(name, key)]
    if node.kind == "agent" and key == "tools":
        return _agent_tools(node_spec["tools"], named)
    return repr(_plain(node.config[key]))


def _build(flow: Flow, var: str, lines: list[str], counter: list[int]) -> None:
    """Append the statements that leave ``flow`` rebuilt in variable ``var``."""
    data = dump(flow)
    named = set(flow.types)
    subs: dict[tuple[str, str], str] = {}
    for name, node in flow.nodes.items():
        for key, value in node.config.items():
            if isinstance(value, Flow):
                counter[0] += 1
                sub_var = f"sub{counter[0]}"
                _build(value, sub_var, lines, counter)
                if value.origin is not None:  # saved back as that file reference
                    lines.append(f"{sub_var}.origin = {value.origin!r}")
                subs[(name, key)] = sub_var
    types_var = "types"
    if named:
        lines.append(f"{types_var} = parse_named_types({_plain(data['types'])!r})")
    args = [
        repr(flow.name),
        f"inputs={_ports(data['inputs'], named)}",
        f"outputs={_ports(data['outputs'], named)}",
    ]
    if named:
        args.append(f"types={types_var}")
    for key in ("constants", "models", "use"):
        if key in data:
            args.append(f"{key}={_plain(data[key])!r}")
    if flow.version != 1:
        args.append(f"version={flow.version!r}")
    if flow.description is not None:
        args.append(f"description={flow.description!r}")
    lines.append(f"{var} = Flow(" + ", ".join(args) + ")")
    for name, node in flow.nodes.items():
        spec = data["nodes"][name]
        config = [
            f"{key!r}: {_config_value(name, key, spec, node, subs, named)}"
            for key in spec
            if key in node.config
        ]
        nargs = [
            repr(name),
            repr(node.kind),
            f"inputs={_ports(spec['inputs'], named)}",
            f"outputs={_ports(spec['outputs'], named)}",
        ]
        if config:
            nargs.append("config={" + ", ".join(config) + "}")
        if node.guarantees:
            nargs.append(f"guarantees={list(node.guarantees)!r}")
        if node.timeout is not None:
            nargs.append(f"timeout={node.timeout!r}")
        if node.retries:
            nargs.append(f"retries={node.retries!r}")
        lines.append(f"{var}.add(Node(" + ", ".join(nargs) + "))")
    for wire in flow.wires:
        lines.append(f"{var}.connect({str(wire.source)!r}, {str(wire.target)!r})")
    for name, rail in flow.rails.items():
        if rail.check is not None and not rail.args and rail.use is None:
            extra = f", max_attempts={rail.max_attempts!r}" if rail.max_attempts is not None else ""
            lines.append(
                f"{var}.add_rail({name!r}, {str(rail.on)!r}, {rail.check!r}, {rail.enforce!r}{extra})"
            )
        else:
            lines.append(
                f"{var}.rails[{name!r}] = RailSpec({name!r}, PortRef.parse({str(rail.on)!r}), "
                f"check={rail.check!r}, enforce={rail.enforce!r}, max_attempts={rail.max_attempts!r}, "
                f"use={rail.use!r}, args={_plain(rail.args)!r})"
            )


def flow_python(flow: Flow) -> str:
    """Python code that rebuilds ``flow`` in a variable named ``flow``."""
    lines: list[str] = []
    _build(flow, "flow", lines, [0])
    body = "\n".join(lines)
    flow_names = ["Flow", "Node"] + (["PortRef", "RailSpec"] if "RailSpec(" in body else [])
    type_names = [n for n in ("parse_named_types", "parse_type") if f"{n}(" in body]
    imports = [f"from workbench.flow import {', '.join(flow_names)}"]
    if type_names:
        imports.append(f"from workbench.types import {', '.join(type_names)}")
    if "AgentTool(" in body or "McpServer(" in body:
        names = [n for n in ("AgentTool", "McpServer") if f"{n}(" in body]
        imports.append(f"from workbench.flow.agent_tools import {', '.join(names)}")
    doc = f'"""Rebuilds the flow {flow.name!r} (generated by the workbench app)."""'
    return doc + "\n\n" + "\n".join(imports) + "\n\n" + body + "\n"
