"""Node positions: a layered auto-layout and the ``NAME.layout.json`` sidecar file.

Positions are kept out of the flow file so that a diff of ``*.flow.yaml`` shows logic
only; the sidecar sits next to it (``triage.flow.yaml`` -> ``triage.layout.json``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from workbench.flow import Flow

__all__ = [
    "INPUTS_ID",
    "OUTPUTS_ID",
    "auto_layout",
    "bounds",
    "free_position",
    "layout_path",
    "node_height",
    "read_layout",
    "row_width",
    "write_layout",
]

# Canvas ids of the flow's own inputs and outputs: a dot never occurs in a node name.
INPUTS_ID = "flow.inputs"
OUTPUTS_ID = "flow.outputs"

Position = tuple[float, float]
NODE_WIDTH = 180.0  # the canvas draws nodes at least this wide (its stylesheet's min-width)
COLUMN_WIDTH = 240.0  # NODE_WIDTH and room for the wires between two columns
NODE_GAP = 36.0  # between two nodes of one column
BAND_GAP = 90.0  # between two bands of columns: room for the wires that wrap to the next band
# A band of columns no wider than this fits a 950-pixel canvas (the app's in a 1400-pixel
# window) at a zoom where 13-pixel titles show at 10 pixels or more.
MAX_ROW_WIDTH = 1000.0
# A flow too long for such bands at a readable height gets wider ones: at least as wide
# as this many times their total height (the canvas's shape), so the view that shows it
# all is a map of the whole flow rather than a thin strip.
ASPECT = 1.7


def node_height(ports: int) -> float:
    """The least height of a canvas node with ``ports`` ports on its fuller side (names beside handles)."""
    return 30.0 * max(ports, 1) + 40.0


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


def _heights(flow: Flow) -> dict[str, float]:
    heights = {INPUTS_ID: node_height(len(flow.inputs)), OUTPUTS_ID: node_height(len(flow.outputs))}
    for name, node in flow.nodes.items():
        heights[name] = node_height(max(len(node.inputs), len(node.outputs)))
    return heights


def _columns(flow: Flow) -> dict[int, list[str]]:
    layers = _layers(flow)
    last = max(layers.values(), default=0) + 1
    columns: dict[int, list[str]] = {}
    for node_id, col in [(INPUTS_ID, 0), *layers.items(), (OUTPUTS_ID, last)]:
        columns.setdefault(col, []).append(node_id)
    return columns


def row_width(flow: Flow) -> float:
    """The width bound of ``auto_layout``'s bands: ``MAX_ROW_WIDTH``, or more for a long flow."""
    return _row_width(_columns(flow), _heights(flow))


def _row_width(columns: dict[int, list[str]], heights: dict[str, float]) -> float:
    # A band's height, estimated by the mean height of a column and the gap below the band.
    stacks = [sum(heights[n] + NODE_GAP for n in ids) - NODE_GAP for ids in columns.values()]
    band = sum(stacks) / len(stacks) + BAND_GAP
    # per_band columns make bands per_band * COLUMN_WIDTH wide and len/per_band bands tall.
    count = max(columns) + 1
    per_band = math.ceil(math.sqrt(ASPECT * count * band / COLUMN_WIDTH))
    return max(MAX_ROW_WIDTH, (per_band - 1) * COLUMN_WIDTH + NODE_WIDTH)


