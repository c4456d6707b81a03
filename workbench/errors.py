"""The exception hierarchy of Agent Workbench.

Every error a user can cause ends as one of these, with a one-paragraph message and
the exit code the command line documents (docs/architecture.md). Anything else escaping is a bug.

    WorkbenchError                 exit_code 1   base of everything we raise on purpose
    ├── UsageError                 exit_code 2   bad command-line usage or API call
    ├── FlowError                  exit_code 2   a flow that cannot be loaded or is invalid
    │   ├── FlowSyntaxError                      unreadable YAML/JSON (carries file:line:column)
    │   ├── TypeSpecError                        a bad type expression or unknown type name
    │   └── FlowValidationError                  one or more wiring/type/name problems
    ├── TrustError                 exit_code 2   a flow asks to import code nobody trusted
    ├── ValueValidationError       exit_code 2   an input value that does not fit its type
    ├── RailError                  exit_code 2   a rail that cannot be parsed or typed (rails layer)
    └── RunError                   exit_code 1   a run that started and failed
        ├── NodeError                            a node raised; names the node and the cause
        ├── NodeTimeout                          a node ran past its timeout
        ├── RailViolation                        a rail blocked a value (rails layer)
        └── ModelUnavailable                     an llm node has no usable model backend

This module sits at the bottom layer with `workbench.types`: `rails` and `kernels`
may import it.
"""

from __future__ import annotations

__all__ = [
    "FlowError",
    "FlowSyntaxError",
    "FlowValidationError",
    "ModelUnavailable",
    "NodeError",
    "NodeTimeout",
    "RailError",
    "RailViolation",
    "RunError",
    "TrustError",
    "TypeSpecError",
    "UsageError",
    "ValueValidationError",
    "WorkbenchError",
]


class WorkbenchError(Exception):
    """Base of every error Agent Workbench raises on purpose."""

    exit_code: int = 1


class UsageError(WorkbenchError):
    """Bad command-line usage or a bad argument to a public function."""

    exit_code = 2


class FlowError(WorkbenchError):
    """A flow that cannot be loaded, parsed or validated."""

    exit_code = 2


class FlowSyntaxError(FlowError):
    """Unreadable flow text; the message starts with ``file:line:column``."""

    def __init__(
        self, message: str, *, source: str = "<flow>", line: int | None = None, column: int | None = None
    ) -> None:
        self.source, self.line, self.column = source, line, column
        where = source if line is None else f"{source}:{line}:{column or 1}"
        super().__init__(f"{where}: {message}")


class TypeSpecError(FlowError):
    """A type expression that is malformed or names an unknown type."""


class FlowValidationError(FlowError):
    """One or more problems found while validating a flow; ``errors`` lists them all."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        if len(self.errors) == 1:
            message = self.errors[0]
        else:
            message = f"{len(self.errors)} problems: " + "; ".join(self.errors)
        super().__init__(message)


class TrustError(WorkbenchError):
    """A flow names code outside the workbench package and the caller did not trust it."""

    exit_code = 2


class ValueValidationError(WorkbenchError):
    """A value that does not fit its declared type; ``path`` names the bad field."""

    exit_code = 2

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.reason = message
        super().__init__(f"{path}: {message}")


class RailError(WorkbenchError):
    """A rail that cannot be parsed, typed or compiled."""

    exit_code = 2


class RunError(WorkbenchError):
    """A run that started and failed."""

    exit_code = 1


class NodeError(RunError):
    """A node's body raised; the message names the node and the cause."""

    def __init__(self, node: str, cause: str) -> None:
        self.node = node
        self.cause = cause
        super().__init__(f"node '{node}' failed: {cause}")


class NodeTimeout(NodeError):
    """A node ran longer than its timeout on every attempt."""


class RailViolation(RunError):
    """A rail rejected a value at a port."""


class ModelUnavailable(RunError):
    """An llm node has no model backend that can serve it."""
