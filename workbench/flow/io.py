"""Reading and writing ``*.flow.yaml`` (and ``*.flow.json``) files (docs/architecture.md, "Flow files").

Loading keeps the line and column of every mapping key so that problems point into the
file (``trader.flow.yaml:14:5: ...``). Saving writes a stable key order, so load -> save
-> load is the identity and diffs stay small. Comments are not kept: a saved file loses
the comments of the file it was loaded from.

Flow files may come from anyone, so a file is checked before it is read: only regular files
(never a device such as ``/dev/zero``, a FIFO, a directory or a socket), at most
``MAX_FLOW_BYTES``. Sub-flow paths are resolved against the directory of the file that
names them, nest at most ``MAX_SUBFLOW_DEPTH`` deep, and may not include themselves.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from workbench.errors import FlowError, FlowSyntaxError, TypeSpecError
from workbench.flow.agent_tools import MCP_KEYS, TOOL_KEYS, AgentTool, McpServer
from workbench.flow.kinds import KINDS
from workbench.flow.model import ENFORCE_MODES, Flow, Node, PortRef, RailSpec, Wire
from workbench.types import List, Record, Type, parse_named_types, parse_type

__all__ = [
    "MAX_FLOW_BYTES",
    "MAX_SUBFLOW_DEPTH",
    "UnreadableFile",
    "dump",
    "dumps",
    "flow_hash",
    "load",
    "loads",
    "parse_yaml",
    "read_limited",
    "save",
]

TOP_KEYS = (
    "flow",
    "version",
    "description",
    "use",
    "types",
    "constants",
    "models",
    "inputs",
    "outputs",
    "nodes",
    "wires",
    "rails",
)
NODE_COMMON = ("kind", "inputs", "outputs", "guarantees", "timeout", "retries")
RAIL_KEYS = ("on", "check", "use", "with", "enforce", "max_attempts")
MAX_FLOW_BYTES = 8 * 1024 * 1024
# Sub-flows inside sub-flows: 16 levels is far more than a readable design needs, and few
# enough that planning and validation (which recurse per level) stay far from Python's limit.
MAX_SUBFLOW_DEPTH = 16


class _Located(dict):
    """A mapping that remembers where each key was written: ``marks[key] = (line, column)``."""

    marks: dict[Any, tuple[int, int]]
    start: tuple[int, int]


class _Loader(yaml.SafeLoader):
    """SafeLoader that records key positions and refuses duplicate keys."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> _Located:
    own = {id(key_node) for key_node, _ in node.value}  # merged keys (``<<: *base``) may be overridden
    loader.flatten_mapping(node)
    out = _Located()
    out.marks = {}
    out.start = (node.start_mark.line + 1, node.start_mark.column + 1)
    seen = set()
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            ) from None
        if id(key_node) in own:
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        out[key] = loader.construct_object(value_node, deep=True)
        out.marks[key] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _yaml12_booleans(cls: type[yaml.resolver.BaseResolver]) -> None:
    """Plain scalars as YAML 1.2 reads them (JSON files are YAML 1.2 too).

    Only ``true``/``false`` are booleans: a rail's ``on:`` key must stay a string. Dates
    stay strings (JSON cannot hold them), and ``1e-05`` (as JSON writes it) is a float.
    """
    bool_tag, float_tag = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:float"
    cls.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in (bool_tag, "tag:yaml.org,2002:timestamp")]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    cls.add_implicit_resolver(bool_tag, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
    cls.add_implicit_resolver(
        float_tag,
        re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
        list("-+0123456789."),
    )


_yaml12_booleans(_Loader)


def _refuse_tag(loader: _Loader, node: yaml.Node) -> Any:
    raise yaml.constructor.ConstructorError(
        None,
        None,
        f"{node.tag} values cannot be saved in a flow file; write a string or a list",
        node.start_mark,
    )


for _tag in ("timestamp", "binary", "set", "omap", "pairs"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse_tag)

# libyaml's parser, where PyYAML has it, configured as _Loader: it reads a flow file about
# three times faster (the pure-Python parser took half the time of opening a 1,000-node
# flow in the app). A file it refuses is read again by _Loader, whose messages are better
# (they name the character at fault).
_FAST_LOADERS: list[type[yaml.SafeLoader] | type[yaml.CSafeLoader]] = []
if yaml.__with_libyaml__:

    class _CLoader(yaml.CSafeLoader):
        """``_Loader`` on libyaml's parser."""

    _CLoader.yaml_constructors = dict(_Loader.yaml_constructors)
    _CLoader.yaml_implicit_resolvers = dict(_Loader.yaml_implicit_resolvers)
    _FAST_LOADERS.append(_CLoader)

MAX_EXPANDED_VALUES = 1_000_000


def _check_expansion(root: yaml.Node | None, source: str) -> None:
    """Refuse a document that YAML aliases blow up (a small file standing for a huge tree)."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        if id(node) not in sizes:
            sizes[id(node)] = 0  # an alias cycle counts once (the constructor refuses it anyway)
            children: list[yaml.Node] = []
            if isinstance(node, yaml.SequenceNode):
                children = node.value
            elif isinstance(node, yaml.MappingNode):
                children = [n for pair in node.value for n in pair]
            total = 1 + sum(size(child) for child in children)
            if total > MAX_EXPANDED_VALUES and len(sizes) < total:
                mark = node.start_mark
                raise FlowSyntaxError(
                    f"YAML aliases expand this value to more than {MAX_EXPANDED_VALUES:,} values",
                    source=source,
                    line=mark.line + 1,
                    column=mark.column + 1,
                )
            sizes[id(node)] = total
        return sizes[id(node)]

    if root is not None:
        size(root)


class _SubflowError(FlowSyntaxError):
    """A sub-flow that cannot be loaded; the files that include it pass the error on as it is."""


class UnreadableFile(Exception):
    """A file refused before or while reading it; the message says why (``no such file``...)."""


_MIB = 1024 * 1024
_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
)


def _amount(size: int) -> str:
    return f"{size // _MIB} MiB" if size % _MIB == 0 else f"{size:,} bytes"


def _refuse_kind(mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = next((what for test, what in _FILE_KINDS if test(mode)), "not a regular file")
        raise UnreadableFile(f"it is {kind}, not a regular file")


def read_limited(path: str | Path, limit: int = MAX_FLOW_BYTES) -> bytes:
    """The bytes of the regular file at ``path``; raises ``UnreadableFile`` with the reason.

    Only regular files are opened: a device (``/dev/zero`` never ends), a FIFO (opening it
    waits for a writer), a directory or a socket is refused from its ``stat``. A file over
    ``limit`` bytes is refused from its size, and at most ``limit + 1`` bytes are ever read,
    even if the file grows (or, like ``/proc`` files, says it is empty).
    """
    try:
        info = os.stat(path)
        _refuse_kind(info.st_mode)
        if info.st_size > limit:
            raise UnreadableFile(f"the file is larger than {_amount(limit)}")
        # Non-blocking: should a FIFO be swapped in after the stat, opening it must not wait.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
        with open(fd, "rb") as file:
            _refuse_kind(os.fstat(fd).st_mode)
            data = file.read(limit + 1)
    except (FileNotFoundError, NotADirectoryError):
        raise UnreadableFile("no such file") from None
    except OSError as exc:
        raise UnreadableFile(f"cannot read the file: {exc.strerror or exc}") from None
    except ValueError as exc:  # a NUL character in the path
        raise UnreadableFile(f"not a valid path: {exc}") from None
    if len(data) > limit:
        raise UnreadableFile(f"the file is larger than {_amount(limit)}")
    return data


class _Reader:
    """Turns the located YAML tree into a ``Flow``, raising errors that point into the file.

    ``chain`` names the flows being read, outermost first and this one last (its length is
    this flow's depth plus one); ``files`` holds the resolved paths of the files among them.
    """

    def __init__(
        self, source: str, base_dir: Path | None, chain: tuple[str, ...], files: tuple[Path, ...]
    ) -> None:
        self.source = source
        self.base_dir = base_dir
        self.chain = chain
        self.files = files

    def fail(
        self, where: Any, key: Any, message: str, cls: type[FlowSyntaxError] = FlowSyntaxError
    ) -> FlowSyntaxError:
        line = col = None
        if isinstance(where, _Located):
            line, col = where.marks.get(key, where.start)
        return cls(message, source=self.source, line=line, column=col)

    def mapping(self, parent: Any, key: str, *, required: bool = False) -> Mapping[str, Any]:
        value = parent.get(key) if isinstance(parent, Mapping) else None
        if value is None:
            if required:
                raise self.fail(parent, key, f"'{key}' is required")
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(parent, key, f"'{key}' must be a mapping, got {type(value).__name__}")
        return value

    def types(
        self, parent: Mapping[str, Any], key: str, named: Mapping[str, Type], what: str
    ) -> dict[str, Type]:
        ports = self.mapping(parent, key)
        out = {}
        for name, spec in ports.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise self.fail(ports, name, f"{what} name {name!r} is not an identifier")
            try:
                out[name] = parse_type(spec, named, f"{what} '{name}'")
            except TypeSpecError as exc:
                raise self.fail(ports, name, str(exc)) from None
        return out

    def read(self, data: Any) -> Flow:
        if not isinstance(data, Mapping):
            raise FlowSyntaxError(
                "a flow file must be a mapping with 'flow:', 'nodes:' and 'wires:'",
                source=self.source,
                line=1,
                column=1,
            )
        for key in data:
            if key not in TOP_KEYS:
                raise self.fail(data, key, f"unknown top-level key {key!r} (allowed: {', '.join(TOP_KEYS)})")
        name = data.get("flow")
        if not isinstance(name, str) or not name.strip():
            raise self.fail(data, "flow", "'flow:' must give the flow's name")
        version = data.get("version", 1)
        if not isinstance(version, int) or isinstance(version, bool) or version != 1:
            raise self.fail(
                data, "version", f"unsupported flow file version {version!r} (this reads version 1)"
            )
        description = data.get("description")
        if description is not None and not isinstance(description, str):
            raise self.fail(data, "description", "'description' must be a string")
        try:
            named = parse_named_types(self.mapping(data, "types"))
        except TypeSpecError as exc:
            raise self.fail(data, "types", str(exc)) from None
        use = data.get("use") or []
        if not isinstance(use, list) or not all(isinstance(u, str) for u in use):
            raise self.fail(data, "use", "'use' must be a list of rail pack names")
        flow = Flow(
            name=name,
            inputs=self.types(data, "inputs", named, "input"),
            outputs=self.types(data, "outputs", named, "output"),
            types=named,
            constants=dict(self.mapping(data, "constants")),
            models=dict(self.mapping(data, "models")),
            use=list(use),
            version=version,
            description=description,
        )
        nodes = self.mapping(data, "nodes")
        for node_name, spec in nodes.items():
            flow.nodes[node_name] = self.node(nodes, node_name, spec, named)
        flow.wires = self.wires(data)
        rails = self.mapping(data, "rails")
        for rail_name, spec in rails.items():
            flow.rails[rail_name] = self.rail(rails, rail_name, spec)
        return flow

    def node(self, parent: Mapping[str, Any], name: Any, spec: Any, named: Mapping[str, Type]) -> Node:
        if not isinstance(name, str) or not name.isidentifier():
            raise self.fail(parent, name, f"node name {name!r} is not an identifier")
        if not isinstance(spec, Mapping):
            raise self.fail(parent, name, f"node '{name}' must be a mapping with 'kind:'")
        kind = spec.get("kind")
        if not isinstance(kind, str):
            raise self.fail(spec, "kind", f"node '{name}' needs 'kind:' (one of {', '.join(sorted(KINDS))})")
        config = {k: v for k, v in spec.items() if k not in NODE_COMMON}
        if kind == "flow" and "flow" in config:
            config["flow"] = self.subflow(spec, name, config["flow"])
        if kind == "agent" and isinstance(config.get("tools"), Mapping):
            config["tools"] = self.agent_tools(spec["tools"], name, named)
        guarantees = spec.get("guarantees") or []
        if not isinstance(guarantees, list):
            raise self.fail(
                spec, "guarantees", f"node '{name}': guarantees must be a list of rail expressions"
            )
        return Node(
            name=name,
            kind=kind,
            inputs=self.types(spec, "inputs", named, f"node '{name}' input"),
            outputs=self.types(spec, "outputs", named, f"node '{name}' output"),
            config=config,
            guarantees=list(guarantees),
            timeout=spec.get("timeout"),
            retries=spec.get("retries", 0),
        )

    def agent_tools(
        self, tools: Mapping[str, Any], node: str, named: Mapping[str, Type]
    ) -> dict[Any, AgentTool | McpServer]:
        """An agent's ``tools:`` entries, their port types parsed; values are checked by validation."""
        out: dict[Any, AgentTool | McpServer] = {}
        for name, entry in tools.items():
            what = f"node '{node}' tool '{name}'"
            if isinstance(entry, Mapping) and "mcp" in entry:
                out[name] = self.mcp_server(tools, entry, what)
                continue
            if not isinstance(entry, Mapping) or "tool" not in entry:
                raise self.fail(
                    tools,
                    name,
                    f"{what} must be a mapping with 'tool: module:function' or 'mcp: {{command: [...]}}'",
                )
            for key in entry:
                if key not in TOOL_KEYS:
                    raise self.fail(
                        entry, key, f"{what}: unknown key {key!r} (allowed: {', '.join(TOOL_KEYS)})"
                    )
            out[name] = AgentTool(
                entry["tool"],
                entry.get("description"),
                self.types(entry, "inputs", named, f"{what} input"),
                self.types(entry, "outputs", named, f"{what} output"),
                entry.get("approve", False),
                entry.get("timeout"),
            )
        return out

    def mcp_server(self, tools: Mapping[str, Any], entry: Mapping[str, Any], what: str) -> McpServer:
        """An ``mcp:`` entry; its values are checked by validation."""
        spec = entry["mcp"]
        if len(entry) != 1 or not isinstance(spec, Mapping) or not ({"command", "url"} & set(spec)):
            raise self.fail(
                entry,
                "mcp",
                f"{what} must be exactly {{mcp: {{command: [program, arg, ...], timeout: ...}}}} "
                "or {mcp: {url: http://host:port/mcp, timeout: ...}}",
            )
        for key in spec:
            if key not in MCP_KEYS:
                raise self.fail(
                    spec, key, f"{what}: unknown mcp key {key!r} (allowed: {', '.join(MCP_KEYS)})"
                )
        return McpServer(spec.get("command"), spec.get("timeout"), spec.get("url"))

    def subflow(self, spec: Mapping[str, Any], name: str, value: Any) -> Flow:
        """The flow a ``flow`` node names: inline, or a file relative to this file's directory."""
        if not isinstance(value, Mapping | str):
            raise self.fail(
                spec, "flow", "a flow node's 'flow' must be a file path or an inline flow mapping"
            )

        def refuse(problem: str) -> FlowSyntaxError:
            return self.fail(spec, "flow", f"node '{name}': the sub-flow {problem}", _SubflowError)

        if len(self.chain) > MAX_SUBFLOW_DEPTH:
            nesting = " -> ".join(self.chain)
            raise refuse(f"would nest sub-flows more than {MAX_SUBFLOW_DEPTH} deep ({nesting} -> ...)")
        if isinstance(value, Mapping):
            source = f"{self.source} (inline flow)"
            return _Reader(source, self.base_dir, (*self.chain, source), self.files).read(value)
        path = Path(value)
        if not path.is_absolute():
            if self.base_dir is None:
                raise refuse(
                    f"{value!r} is a relative path, and flow text loaded without a file has no directory "
                    "to resolve it against (pass base_dir= to loads, or load the file with load)"
                )
            path = self.base_dir / path
        shown = str(path) if str(path).isprintable() else repr(str(path))  # one line, whatever the path
        chain = (*self.chain, shown)
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, a NUL byte
            raise refuse(f"{value!r} ({shown}) cannot be read: {exc}") from None
        if resolved in self.files:
            raise refuse(f"{value!r} includes itself: {' -> '.join(chain)}")
        try:
            inner = _load_file(path, chain, (*self.files, resolved))
        except UnreadableFile as exc:
            raise refuse(f"{value!r} ({shown}) cannot be read: {exc}") from None
        except _SubflowError:
            raise  # from a sub-flow further down, whose error names its own including file
        except FlowSyntaxError as exc:
            raise refuse(f"{value!r} cannot be loaded: {exc}") from None
        inner.origin = value  # saved back as this path, not inline
        return inner

    def wires(self, data: Mapping[str, Any]) -> list[Wire]:
        texts = data.get("wires") or []
        if not isinstance(texts, list):
            raise self.fail(data, "wires", "'wires' must be a list of 'source -> target' strings")
        out = []
        for text in texts:
            try:
                out.append(Wire.parse(text))
            except FlowError as exc:
                raise self.fail(data, "wires", str(exc)) from None
        return out

    def rail(self, parent: Mapping[str, Any], name: Any, spec: Any) -> RailSpec:
        if not isinstance(name, str) or not name.isidentifier():
            raise self.fail(parent, name, f"rail name {name!r} is not an identifier")
        if isinstance(spec, str):  # shorthand is not allowed: 'on' is always needed
            raise self.fail(parent, name, f"rail '{name}' must be a mapping with 'on:' and 'check:'")
        if not isinstance(spec, Mapping):
            raise self.fail(parent, name, f"rail '{name}' must be a mapping with 'on:' and 'check:'")
        for key in spec:
            if key not in RAIL_KEYS:
                raise self.fail(
                    spec, key, f"rail '{name}': unknown key {key!r} (allowed: {', '.join(RAIL_KEYS)})"
                )
        if not isinstance(spec.get("on"), str):
            raise self.fail(spec, "on", f"rail '{name}': 'on' must be a port reference string")
        if ("check" in spec) == ("use" in spec):
            raise self.fail(
                parent, name, f"rail '{name}' needs either 'check' (rail text) or 'use' (pack.rail)"
            )
        key = "check" if "check" in spec else "use"
        if not isinstance(spec[key], str):
            raise self.fail(spec, key, f"rail '{name}': '{key}' must be a string")
        args = spec.get("with") or {}
        if not isinstance(args, Mapping):
            raise self.fail(spec, "with", f"rail '{name}': 'with' must map template parameters to values")
        enforce = spec.get("enforce", "block")
        if enforce not in ENFORCE_MODES:
            raise self.fail(
                spec, "enforce", f"rail '{name}': enforce must be one of {', '.join(ENFORCE_MODES)}"
            )
        attempts = spec.get("max_attempts")
        if attempts is not None and (
            not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1
        ):
            raise self.fail(spec, "max_attempts", f"rail '{name}': max_attempts must be a positive integer")
        try:
            on = PortRef.parse(spec["on"])
        except FlowError as exc:
            raise self.fail(spec, "on", str(exc)) from None
        try:
            return RailSpec(
                name,
                on,
                spec.get("check"),
                enforce,
                attempts,
                spec.get("use"),
                dict(args),
            )
        except FlowError as exc:
            raise self.fail(spec, key, str(exc)) from None


def _parse(loader_class: type[yaml.SafeLoader] | type[yaml.CSafeLoader], text: str, source: str) -> Any:
    loader = loader_class(text)
    try:
        root = loader.get_single_node()
        _check_expansion(root, source)
        return loader.construct_document(root) if root is not None else None
    finally:
        loader.dispose()


def parse_yaml(text: str | bytes, source: str = "<flow>") -> Any:
    """Plain data from YAML or JSON text, read the way flow files are read.

    YAML 1.2 booleans, duplicate keys refused, no tags JSON cannot hold, no alias bombs, at
    most ``MAX_FLOW_BYTES``. Raises ``FlowSyntaxError`` (naming ``source``), never anything else.
    """
    if len(text) > MAX_FLOW_BYTES:
        raise FlowSyntaxError(f"the file is larger than {_amount(MAX_FLOW_BYTES)}", source=source)
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FlowSyntaxError(f"the file is not UTF-8 text (byte {exc.start})", source=source) from None
    try:
        for fast in _FAST_LOADERS:
            # Refused: read again below, for the same error and message as without libyaml.
            with contextlib.suppress(yaml.YAMLError, RecursionError, ValueError, TypeError):
                return _parse(fast, text, source)
        return _parse(_Loader, text, source)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise FlowSyntaxError(
            problem or "invalid YAML",
            source=source,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from None
    except (yaml.YAMLError, RecursionError, ValueError, TypeError) as exc:
        raise FlowSyntaxError(f"invalid YAML: {exc}", source=source) from None


def _read(
    data: Any, source: str, base_dir: Path | None, chain: tuple[str, ...], files: tuple[Path, ...]
) -> Flow:
    try:
        return _Reader(source, base_dir, chain, files).read(data)
    except RecursionError:
        raise FlowSyntaxError("the file is nested too deeply", source=source) from None


def loads(text: str | bytes, source: str = "<flow>", base_dir: Path | None = None) -> Flow:
    """Parse flow text (YAML or JSON). Raises ``FlowError`` subclasses, never anything else.

    Sub-flow paths are relative to ``base_dir``; without it only absolute paths are allowed.
    """
    return _read(parse_yaml(text, source), source, base_dir, (source,), ())


def load(path: str | Path) -> Flow:
    """Load a ``*.flow.yaml`` or ``*.flow.json`` file (and the sub-flow files it names)."""
    path = Path(path)
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, a NUL byte
        raise FlowSyntaxError(f"cannot read the file: {exc}", source=str(path)) from None
    try:
        return _load_file(path, (str(path),), (resolved,))
    except UnreadableFile as exc:
        raise FlowSyntaxError(str(exc), source=str(path)) from None


def _load_file(path: Path, chain: tuple[str, ...], files: tuple[Path, ...]) -> Flow:
    """Read, parse and build the flow in ``path``; ``chain`` and ``files`` include it."""
    return _read(parse_yaml(read_limited(path), str(path)), str(path), path.parent, chain, files)


# -- saving -------------------------------------------------------------------------------


def dump(flow: Flow) -> dict[str, Any]:
    """The flow as plain data in the canonical key order (docs/architecture.md, "Flow files")."""
    out: dict[str, Any] = {"flow": flow.name, "version": flow.version}
    if flow.description is not None:
        out["description"] = flow.description
    if flow.use:
        out["use"] = list(flow.use)
    if flow.types:
        out["types"] = {name: _type_spec(typ, flow.types, expand=True) for name, typ in flow.types.items()}
    if flow.constants:
        out["constants"] = dict(flow.constants)
    if flow.models:
        out["models"] = dict(flow.models)
    out["inputs"] = {k: _type_spec(t, flow.types) for k, t in flow.inputs.items()}
    out["outputs"] = {k: _type_spec(t, flow.types) for k, t in flow.outputs.items()}
    out["nodes"] = {name: _dump_node(node, flow.types) for name, node in flow.nodes.items()}
    out["wires"] = [str(w) for w in flow.wires]
    if flow.rails:
        out["rails"] = {name: _dump_rail(r) for name, r in flow.rails.items()}
    return out


def _type_spec(typ: Type, known: Mapping[str, Type], *, expand: bool = False) -> Any:
    """A type's spec, by name only where the flow's ``types:`` defines that name as this type."""
    if typ.name is not None and not expand and known.get(typ.name) == typ:
        return typ.name
    if isinstance(typ, List):
        spec: dict[str, Any] = {"list": _type_spec(typ.item, known)}
        if typ.max_items is not None:
            spec["max_items"] = typ.max_items
        return spec
    if isinstance(typ, Record):
        return {key: _type_spec(sub, known) for key, sub in typ.fields}
    return typ.to_spec(expand=True)


def _dump_node(node: Node, known: Mapping[str, Type]) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": node.kind}
    spec = KINDS.get(node.kind)
    order = list(spec.keys) if spec else []
    for key in order + sorted(k for k in node.config if k not in order):
        if key in node.config:
            value = node.config[key]
            if isinstance(value, Flow):
                value = value.origin or dump(value)
            elif key == "tools" and isinstance(value, Mapping):
                value = {
                    name: tool.to_data(lambda t: _type_spec(t, known))
                    if isinstance(tool, AgentTool)
                    else tool.to_data()
                    if isinstance(tool, McpServer)
                    else tool
                    for name, tool in value.items()
                }
            out[key] = value
    out["inputs"] = {k: _type_spec(t, known) for k, t in node.inputs.items()}
    out["outputs"] = {k: _type_spec(t, known) for k, t in node.outputs.items()}
    if node.guarantees:
        out["guarantees"] = list(node.guarantees)
    if node.timeout is not None:
        out["timeout"] = node.timeout
    if node.retries != 0:  # any other value as it was read (validation reports a bad one)
        out["retries"] = node.retries
    return out


def _dump_rail(rail: RailSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"on": str(rail.on)}
    if rail.check is not None:
        out["check"] = rail.check
    else:
        out["use"] = rail.use
        if rail.args:
            out["with"] = dict(rail.args)
    if rail.enforce != "block":
        out["enforce"] = rail.enforce
    if rail.max_attempts is not None:
        out["max_attempts"] = rail.max_attempts
    return out


class _Dumper(yaml.SafeDumper):
    """Writes leaf values in flow style (``{a: 1}``) with YAML 1.2 booleans."""


_yaml12_booleans(_Dumper)
_Dumper.add_representer(_Located, lambda d, v: d.represent_dict(v))
# Text with line breaks goes in double quotes, on one line: single quotes would fold it over
# several lines, and YAML 1.1 reads NEL, LS and PS as breaks that only double quotes escape.
_Dumper.add_representer(
    str,
    lambda d, v: d.represent_scalar(
        "tag:yaml.org,2002:str", v, style='"' if any(c in v for c in "\n\r\x85\u2028\u2029") else None
    ),
)

BLOCK_SECTIONS = ("types", "constants", "models", "rails")


def _inline(value: Any) -> str:
    text = yaml.dump(
        value, Dumper=_Dumper, default_flow_style=True, width=1 << 30, allow_unicode=True, sort_keys=False
    )
    return text.removesuffix("\n").removesuffix("\n...").strip(" \n")


def _block_ok(text: str) -> bool:
    """Multi-line text that a ``|`` block scalar reproduces exactly."""
    if "\n" not in text.rstrip("\n") or text.endswith("\n\n") or text[0] in " \t\n":
        return False
    lines = text.removesuffix("\n").split("\n")
    return all(line == line.rstrip() and line.isprintable() for line in lines)


def _emit(key: str, value: Any, indent: int, lines: list[str]) -> None:
    """One ``key: value`` line, or a block scalar for multi-line text."""
    pad = " " * indent
    if isinstance(value, str) and _block_ok(value):
        chomp = "" if value.endswith("\n") else "-"
        lines.append(f"{pad}{_inline(key)}: |{chomp}")
        lines += [f"{pad}  {line}" if line else "" for line in value.removesuffix("\n").split("\n")]
    else:
        lines.append(f"{pad}{_inline(key)}: {_inline(value)}")


def _emit_flow(data: dict[str, Any], indent: int, lines: list[str]) -> None:
    pad = " " * indent
    for key, value in data.items():
        if key in BLOCK_SECTIONS:
            lines.append(f"{pad}{key}:")
            for name, item in value.items():
                _emit(name, item, indent + 2, lines)
        elif key == "nodes":
            lines.append(f"{pad}nodes:")
            for name, node in value.items():
                lines.append(f"{pad}  {_inline(name)}:")
                for node_key, item in node.items():
                    # an inline sub-flow as a block; anything else (an empty or stray mapping) inline
                    if node_key == "flow" and node.get("kind") == "flow" and isinstance(item, dict) and item:
                        lines.append(f"{pad}    flow:")
                        _emit_flow(item, indent + 6, lines)
                    elif node_key == "tools" and isinstance(item, dict) and item:  # one line per tool
                        lines.append(f"{pad}    tools:")
                        for tool_name, tool in item.items():
                            _emit(tool_name, tool, indent + 6, lines)
                    else:
                        _emit(node_key, item, indent + 4, lines)
        elif key == "wires":
            lines.append(f"{pad}wires:")
            lines += [f"{pad}  - {_inline(w)}" for w in value]
        else:
            _emit(key, value, indent, lines)


_YAML_UNPRINTABLE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")


def dumps(flow: Flow, fmt: str = "yaml") -> str:
    """The flow file text (``fmt`` is ``yaml`` or ``json``) in the canonical layout."""
    data = dump(flow)
    if fmt == "json":
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        # Characters YAML may not hold raw, or reads as line breaks (the loader reads JSON as
        # YAML), stay escaped.
        return _YAML_UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    lines: list[str] = []
    _emit_flow(data, 0, lines)
    return "\n".join(lines) + "\n"


def save(flow: Flow, path: str | Path) -> Path:
    """Write the flow to ``path`` (JSON when it ends in ``.json``); returns the path."""
    path = Path(path)
    path.write_text(dumps(flow, "json" if path.suffix == ".json" else "yaml"), encoding="utf-8")
    return path


def flow_hash(flow: Flow) -> str:
    """SHA-256 of the canonical JSON form: equal flows hash equal, whatever their formatting."""
    canonical = json.dumps(dump(flow), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
