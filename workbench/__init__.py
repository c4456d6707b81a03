"""Agent Workbench: typed agent flows, Z3-checked rails, local models, DuckDB traces."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("agent-workbench")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
