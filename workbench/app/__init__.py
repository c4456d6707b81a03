"""The workbench app (Panel): canvas, rails, run and traces views, and ``workbench serve``.

Each part builds a Panel viewable from a flow document or a trace store, so a notebook can
host any of them; ``workbench.show(flow)`` renders the canvas, rails panel and run view inline.
Needs the ``app`` extra (panel, panel-reactflow).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "FlowCanvas",
    "FlowDocument",
    "RailsPanel",
    "RunCompare",
    "RunView",
    "SqlConsole",
    "TokenView",
    "TracesView",
    "Workbench",
    "flow_python",
    "show",
]

_WHERE = {
    "FlowCanvas": "canvas",
    "FlowDocument": "document",
    "RailsPanel": "rails_panel",
    "RunCompare": "run_compare",
    "SqlConsole": "sql_console",
    "flow_python": "export",
    "RunView": "run_view",
    "TokenView": "token_view",
    "TracesView": "traces_view",
    "Workbench": "workbench_app",
    "show": "workbench_app",
}


def __getattr__(name: str) -> Any:
    # Lazy: importing panel costs a second; `workbench serve --help` should not pay it.
    if name in _WHERE:
        from importlib import import_module

        return getattr(import_module(f"workbench.app.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'workbench.app' has no attribute {name!r}")
