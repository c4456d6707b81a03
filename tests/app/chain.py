"""A generated chain of tool nodes: the big flow of the run-progress tests and benchmarks/bench_app.py."""

from __future__ import annotations

__all__ = ["chain_flow"]


def chain_flow(n: int, output: str = "text") -> str:
    """A flow of ``n`` tool nodes in a chain (text in, ``output`` out: another name to run it)."""
    lines = ["flow: chain", "version: 1", "inputs: {text: str}", f"outputs: {{{output}: str}}", "nodes:"]
    for i in range(n):
        lines += [
            f"  n{i}:",
            "    kind: tool",
            "    tool: workbench.examples.support:redact",
            "    inputs: {ticket: str}",
            "    outputs: {text: str}",
        ]
    lines += ["wires:", "  - text -> n0.ticket"]
    lines += [f"  - n{i}.text -> n{i + 1}.ticket" for i in range(n - 1)]
    lines.append(f"  - n{n - 1}.text -> {output}")
    return "\n".join(lines) + "\n"
