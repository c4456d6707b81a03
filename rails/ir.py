"""The typed intermediate representation a parsed rail compiles from.

Every node is a frozen dataclass carrying its ``sort`` and the ``span`` (start, end
character offsets into the rail text) it came from, so both backends (the evaluator in
``evaluator.py`` and the Z3 translation in ``z3terms.py``) and error messages share one
source of truth. The parser (``parser.py``) is the only producer.

Sorts: ``int``, ``real``, ``str``, ``bool``, ``enum`` (carries the ``Enum`` type),
``list`` (carries the item sort; lists only appear in ``len`` and ``in``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from workbench.types import Enum, Type

__all__ = [
    "BOOL",
    "INT",
    "REAL",
    "STR",
    "Arith",
    "Atom",
    "BoolOp",
    "Call",
    "Compare",
    "Const",
    "Expr",
    "Implies",
    "Member",
    "Neg",
    "Not",
    "Pow",
    "Sort",
    "Var",
    "walk",
]


@dataclass(frozen=True)
class Sort:
    """The sort of a rail expression (what Z3 would call it)."""

    kind: str  # int | real | str | bool | enum | list | record
    enum: Enum | None = None
    item: Sort | None = None
    record: Type | None = field(default=None, compare=False)

    @property
    def numeric(self) -> bool:
        """Int or real."""
        return self.kind in ("int", "real")

    def describe(self) -> str:
        """Name used in error messages (``int``, ``str``, ``enum [buy, sell]``...)."""
        if self.kind == "enum" and self.enum is not None:
            return self.enum.name or "enum [" + ", ".join(self.enum.values) + "]"
        if self.kind == "list" and self.item is not None:
            return f"list of {self.item.describe()}"
        return self.kind


INT, REAL, STR, BOOL = Sort("int"), Sort("real"), Sort("str"), Sort("bool")


@dataclass(frozen=True)
class Expr:
    """Base of IR nodes: a sort and the source span ``(start, end)``."""

    sort: Sort
    span: tuple[int, int]


@dataclass(frozen=True)
class Const(Expr):
    """A literal or a named constant. Reals are stored as exact ``Fraction``; a list
    constant is a tuple of plain values of ``sort.item``."""

    value: Any


@dataclass(frozen=True)
class Var(Expr):
    """A leaf value: a root name plus ``.field`` accesses down to a non-record type."""

    root: str
    fields: tuple[str, ...]
    type: Type

    @property
    def path(self) -> str:
        """Dotted path ``root.f1.f2``."""
        return ".".join((self.root, *self.fields))


@dataclass(frozen=True)
class Arith(Expr):
    """Binary arithmetic ``+ - * / // %`` (``+`` on strings concatenates)."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Neg(Expr):
    """Unary minus."""

    arg: Expr


@dataclass(frozen=True)
class Pow(Expr):
    """``base ** exponent`` with a small non-negative constant integer exponent."""

    base: Expr
    exponent: int


@dataclass(frozen=True)
class Compare(Expr):
    """One link of a (possibly chained) comparison: ``left op right``."""

    op: str  # == != < <= > >=
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Member(Expr):
    """``item in container`` (``negated`` for ``not in``). The container is a list
    constant, a tuple of expressions (a list literal), a list variable or a string
    (substring test)."""

    item: Expr
    container: Expr | tuple[Expr, ...]
    negated: bool


@dataclass(frozen=True)
class Call(Expr):
    """A built-in function: len abs min max matches startswith endswith and the
    predicates of ``builtins.py``. ``regex`` holds the compiled pattern for ``matches``."""

    fn: str
    args: tuple[Expr, ...]
    regex: Any = field(default=None, compare=False)


@dataclass(frozen=True)
class Not(Expr):
    """Boolean negation."""

    arg: Expr


@dataclass(frozen=True)
class BoolOp(Expr):
    """``and`` / ``or`` over two or more operands."""

    op: str
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Implies(Expr):
    """``implies(a, b)``."""

    left: Expr
    right: Expr


@dataclass(frozen=True)
class Atom(Expr):
    """A boolean leaf of the rail's and/or/not/implies structure: the unit reported in
    ``Verdict.failed_atoms``. ``text`` is its source; ``partial`` is true when it divides,
    so it is false wherever a divisor is zero (both backends, see docs/rails.md)."""

    expr: Expr
    text: str
    partial: bool


def walk(node: Expr | tuple[Expr, ...]) -> Iterator[Expr]:
    """Yield ``node`` and every IR node below it (pre-order)."""
    if isinstance(node, tuple):
        for item in node:
            yield from walk(item)
        return
    yield node
    for name in ("arg", "left", "right", "base", "item", "expr"):
        child = getattr(node, name, None)
        if isinstance(child, Expr):
            yield from walk(child)
    if isinstance(node, Member):
        yield from walk(node.container)
    if isinstance(node, Call | BoolOp):
        yield from walk(node.args)


def exact(value: float | int | Fraction) -> Fraction | int:
    """The exact rational a number stands for in rails: an int (or Fraction) is itself, a float the
    shortest decimal that round-trips to it (``repr``), so ``0.1`` means 1/10."""
    if isinstance(value, float):
        return Fraction(repr(value))
    return value
