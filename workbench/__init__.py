"""Agent Workbench: typed agent flows, Z3-checked rails, local models, DuckDB traces.

``workbench.run``, ``workbench.check`` and ``workbench.load`` (from ``workbench.api``) are
the short way in, ``workbench.show(flow)`` draws a flow in a notebook (the ``app`` extra);
they are imported on first use so that ``import workbench`` stays cheap.
"""

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("agent-workbench")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "arun", "check", "load", "run", "show"]


def __getattr__(name: str) -> Any:
    if name in ("arun", "check", "load", "run"):
        from workbench import api

        return getattr(api, name)
    if name == "show":  # the app extra (panel) is imported only when asked for
        from workbench.app.workbench_app import show

        return show
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")
