"""Node positions: a layered auto-layout and the ``NAME.layout.json`` sidecar file.

Positions are kept out of the flow file so that a diff of ``*.flow.yaml`` shows logic
only; the sidecar sits next to it (``triage.flow.yaml`` -> ``triage.layout.json``).
"""

from __future__ import annotations

import json
from pathlib import Path

from workbench.flow import Flow

__all__ = ["INPUTS_ID", "OUTPUTS_ID", "auto_layout", "layout_path", "read_layout", "write_layout"]

# Canvas ids of the flow's own inputs and outputs: a dot never occurs in a node name.
INPUTS_ID = "flow.inputs"
OUTPUTS_ID = "flow.outputs"

Position = tuple[float, float]
COLUMN_WIDTH = 260.0
ROW_HEIGHT = 130.0


def layout_path(flow_path: str | Path) -> Path:
    """The sidecar of a flow file: ``x.flow.yaml`` -> ``x.layout.json``."""
    path = Path(flow_path)
    stem = path.name
    for suffix in (".flow.yaml", ".flow.yml", ".flow.json", ".yaml", ".yml", ".json"):
        if stem.endswith(suffix):
            stem = stem.removesuffix(suffix)
            break
    return path.with_name(f"{stem}.layout.json")


def read_layout(flow_path: str | Path) -> dict[str, Position]:
    """Positions from the sidecar of ``flow_path`` (empty when there is none or it is unreadable)."""
    try:
        data = json.loads(layout_path(flow_path).read_text(encoding="utf-8"))
        nodes = data["nodes"]
        return {str(k): (float(v[0]), float(v[1])) for k, v in nodes.items()}
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return {}


def write_layout(flow_path: str | Path, positions: dict[str, Position]) -> Path:
    """Write the sidecar of ``flow_path``: ``{"nodes": {id: [x, y]}}``, keys sorted."""
    target = layout_path(flow_path)
    data = {"nodes": {k: [round(x, 1), round(y, 1)] for k, (x, y) in sorted(positions.items())}}
    target.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return target


def _layers(flow: Flow) -> dict[str, int]:
    """Longest-path layer of every node from the flow's inputs; back edges are ignored."""
    preds: dict[str, set[str]] = {n: set() for n in flow.nodes}
    for wire in flow.wires:
        src, dst = wire.source.node, wire.target.node
        if src in preds and dst in preds and src != dst:
            preds[dst].add(src)
    layer: dict[str, int] = {}
    visiting: set[str] = set()

    def depth(name: str) -> int:
        if name in layer:
            return layer[name]
        if name in visiting:  # a cycle (a loop's back edge): cut it here
            return 0
        visiting.add(name)
        value = 1 + max((depth(p) for p in preds[name]), default=0)
        visiting.discard(name)
        layer[name] = value
        return value

    for name in flow.nodes:
        depth(name)
    return layer


def auto_layout(flow: Flow, keep: dict[str, Position] | None = None) -> dict[str, Position]:
    """Positions for every canvas node: ``keep``'s where given, a layered layout elsewhere.

    Layer 0 holds the flow's inputs, then each node one column right of its deepest
    predecessor, and the flow's outputs last.
    """
    keep = keep or {}
    layers = _layers(flow)
    last = max(layers.values(), default=0) + 1
    columns: dict[int, list[str]] = {}
    for node_id, col in [(INPUTS_ID, 0), *layers.items(), (OUTPUTS_ID, last)]:
        columns.setdefault(col, []).append(node_id)
    out: dict[str, Position] = {}
    for col, ids in columns.items():
        for row, node_id in enumerate(ids):
            out[node_id] = keep.get(node_id, (col * COLUMN_WIDTH, row * ROW_HEIGHT))
    return out
