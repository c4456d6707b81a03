"""Ports and wires: ``node.port`` references and ``"a.out -> b.in"`` connections.

The smallest parts of a flow, below both the data model (``workbench.flow.model``) and
composition (``workbench.flow.compose``), so that neither has to import the other's module.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from workbench.errors import FlowError

__all__ = ["PortRef", "Wire", "wires_from"]


@dataclass(frozen=True, order=True)
class PortRef:
    """A port: ``node.port`` for a node's port, a bare name (``node=None``) for the flow's."""

    node: str | None
    port: str

    @classmethod
    def parse(cls, text: str) -> PortRef:
        """Parse ``"node.port"`` or ``"name"``."""
        if not isinstance(text, str) or not text.strip():
            raise FlowError(f"a port reference must be 'node.port' or 'name', got {text!r}")
        text = text.strip()
        node, dot, port = text.partition(".")
        if not dot:
            return cls(None, _ident(text, "port name"))
        return cls(_ident(node, "node name"), _ident(port, "port name"))

    def __str__(self) -> str:
        return self.port if self.node is None else f"{self.node}.{self.port}"


def _ident(text: str, what: str) -> str:
    if not text.isidentifier():
        raise FlowError(f"{what} {text!r} is not a valid identifier")
    return text


@dataclass(frozen=True)
class Wire:
    """A wire from ``source`` to ``target``; written ``"source -> target"`` in flow files."""

    source: PortRef
    target: PortRef

    @classmethod
    def parse(cls, text: str) -> Wire:
        """Parse ``"a.out -> b.in"``."""
        if not isinstance(text, str) or text.count("->") != 1:
            raise FlowError(f"a wire must read 'source -> target', got {text!r}")
        left, right = text.split("->")
        return cls(PortRef.parse(left), PortRef.parse(right))

    def __str__(self) -> str:
        return f"{self.source} -> {self.target}"


def wires_from(texts: Iterable[str]) -> list[Wire]:
    """Parse a list of ``"a -> b"`` strings."""
    return [Wire.parse(t) for t in texts]
