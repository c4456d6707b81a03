"""Moving plain values between Python and Z3, exactly.

Strings go through Z3's code-point API (``Z3_mk_u32string``): ``z3.StringVal`` would
read backslash escapes inside user text. Floats become the rational of their shortest
round-trip decimal (``0.1`` -> 1/10), the rails semantics of every float.
Enum sorts are declared once per context and cached here, keyed by their values.
"""

from __future__ import annotations

import ctypes
import threading
import weakref
from fractions import Fraction
from typing import Any

import z3
from z3.z3core import Z3_get_string_contents, Z3_get_string_length, Z3_mk_u32string

from workbench.types import Enum

from .ir import exact

__all__ = ["enum_sort", "from_model", "python_to_z3", "real_val", "string_val", "z3_string"]

MAX_CHAR = 0x2FFFF

_enum_sorts: weakref.WeakKeyDictionary[z3.Context, dict[tuple[str, ...], Any]] = weakref.WeakKeyDictionary()
_enum_lock = threading.Lock()


class ValueNotRepresentable(Exception):
    """A value Z3 cannot hold (a character beyond Z3's alphabet, a non-finite float)."""


def string_val(text: str, ctx: z3.Context) -> z3.SeqRef:
    """A Z3 string literal with exactly the code points of ``text``."""
    codes = [ord(c) for c in text]
    if codes and max(codes) > MAX_CHAR:
        raise ValueNotRepresentable(f"character U+{max(codes):X} is beyond Z3's alphabet")
    arr = (ctypes.c_uint * len(codes))(*codes)
    return z3.SeqRef(Z3_mk_u32string(ctx.ref(), len(codes), arr), ctx)


def z3_string(value: z3.SeqRef) -> str:
    """The Python string of a Z3 string value (code points, no escapes)."""
    n = Z3_get_string_length(value.ctx_ref(), value.as_ast())
    arr = (ctypes.c_uint * n)()
    Z3_get_string_contents(value.ctx_ref(), value.as_ast(), n, arr)
    return "".join(map(chr, arr))


def real_val(value: int | float | Fraction, ctx: z3.Context) -> z3.ArithRef:
    """An exact Z3 real for a Python number (floats by their shortest decimal)."""
    if (isinstance(value, float) and value != value) or value in (float("inf"), float("-inf")):
        raise ValueNotRepresentable(f"{value} is not a finite number")
    q = Fraction(exact(value))
    return z3.RealVal(f"{q.numerator}/{q.denominator}", ctx)


def enum_sort(enum: Enum, ctx: z3.Context) -> tuple[z3.SortRef, dict[str, z3.ExprRef]]:
    """The Z3 sort of an ``Enum`` type in ``ctx`` (declared once, then cached)."""
    with _enum_lock:
        per_ctx = _enum_sorts.setdefault(ctx, {})
        if enum.values not in per_ctx:
            # Constructor names are prefixed by the sort so two enums may share a value.
            name = f"Enum{len(per_ctx)}"
            sort, consts = z3.EnumSort(name, [f"{name}.{v}" for v in enum.values], ctx=ctx)
            per_ctx[enum.values] = (sort, dict(zip(enum.values, consts)))
        return per_ctx[enum.values]


def python_to_z3(value: Any, kind: str, ctx: z3.Context, enum: Enum | None = None) -> z3.ExprRef:
    """A Z3 literal of sort ``kind`` (int real str bool enum) for a plain value."""
    if kind == "int":
        return z3.IntVal(int(value), ctx)
    if kind == "real":
        return real_val(value, ctx)
    if kind == "str":
        return string_val(value, ctx)
    if kind == "bool":
        return z3.BoolVal(bool(value), ctx)
    if kind == "enum" and enum is not None:
        return enum_sort(enum, ctx)[1][value]
    raise ValueNotRepresentable(f"no Z3 literal for a {kind}")


def from_model(value: z3.ExprRef, kind: str) -> Any:
    """A plain Python value for a Z3 model value of sort ``kind``.

    Reals come back as ``float`` when that float's decimal is the exact value, else as
    a ``Fraction`` (so a counterexample is never silently rounded).
    """
    if kind == "int":
        return value.as_long()
    if kind == "real":
        if z3.is_algebraic_value(value):
            value = value.approx(20)
        q = value.as_fraction()
        as_float = float(q)
        return as_float if exact(as_float) == q else q
    if kind == "str":
        return z3_string(value)
    if kind == "bool":
        return z3.is_true(value)
    if kind == "enum":
        return str(value.decl().name()).split(".", 1)[1]
    raise ValueNotRepresentable(f"no Python value for a {kind}")
