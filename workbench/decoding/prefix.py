"""Reading a partly written JSON answer, and whether a partial value can still become a feasible one.

The answer is a flat JSON object written with fixed separators (the schema grammar sees to
that): ``{"side": "buy", "qty": 12, "price": 3.`` is read as two finished fields and the
partial value ``3.`` of ``price``. A number is finished only once a separator follows it (``12``
may still become ``120``); a string once its closing quote is written.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

__all__ = ["Interval", "Partial", "number_prefix_ok", "scan"]

_DECODER = json.JSONDecoder()
_SCALAR = re.compile(r"[-+0-9.eEa-z]*")  # a number, true, false or null, possibly unfinished


@dataclass(frozen=True)
class Partial:
    """Where a partial answer stands: finished ``(key, value)`` pairs in order, and the key and
    text of the value being written (``key`` is None between values, ``text`` is None before
    the value starts)."""

    done: tuple[tuple[str, Any], ...]
    key: str | None = None
    text: str | None = None
    closed: bool = False  # the closing brace is written
    at: int = field(default=0, compare=False)  # where the text after the last finished value starts


def scan(text: str, since: Partial | None = None) -> Partial | None:
    """Read ``text``, a prefix of a flat JSON object; None when it is not one (nested values).

    ``since``, the reading of a shorter prefix of ``text``, lets the scan resume after the
    values that reading had already finished (the text only grows while decoding)."""
    done: list[tuple[str, Any]] = list(since.done) if since is not None and since.at else []
    i, n, at = 0, len(text), since.at if since is not None else 0
    if n == 0:
        return Partial(())
    if text[0] != "{":
        return None
    i = max(1, at)
    while True:
        while i < n and text[i] in " ,\n\t":
            i += 1
        if i >= n:
            return Partial(tuple(done), at=at)
        if text[i] == "}":
            return Partial(tuple(done), closed=True, at=at)
        if text[i] != '"':
            return None
        try:
            key, i = _DECODER.raw_decode(text, i)
        except ValueError:
            return Partial(tuple(done), at=at)  # the key is still being written
        while i < n and text[i] in " :":
            i += 1
        if i >= n:
            return Partial(tuple(done), key, None, at=at)
        if text[i] == '"':
            try:
                value, i = _DECODER.raw_decode(text, i)
            except ValueError:
                return Partial(tuple(done), key, text[i:], at=at)
        elif text[i] in "{[":
            return None
        else:
            found = _SCALAR.match(text, i)
            end = found.end() if found else i
            if end >= n:
                return Partial(tuple(done), key, text[i:], at=at)
            try:
                value = json.loads(text[i:end])
            except ValueError:
                return None
            i = end
        done.append((key, value))
        at = i


@dataclass(frozen=True)
class Interval:
    """A feasible range: ``None`` bounds are unbounded; ``*_strict`` excludes the bound."""

    lo: Fraction | int | None = None
    hi: Fraction | int | None = None
    lo_strict: bool = False
    hi_strict: bool = False

    def holds(self, q: Fraction) -> bool:
        """Is the exact value ``q`` inside?"""
        if self.lo is not None and (q < self.lo or (self.lo_strict and q == self.lo)):
            return False
        return not (self.hi is not None and (q > self.hi or (self.hi_strict and q == self.hi)))

    def mirrored(self) -> Interval:
        """The range of ``-x``."""
        lo = None if self.hi is None else -self.hi
        hi = None if self.lo is None else -self.lo
        return Interval(lo, hi, self.hi_strict, self.lo_strict)

    def meets(self, a: Fraction, b: Fraction | None, integer: bool) -> bool:
        """Does ``[a, b)`` (``b`` None: ``[a, oo)``) hold a value of the range (an integer if asked)?"""
        if integer:
            first = a if self.lo is None else max(a, Fraction(_ceil_in(self.lo, self.lo_strict)))
            hi_open: Fraction | None = b
            if self.hi is not None:
                top = Fraction(_floor_in(self.hi, self.hi_strict) + 1)
                hi_open = top if b is None else min(top, b)
            return hi_open is None or first < hi_open
        lo, lo_strict = a, False
        if self.lo is not None and self.lo >= a:
            lo, lo_strict = Fraction(self.lo), self.lo_strict
        if b is None and self.hi is None:
            return True
        if self.hi is not None and (b is None or self.hi < b):
            return lo < self.hi or (lo == self.hi and not lo_strict and not self.hi_strict)
        assert b is not None
        return lo < b


def _ceil_in(x: Fraction | int, strict: bool) -> int:
    c = -((-Fraction(x).numerator) // Fraction(x).denominator)
    return c + 1 if strict and c == x else c


def _floor_in(x: Fraction | int, strict: bool) -> int:
    f = Fraction(x).numerator // Fraction(x).denominator
    return f - 1 if strict and f == x else f


def number_prefix_ok(text: str, rng: Interval, integer: bool) -> bool:
    """Can the JSON number prefix ``text`` still be completed into a value in ``rng``?

    Exponents are not offered (``e`` is refused): a bounded value is written in plain decimals.
    """
    if any(c in text for c in "eE+"):
        return False
    if text.startswith("-"):
        return number_prefix_ok(text[1:], rng.mirrored(), integer) if not text.startswith("--") else False
    whole, dot, frac = text.partition(".")
    if integer and dot:
        return False
    if whole == "":
        return rng.meets(Fraction(0), None, integer)
    if whole == "0" or dot:
        start = Fraction(f"{whole}.{frac}" if frac else whole)
        if not dot and whole == "0":  # "0" may end, or go on with a fraction: [0, 1)
            return rng.meets(Fraction(0), Fraction(1), integer)
        return rng.meets(start, start + Fraction(1, 10 ** len(frac)), integer)
    d = int(whole)
    k = 0
    while True:  # the completions of "12": [12, 13), [120, 130), [1200, 1300), ...
        a, b = Fraction(d * 10**k), Fraction((d + 1) * 10**k)
        if rng.meets(a, b, integer):
            return True
        if rng.hi is not None and a > rng.hi:
            return False
        if rng.hi is None:
            return rng.meets(a, None, integer)
        k += 1
