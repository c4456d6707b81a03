"""Which number tokens may extend a number being written: all of them at once, exactly.

A BPE vocabulary holds hundreds to thousands of tokens made of digits (Llama 3 has every
1- to 3-digit string). While a number field is written, each of them extends the number's
text and must keep it completable into the field's feasible range (``number_prefix_ok``).
Asking that per token in Python costs milliseconds a step. Here the question is turned
around: a prefix ``p`` extended by an ``L``-digit token of value ``v`` is the number
``s = p * 10^L + v``, and the values ``s`` may grow into are ``[s 10^k, (s+1) 10^k)`` for every
``k >= 0`` (a decimal ``3.4`` + ``v`` is ``[s u, (s+1) u)`` with ``u = 10^-(1+L)``). For each ``k``
the ``s`` that meet the range form one run of integers, found with integer arithmetic on
the range's exact bounds; the tokens are sorted by value per length, so each run is a slice.
So a step costs a few dozen integer operations and slices, whatever the vocabulary, and the
verdicts are the exact ones. Tokens with a ``.`` are few and are asked one by one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from .prefix import Interval, _ceil_in, _floor_in, number_prefix_ok

__all__ = ["NumberTokens"]

_DIGITS = re.compile(r"[0-9]{1,18}")
_DOTTED = re.compile(r"[0-9]*\.[0-9]*")
_PREFIX = re.compile(r"-?[0-9]*\.?[0-9]*")


def _floor(x: Fraction | int, num: int, den: int = 1) -> int:
    """floor(x * num / den)."""
    q = Fraction(x)
    return (q.numerator * num) // (q.denominator * den)


def _ceil(x: Fraction | int, num: int, den: int = 1) -> int:
    """ceil(x * num / den)."""
    q = Fraction(x)
    return -((-q.numerator * num) // (q.denominator * den))


class NumberTokens:
    """The tokens made of digits (by length, sorted by value) and those with one ``.``."""

    def __init__(self, ids: Sequence[int], texts: Sequence[str], words: int) -> None:
        self.words = words
        groups: dict[int, list[tuple[int, int]]] = {}
        self.dotted: list[tuple[int, str]] = []
        for i, t in zip(ids, texts, strict=True):
            if _DIGITS.fullmatch(t):
                groups.setdefault(len(t), []).append((int(t), i))
            elif _DOTTED.fullmatch(t):
                self.dotted.append((i, t))
        self.by_len = {
            n: (np.array([v for v, _ in g], dtype=np.int64), np.array([i for _, i in g], dtype=np.int64))
            for n, g in ((n, sorted(g)) for n, g in sorted(groups.items()))
        }
        flags = np.zeros(words * 32, dtype=bool)
        for _, found in self.by_len.values():
            flags[found] = True
        flags[[i for i, _ in self.dotted]] = True
        self.mask = np.packbits(flags, bitorder="little").view(np.uint32)  # every token here
        self.zero = next((i for v, i in zip(*self.by_len.get(1, ((), ())), strict=True) if v == 0), None)

    def allowed(self, prefix: str, rng: Interval, integer: bool) -> np.ndarray:
        """Packed mask of the tokens here with which ``prefix + token`` can still become a number
        in ``rng`` (an integer if asked): exactly ``number_prefix_ok`` on each."""
        flags = np.zeros(self.words * 32, dtype=bool)
        if _PREFIX.fullmatch(prefix) and not prefix.startswith("--"):
            neg = prefix.startswith("-")
            r = rng.mirrored() if neg else rng
            body = prefix[1:] if neg else prefix
            slices = self._slices(body, r, integer)
            if slices:
                flags[np.concatenate(slices)] = True
            if not integer and "." not in body:
                for i, t in self.dotted:
                    flags[i] = number_prefix_ok(prefix + t, rng, integer)
        return np.packbits(flags, bitorder="little").view(np.uint32)

    def _slices(self, body: str, r: Interval, integer: bool) -> list[np.ndarray]:
        cw, dot, cf = body.partition(".")
        out: list[np.ndarray] = []
        if dot:  # "3.4" + v: s = 34 * 10^L + v in units of u = 10^-(1 + L): [s u, (s+1) u)
            if integer or not cw:
                return out
            whole = int(cw + cf)
            for n, (vals, ids) in self.by_len.items():
                scale = 10 ** (len(cf) + n)
                lo = None if r.lo is None else _floor(r.lo, scale)
                hi = (
                    None
                    if r.hi is None
                    else (_floor(r.hi, scale) if not r.hi_strict else _ceil(r.hi, scale) - 1)
                )
                self._take(out, vals, ids, [(lo, hi)], whole * 10**n, 0, 10**n - 1)
            return out
        if cw.startswith("0"):
            return out  # "0" goes on only with a fraction; "05" is no JSON number
        if not cw and self.zero is not None and number_prefix_ok("0", r, integer):
            out.append(np.array([self.zero], dtype=np.int64))
        whole = int(cw) if cw else 0
        if integer:
            lo_z = None if r.lo is None else _ceil_in(r.lo, r.lo_strict)
            hi_z = None if r.hi is None else _floor_in(r.hi, r.hi_strict)
        for n, (vals, ids) in self.by_len.items():
            first = 0 if cw else (10 ** (n - 1) if n > 1 else 1)  # no leading zeros; s >= 1
            runs: list[tuple[int | None, int | None]] = []
            if r.hi is None:
                runs.append((None, None))  # no upper bound: a long enough number gets in
            else:
                k = 0
                while 10**k <= max(1, r.hi):  # s >= 1, so s 10^k <= hi needs 10^k <= hi
                    p = 10**k
                    if integer:  # integers of [s p, (s+1) p - 1] in [lo_z, hi_z]
                        lo = None if lo_z is None else _ceil(lo_z + 1, 1, p) - 1
                        hi = None if hi_z is None else _floor(hi_z, 1, p)
                    else:  # [s p, (s+1) p) meets r: (s+1) p > lo and s p <= hi (< if open)
                        lo = None if r.lo is None else _floor(r.lo, 1, p)
                        hi = _floor(r.hi, 1, p) if not r.hi_strict else _ceil(r.hi, 1, p) - 1
                    runs.append((lo, hi))
                    k += 1
            self._take(out, vals, ids, runs, whole * 10**n, first, 10**n - 1)
        return out

    @staticmethod
    def _take(
        out: list[np.ndarray],
        vals: np.ndarray,
        ids: np.ndarray,
        runs: list[tuple[int | None, int | None]],
        base: int,
        first: int,
        last: int,
    ) -> None:
        """Append the ids of tokens whose value ``v`` puts ``base + v`` in one of ``runs`` and
        ``v`` in [first, last]."""
        spans = []
        for lo, hi in runs:
            a = first if lo is None else max(first, lo - base)
            b = last if hi is None else min(last, hi - base)
            if a <= b:
                spans.append((a, b))
        spans.sort()
        merged: list[list[int]] = []
        for a, b in spans:
            if merged and a <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        for a, b in merged:
            i0, i1 = np.searchsorted(vals, [a, b + 1])
            if i1 > i0:
                out.append(ids[i0:i1])
