"""Imports point one way: no two modules import each other, and each layer only imports below it.

Imports inside ``if TYPE_CHECKING:`` are annotations only and do not count; imports inside
functions do (they hide a cycle, they do not remove it). Layers, bottom to top, are listed in
docs/architecture.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "workbench"

# Bottom to top; a module may import its own layer's modules and any layer listed before it.
LAYERS = [
    (
        "workbench.errors",
        "workbench.types",
        "workbench.spans",
        "workbench.otel",
        "workbench.netsafety",
        "workbench.processes",
    ),
    ("workbench.rails", "workbench.kernels"),
    ("workbench.profiling", "workbench.models"),
    ("workbench.decoding", "workbench.models.server"),  # the server masks requests' rails
    ("workbench.flow",),
    ("workbench.runtime",),
    ("workbench.traces",),
    ("workbench.examples", "workbench.api", "workbench.app"),
    ("workbench.cli", "workbench.__main__"),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}


def _runtime_imports(name: str, path: Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text())
    hidden = set()
    for node in ast.walk(tree):  # imports under `if TYPE_CHECKING:` are for annotations only
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", "")) == (
            "TYPE_CHECKING"
        ):
            hidden.update(id(n) for sub in node.body for n in ast.walk(sub))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            target = ".".join(p for p in (base, node.module or "") if p)
            # `from pkg import sub` imports the submodule; `from mod import name` the module
            subs = [f"{target}.{a.name}" for a in node.names]
            candidates = [s if s in known else target for s in subs]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        found.update(c for c in candidates if c in known and c != name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _runtime_imports(name, path, set(modules)) for name, path in modules.items()}


def _layer(name: str) -> int:
    if name == "workbench":  # the package's lazy facade over workbench.api
        name = "workbench.api"
    # the longest prefix decides: a module may sit above its package's layer
    matches = [
        (len(p), index)
        for index, prefixes in enumerate(LAYERS)
        for p in prefixes
        if name == p or name.startswith(p + ".")
    ]
    if matches:
        return max(matches)[1]
    raise AssertionError(f"{name} is in no layer: add it to LAYERS and docs/architecture.md")


def test_no_two_modules_import_each_other():
    graph = _graph()
    pairs = sorted(
        (a, b)
        for a, deps in graph.items()
        for b in deps
        if a < b
        and a in graph.get(b, ())
        # a package's __init__ re-exporting its own submodules is not a cycle
        and not b.startswith(a + ".")
        and not a.startswith(b + ".")
    )
    assert pairs == []


def test_every_module_imports_only_its_layer_or_below():
    wrong = sorted(f"{a} imports {b}" for a, deps in _graph().items() for b in deps if _layer(b) > _layer(a))
    assert wrong == []


@pytest.mark.parametrize("standalone", ["workbench.rails", "workbench.kernels"])
def test_rails_and_kernels_stand_alone(standalone):
    allowed = ("workbench.errors", "workbench.types", standalone)
    graph = _graph()
    outside = sorted(
        f"{a} imports {b}"
        for a, deps in graph.items()
        if a == standalone or a.startswith(standalone + ".")
        for b in deps
        if not any(b == p or b.startswith(p + ".") for p in allowed)
    )
    assert outside == []
