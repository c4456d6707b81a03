"""The open flow as an editable document: edits, undo/redo, open and save.

Every canvas edit goes through ``FlowDocument``: it changes a copy of the flow, keeps the
state before on the undo stack and clears the redo stack. Saving writes exactly what
``workbench.flow.dumps`` writes, plus the positions in the layout sidecar, and refuses to
overwrite a file that changed on disk since it was opened or last saved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import FlowError, UsageError
from workbench.flow import AgentTool, Flow, Node, PortRef, RailSpec, Wire, dumps, load
from workbench.types import Float, Str, Type

from .grouping import group_flow
from .layout import INPUTS_ID, OUTPUTS_ID, Position, auto_layout, free_position, read_layout, write_layout

__all__ = ["KIND_TEMPLATES", "FlowDocument", "IncompatibleConnection", "StaleFileError", "flow_under"]


class IncompatibleConnection(FlowError):
    """A wire between ports whose types do not fit (the message names both ports and types)."""


class StaleFileError(UsageError):
    """The file on disk changed since it was opened: saving would lose someone's work."""


def flow_under(root: str | Path, text: str) -> Path:
    """The ``*.flow.yaml`` file that ``text`` names under ``root`` (relative to it, or absolute).

    Refuses (``UsageError``, saying why) a path outside ``root`` (after following links),
    one that is no ``*.flow.yaml`` file, or a file that does not exist: a served app opens
    the flows of its directory, nothing else on the machine.
    """
    text = text.strip()
    if not text:
        raise UsageError("give the path of a *.flow.yaml file under the served directory")
    base = Path(root).resolve()
    path = (base / Path(text).expanduser()).resolve()
    if not path.is_relative_to(base):
        raise UsageError(
            f"refused: {text} is outside the served directory {base}; only flows under it can be opened"
        )
    if not path.name.endswith(".flow.yaml"):
        raise UsageError(f"{text} is not a flow file: give a path ending in .flow.yaml")
    if not path.is_file():
        raise UsageError(f"there is no file {path.relative_to(base)} in the served directory {base}")
    return path


def _template(kind: str) -> dict[str, Any]:
    """Ports and config of a fresh node of ``kind`` from the palette (valid for its kind)."""
    if kind == "tool":
        return {"inputs": {"text": str}, "outputs": {"result": str}, "config": {"tool": "my_tools:process"}}
    if kind == "llm":
        return {
            "inputs": {"text": str},
            "outputs": {"answer": str},
            "config": {"model": "default", "prompt": "{{ text }}"},
        }
    if kind == "agent":
        # One real tool of the shipped examples, so the fresh node passes ``workbench check``
        # and runs as it stands (the desk example's quote, a safe tool: no --trust needed).
        quote = AgentTool(
            "workbench.examples.desk:quote",
            description="The last price of a ticker",
            inputs={"ticker": Str(pattern="[A-Z]{1,5}")},
            outputs={"price": Float()},
        )
        return {
            "inputs": {"text": str},
            "outputs": {"answer": str},
            "config": {
                "model": "default",
                "prompt": "{{ text }}",
                "max_steps": 4,
                "tools": {"quote": quote},
            },
        }
    if kind == "router":
        return {
            "inputs": {"value": str},
            "outputs": {"yes": str, "no": str},
            "config": {"routes": {"yes": 'value == "yes"'}, "default": "no"},
        }
    if kind == "loop":
        return {
            "inputs": {"init": str, "next": str},
            "outputs": {"item": str, "result": str},
            "config": {"max_iterations": 3},
        }
    if kind == "vote":
        return {"inputs": {"a": str, "b": str, "c": str}, "outputs": {"winner": str}, "config": {}}
    if kind == "flow":
        return {
            "inputs": {"value": str},
            "outputs": {"result": str},
            "config": {"flow": Flow("sub", {"value": Str()}, {"result": Str()}).connect("value", "result")},
        }
    raise UsageError(f"no palette entry for node kind {kind!r}")


