"""Errors of the rails layer, all subclasses of ``workbench.errors.RailError``.

    RailError (workbench.errors)
    ├── RailSyntaxError     text that is not a rail (bad syntax, a forbidden construct)
    ├── RailNameError       a name or field the scope does not have
    ├── RailSortError       operands of the wrong sort (``'ticker' + 1``)
    └── RailValueError      a runtime value a rail cannot be checked on (missing field...)

Parse errors carry ``rail`` (its name), ``line`` and ``column`` (1-based characters)
and their message reads ``rail 'budget', column 7: ...``.
"""

from __future__ import annotations

from workbench.errors import RailError

__all__ = ["RailError", "RailNameError", "RailSortError", "RailSyntaxError", "RailValueError"]


class _Located(RailError):
    def __init__(self, message: str, *, rail: str = "rail", line: int = 1, column: int = 1) -> None:
        self.rail, self.line, self.column, self.reason = rail, line, column, message
        where = f"column {column}" if line == 1 else f"line {line}, column {column}"
        super().__init__(f"rail '{rail}', {where}: {message}")


class RailSyntaxError(_Located):
    """The text is not a rail: a syntax error or a construct the language forbids."""


class RailNameError(_Located):
    """A name, field or function the rail's scope does not provide."""


class RailSortError(_Located):
    """An operation applied to operands of the wrong sort."""


class RailValueError(RailError):
    """A value passed to ``Rail.check`` that the rail cannot be evaluated on."""
