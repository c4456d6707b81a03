"""The public surface of workbench.rails, pinned."""

from __future__ import annotations

import ast
import pathlib

import workbench.rails as rails


def test_public_names_are_pinned_and_sorted() -> None:
    assert rails.__all__ == [
        "STATUSES",
        "FeasibleRange",
        "Pack",
        "Param",
        "ProofResult",
        "Prover",
        "Rail",
        "RailError",
        "RailNameError",
        "RailSortError",
        "RailSyntaxError",
        "RailTemplate",
        "RailValueError",
        "Scope",
        "Verdict",
        "available_packs",
        "explain",
        "load_pack",
        "parse_rail",
        "register_pack",
    ]
    assert rails.__all__ == sorted(rails.__all__, key=lambda n: (not n.isupper(), n))
    assert rails.STATUSES == ("proved", "enforced", "conflict", "vacuous", "unsupported")
    for name in rails.__all__:
        assert getattr(rails, name).__doc__ or name == "STATUSES"


def test_rails_imports_nothing_above_types() -> None:
    """rails/ stands alone: only workbench.types and workbench.errors from the package."""
    root = pathlib.Path(rails.__file__).parent
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                mod = node.module
                if mod.startswith("workbench"):
                    assert mod in ("workbench.types", "workbench.errors") or mod.startswith(
                        "workbench.rails"
                    ), (
                        path,
                        mod,
                    )
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in ("eval", "exec", "compile"), path
