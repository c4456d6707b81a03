"""Example flows and the tools they call; ``flow_path(name)`` finds a shipped flow file."""

from __future__ import annotations

from pathlib import Path

__all__ = ["FLOWS_DIR", "flow_path", "list_flows"]

FLOWS_DIR = Path(__file__).parent / "flows"


def list_flows() -> list[str]:
    """Names of the shipped example flows."""
    return sorted(p.name.removesuffix(".flow.yaml") for p in FLOWS_DIR.glob("*.flow.yaml"))


def flow_path(name: str) -> Path:
    """Path of the shipped example flow ``name`` (e.g. ``"trader"``)."""
    return FLOWS_DIR / f"{name}.flow.yaml"