def auto_layout(
    flow: Flow, keep: dict[str, Position] | None = None, max_width: float | None = None
) -> dict[str, Position]:
    """Positions for every canvas node: ``keep``'s where given, a layered layout elsewhere.

    Layer 0 holds the flow's inputs, then each node one column right of its deepest
    predecessor, and the flow's outputs last. Columns wrap into bands no wider than
    ``max_width`` (default ``row_width(flow)``), one below the other, so a long flow reads
    like lines of text rather than one row too wide to read at any zoom that shows it. In
    a column, nodes are ordered by where their predecessors are (fewer crossing wires).
    """
    keep = keep or {}
    columns = _columns(flow)
    last = max(columns)
    heights = _heights(flow)
    if max_width is None:
        max_width = _row_width(columns, heights)  # the layering and heights computed once
    preds: dict[str, list[str]] = {}
    for wire in flow.wires:
        src = wire.source.node or INPUTS_ID
        dst = wire.target.node or OUTPUTS_ID
        preds.setdefault(dst, []).append(src)
    per_band = max(1, int((max_width - NODE_WIDTH) // COLUMN_WIDTH) + 1)
    # As many bands as that takes, but equally full: six columns make 3 + 3, not 4 + 2.
    per_band = math.ceil((last + 1) / math.ceil((last + 1) / per_band))
    rank: dict[str, float] = {}  # a node's place in its column, for ordering the next ones

    def key(node_id: str, listed: int) -> tuple[float, int]:
        # Where its predecessors sit (their mean place), else where the flow lists it.
        seen = [rank[p] for p in preds.get(node_id, []) if p in rank]
        return (sum(seen) / len(seen) if seen else float(listed), listed)

    out: dict[str, Position] = {}
    top = 0.0  # of the band being placed
    band_height = 0.0
    for col in range(last + 1):
        if col and col % per_band == 0:
            top += band_height + BAND_GAP
            band_height = 0.0
        ids = columns.get(col, [])
        keys = {node_id: key(node_id, i) for i, node_id in enumerate(ids)}
        y = top
        for i, node_id in enumerate(sorted(ids, key=keys.__getitem__)):
            rank[node_id] = float(i)
            out[node_id] = keep.get(node_id, ((col % per_band) * COLUMN_WIDTH, y))
            y += heights[node_id] + NODE_GAP
        band_height = max(band_height, y - NODE_GAP - top)
    return out


def _boxes(flow: Flow, positions: dict[str, Position]) -> list[tuple[float, float, float]]:
    """``(x, y, height)`` of each canvas node at ``positions`` (all NODE_WIDTH wide)."""
    heights = _heights(flow)
    return [(x, y, heights.get(node_id, node_height(1))) for node_id, (x, y) in positions.items()]


def free_position(flow: Flow, positions: dict[str, Position], ports: int) -> Position:
    """Where a new node with ``ports`` ports goes: in free space, overlapping no node.

    The highest free place in one of the columns the nodes already use (a hole first, else
    below the column), leftmost on a tie: the flow grows downwards, never wider than it is.
    """
    boxes = _boxes(flow, positions)
    if not boxes:
        return (0.0, 0.0)
    height = node_height(ports)
    top = min(y for _, y, _ in boxes)

    def free(x: float, y: float) -> bool:
        # Apart by NODE_GAP from every node, so its ports and wires stay readable.
        return all(
            x + NODE_WIDTH + NODE_GAP <= bx
            or bx + NODE_WIDTH + NODE_GAP <= x
            or y + height + NODE_GAP <= by
            or by + bh + NODE_GAP <= y
            for bx, by, bh in boxes
        )

    spots = [(top, x) for x in {x for x, _, _ in boxes}]
    spots += [(by + bh + NODE_GAP, bx) for bx, by, bh in boxes]
    y, x = min((y, x) for y, x in spots if free(x, y))  # below the lowest node is always free
    return (x, y)


def bounds(flow: Flow, positions: dict[str, Position]) -> tuple[float, float, float, float]:
    """Left, top, right and bottom of the canvas nodes at ``positions`` (at least their drawn size)."""
    boxes = _boxes(flow, positions)
    if not boxes:
        return (0.0, 0.0, NODE_WIDTH, node_height(1))
    return (
        min(x for x, _, _ in boxes),
        min(y for _, y, _ in boxes),
        max(x for x, _, _ in boxes) + NODE_WIDTH,
        max(y + h for _, y, h in boxes),
    )