KIND_TEMPLATES = ("tool", "llm", "agent", "router", "loop", "vote", "flow")


@dataclass
class _State:
    flow: Flow
    positions: dict[str, Position]


class FlowDocument:
    """One flow being edited: the ``flow``, canvas ``positions``, its ``path`` and history."""

    def __init__(
        self,
        flow: Flow,
        path: str | Path | None = None,
        positions: dict[str, Position] | None = None,
        disk_text: str | None = None,
    ) -> None:
        self.flow = flow
        self.path = Path(path) if path is not None else None
        self.positions = auto_layout(flow, positions)
        self._disk_text = disk_text
        self._undo: list[tuple[str, _State]] = []
        self._redo: list[tuple[str, _State]] = []
        self.listeners: list[Callable[[str], None]] = []

    @classmethod
    def open(cls, path: str | Path, *, save_to: str | Path | None = None) -> FlowDocument:
        """Load ``path`` and its layout sidecar (positions missing from it are laid out).

        ``save_to``: where saving writes instead (a read-only example is saved as a new
        file in the working directory; an existing file there is not overwritten).
        """
        path = Path(path)
        flow = load(path)
        doc = cls(flow, path, read_layout(path), path.read_text(encoding="utf-8"))
        if save_to is not None:
            doc.path, doc._disk_text = Path(save_to), None
        return doc

    # -- history --------------------------------------------------------------------------

    def _snapshot(self) -> _State:
        return _State(self.flow.copy(), dict(self.positions))

    def _restore(self, state: _State) -> None:
        self.flow, self.positions = state.flow.copy(), dict(state.positions)

    def edit(self, label: str, change: Callable[[Flow], object]) -> None:
        """Apply ``change`` to a copy of the flow; on success it becomes the flow (undoable).

        If ``change`` raises, nothing changes and the error propagates.
        """
        before = self._snapshot()
        work = self.flow.copy()
        change(work)
        self.flow = work
        self._undo.append((label, before))
        self._redo.clear()
        self._changed(label)

    def undo(self) -> str | None:
        """Undo the last edit; returns its label (None when there is nothing to undo)."""
        if not self._undo:
            return None
        label, state = self._undo.pop()
        self._redo.append((label, self._snapshot()))
        self._restore(state)
        self._changed(f"undo {label}")
        return label

    def redo(self) -> str | None:
        """Redo the last undone edit; returns its label (None when there is nothing to redo)."""
        if not self._redo:
            return None
        label, state = self._redo.pop()
        self._undo.append((label, self._snapshot()))
        self._restore(state)
        self._changed(f"redo {label}")
        return label

    @property
    def can_undo(self) -> bool:
        """Is there an edit to undo?"""
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        """Is there an undone edit to redo?"""
        return bool(self._redo)

    def _changed(self, label: str) -> None:
        for listener in list(self.listeners):
            listener(label)

    # -- edits ------------------------------------------------------------------------------

    def add_node(self, kind: str, name: str | None = None, position: Position | None = None) -> str:
        """Add a node of ``kind`` with the palette's ports; returns its (unique) name."""
        spec = _template(kind)
        if name is None:
            i = 1
            while f"{kind}{i}" in self.flow.nodes:
                i += 1
            name = f"{kind}{i}"
        elif name in self.flow.nodes:
            raise FlowError(f"flow '{self.flow.name}' already has a node '{name}'")
        node = Node(name, kind, spec["inputs"], spec["outputs"], config=spec["config"])
        before = dict(self.positions)
        ports = max(len(spec["inputs"]), len(spec["outputs"]))
        self.positions[name] = position or free_position(self.flow, auto_layout(self.flow, before), ports)
        try:
            self.edit(f"add {name}", lambda f: f.add(node))
        except Exception:
            self.positions = before
            raise
        return name

    def remove_node(self, name: str) -> None:
        """Remove a node, its wires and the rails on its ports."""
        if name not in self.flow.nodes:
            raise FlowError(f"flow '{self.flow.name}' has no node '{name}'")

        def change(flow: Flow) -> None:
            del flow.nodes[name]
            flow.wires = [w for w in flow.wires if name not in (w.source.node, w.target.node)]
            flow.rails = {k: r for k, r in flow.rails.items() if r.on.node != name}

        self.edit(f"delete {name}", change)
        self.positions.pop(name, None)

    def group(self, names: Iterable[str], name: str | None = None) -> str:
        """Put nodes ``names`` into one sub-flow node (undoable); returns its name.

        Its ports are the values crossing the group's boundary (``workbench.app.grouping``);
        refused with the reason (``GroupRefused``) where that would change the flow or a
        verdict of ``workbench check``.
        """
        names = list(names)
        chosen = [n for n in self.flow.nodes if n in set(names)]
        grouped, node = group_flow(self.flow, names, name)
        placed = [self.positions[n] for n in chosen if n in self.positions]

        def change(flow: Flow) -> None:
            flow.nodes, flow.wires = grouped.nodes, grouped.wires

        self.edit(f"group {', '.join(chosen)} as {node}", change)
        for n in chosen:
            self.positions.pop(n, None)
        if placed:
            self.positions[node] = (
                sum(x for x, _ in placed) / len(placed),
                sum(y for _, y in placed) / len(placed),
            )
        return node

    def port_type(self, ref: PortRef, side: str) -> Type | None:
        """Type of a wire ``source`` or ``target`` end."""
        return self.flow.source_type(ref) if side == "source" else self.flow.target_type(ref)

    def connection_problem(self, source: str | PortRef, target: str | PortRef) -> str | None:
        """Why ``source -> target`` cannot be wired (naming both ports and types), or None."""
        src = source if isinstance(source, PortRef) else PortRef.parse(source)
        dst = target if isinstance(target, PortRef) else PortRef.parse(target)
        s_type, t_type = self.flow.source_type(src), self.flow.target_type(dst)
        if s_type is None:
            return f"'{src}' is not an output (a flow input or a node output)"
        if t_type is None:
            return f"'{dst}' is not an input (a node input or a flow output)"
        reason = t_type.accepts(s_type)
        if reason:
            return f"cannot connect {src} ({s_type.describe()}) to {dst} ({t_type.describe()}): {reason}"
        return None

    def connect(self, source: str | PortRef, target: str | PortRef) -> Wire:
        """Wire ``source -> target`` (replacing the target's old wire); type-checked first."""
        src = source if isinstance(source, PortRef) else PortRef.parse(source)
        dst = target if isinstance(target, PortRef) else PortRef.parse(target)
        problem = self.connection_problem(src, dst)
        if problem:
            raise IncompatibleConnection(problem)
        wire = Wire(src, dst)

        def change(flow: Flow) -> None:
            flow.wires = [w for w in flow.wires if w.target != dst] + [wire]

        self.edit(f"connect {wire}", change)
        return wire

    def disconnect(self, wire: Wire) -> None:
        """Remove one wire."""
        if wire not in self.flow.wires:
            raise FlowError(f"flow '{self.flow.name}' has no wire '{wire}'")
        self.edit(f"disconnect {wire}", lambda f: setattr(f, "wires", [w for w in f.wires if w != wire]))

    def move(self, node_id: str, position: Position) -> None:
        """Move a canvas node (undoable; only the layout sidecar records it)."""
        if self.positions.get(node_id) == position:
            return
        before = self._snapshot()
        self.positions[node_id] = position
        self._undo.append((f"move {node_id}", before))
        self._redo.clear()
        self._changed(f"move {node_id}")

    def set_config(self, name: str, key: str, value: Any) -> None:
        """Set (or, with ``None``, remove) a config key of a node (``prompt``, ``model``, ``tool``...)."""
        node = self.flow.nodes[name]
        if node.config.get(key) == value:
            return

        def change(flow: Flow) -> None:
            config = flow.nodes[name].config
            if value is None:
                config.pop(key, None)
            else:
                config[key] = value

        self.edit(f"set {name}.{key}", change)

    def set_guarantees(self, name: str, guarantees: list[str]) -> None:
        """Replace a node's guarantees."""
        if self.flow.nodes[name].guarantees == guarantees:
            return
        self.edit(f"set {name}.guarantees", lambda f: setattr(f.nodes[name], "guarantees", list(guarantees)))

    def set_rail(self, name: str, check: str, on: str | None = None) -> None:
        """Change the text (and optionally the port) of rail ``name``, or add it."""
        old = self.flow.rails.get(name)
        if on is not None:
            port = PortRef.parse(on)
        elif old is not None:
            port = old.on
        else:
            raise FlowError(f"rail '{name}' is new: give the port it sits on")
        if old is not None:
            spec = RailSpec(name, port, check, old.enforce, old.max_attempts)
        else:
            spec = RailSpec(name, port, check)
        if old == spec:
            return
        self.edit(f"edit rail {name}", lambda f: f.rails.__setitem__(name, spec))

    def add_rail(self, name: str, on: str, check: str) -> None:
        """Add rail ``name`` on port ``on`` (``node.port``, or a flow input or output) checking ``check``."""
        if not name.isidentifier():
            raise FlowError(f"rail name {name!r} is not an identifier")
        if name in self.flow.rails:
            raise FlowError(f"flow '{self.flow.name}' already has a rail '{name}'")
        spec = RailSpec(name, PortRef.parse(on), check)
        self.edit(f"add rail {name}", lambda f: f.rails.__setitem__(name, spec))

    def remove_rail(self, name: str) -> None:
        """Delete rail ``name``."""
        if name not in self.flow.rails:
            raise FlowError(f"flow '{self.flow.name}' has no rail '{name}'")
        self.edit(f"delete rail {name}", lambda f: f.rails.pop(name))

    def rail_ports(self) -> list[str]:
        """Every port a rail can sit on: the flow's inputs and outputs, then each node's ports."""
        ports = [*self.flow.inputs, *self.flow.outputs]
        for node in self.flow.nodes.values():
            ports += [f"{node.name}.{p}" for p in (*node.inputs, *node.outputs)]
        return ports

    # -- files ----------------------------------------------------------------------------

    def text(self) -> str:
        """The flow file text as ``workbench.flow.dumps`` writes it."""
        return dumps(self.flow)

    @property
    def dirty(self) -> bool:
        """Does saving change the file?"""
        return self._disk_text is None or self._disk_text != self.text()

    def save(self, path: str | Path | None = None) -> Path:
        """Write the flow (``dumps``) and its layout sidecar; returns the path written.

        Refuses (``StaleFileError``) when the file changed on disk since it was opened or
        last saved here, so nobody's edits are overwritten silently.
        """
        target = Path(path) if path is not None else self.path
        if target is None:
            raise UsageError("this flow has no file yet: give a path to save it to")
        if target.exists() and (target != self.path or self._disk_text is None):
            raise StaleFileError(f"{target} already exists: not overwritten. Save under another name.")
        if target.exists():
            try:
                on_disk = target.read_text(encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"cannot read {target} before saving: {exc.strerror}") from None
            if on_disk != self._disk_text:
                raise StaleFileError(
                    f"{target} changed on disk since it was opened: not saved. Reopen it to see "
                    "the other changes, or save under another name."
                )
        text = self.text()
        target.write_text(text, encoding="utf-8")
        write_layout(target, {k: v for k, v in self.positions.items() if k in self.canvas_ids()})
        self.path, self._disk_text = target, text
        return target

    def canvas_ids(self) -> list[str]:
        """Ids of every canvas node: the flow's inputs, its nodes, its outputs."""
        return [INPUTS_ID, *self.flow.nodes, OUTPUTS_ID]
