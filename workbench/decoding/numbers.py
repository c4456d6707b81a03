"""Which number tokens may extend a number being written: every such token at once, in numpy.

A BPE vocabulary holds hundreds to thousands of tokens made of digits (Llama 3 has every
1- to 3-digit string). While a number field is written, each of them extends the number's
text and must keep it completable into the field's feasible range (``number_prefix_ok``).
Asking that per token in Python costs milliseconds a step; here it is a few vector
operations over all of them: the values a prefix can still grow into are one range
(``3.4`` -> [3.4, 3.5)) or, for a whole number ``d``, the ranges [d 10^k, (d+1) 10^k), of which
only the largest below the upper bound matters. Floats decide what is clearly in or out;
anything within rounding distance of a bound (and numbers of more than 15 digits) is decided
again exactly by ``number_prefix_ok``, so the verdicts are the exact ones.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from .prefix import Interval, _ceil_in, _floor_in, number_prefix_ok

__all__ = ["NumberTokens"]

_TOKEN = re.compile(r"[0-9]*\.?[0-9]*")
_PREFIX = re.compile(r"-?[0-9]*\.?[0-9]*")
_TOL = 1e-9  # relative distance under which a float comparison is re-decided exactly
_DIGITS = 15  # a float holds this many decimal digits exactly


class NumberTokens:
    """The tokens made of digits and at most one ``.``, with their parts as numbers."""

    def __init__(self, ids: Sequence[int], texts: Sequence[str]) -> None:
        keep = [(i, t) for i, t in zip(ids, texts, strict=True) if t and _TOKEN.fullmatch(t)]
        self.ids = np.array([i for i, _ in keep], dtype=np.int64)
        self.texts = [t for _, t in keep]
        parts = [t.partition(".") for t in self.texts]
        self.dot = np.array([bool(d) for _, d, _ in parts], dtype=bool)
        self.whole_len = np.array([len(w) for w, _, _ in parts], dtype=np.int64)
        self.whole = np.array([float(w or 0) for w, _, _ in parts])
        self.frac_len = np.array([len(f) for _, _, f in parts], dtype=np.int64)
        self.frac = np.array([float(f or 0) for _, _, f in parts])
        self.lead = np.array([w.startswith("0") for w, _, _ in parts], dtype=bool)

    def verdicts(self, prefix: str, rng: Interval, integer: bool) -> np.ndarray:
        """Per token (``self.ids``): can ``prefix + token`` still become a number in ``rng``?"""
        n = len(self.texts)
        if not _PREFIX.fullmatch(prefix):
            return np.zeros(n, dtype=bool)  # an exponent or a sign inside: never offered
        neg = prefix.startswith("-")
        body = prefix[1:] if neg else prefix
        r = rng.mirrored() if neg else rng
        cw, c_dot, cf = body.partition(".")
        ok = np.zeros(n, dtype=bool)
        unsure = np.zeros(n, dtype=bool)
        if c_dot:
            # "3.4" + "56": one range [3.456, 3.457); a second dot is never valid
            if integer or not cw:
                return np.zeros(n, dtype=bool) if integer else self._exact(prefix, rng, integer)
            pick = ~self.dot
            digits = len(cw) + len(cf) + self.whole_len
            scale = 10.0 ** (len(cf) + self.whole_len)
            start = float(cw) + (float(cf or 0) * 10.0**self.whole_len + self.whole) / scale
            self._meets(ok, unsure, pick, start, start + 1.0 / scale, r, digits)
        elif integer:
            pick = ~self.dot
            self._whole(ok, unsure, pick, cw, r, True)
        else:
            self._whole(ok, unsure, ~self.dot, cw, r, False)
            # "3" + "4.5" or "" + "0.": one range [34.5, 34.6), [0, 1)
            pick = self.dot & ((len(cw) + self.whole_len) > 0)
            scale = 10.0**self.frac_len
            whole = (float(cw) * 10.0**self.whole_len if cw else 0.0) + self.whole
            start = whole + self.frac / scale
            digits = len(cw) + self.whole_len + self.frac_len
            self._meets(ok, unsure, pick, start, start + 1.0 / scale, r, digits)
        if unsure.any():
            for k in np.flatnonzero(unsure).tolist():
                ok[k] = number_prefix_ok(prefix + self.texts[k], rng, integer)
        return ok

    def _exact(self, prefix: str, rng: Interval, integer: bool) -> np.ndarray:
        return np.array([number_prefix_ok(prefix + t, rng, integer) for t in self.texts], dtype=bool)

    def _whole(
        self, ok: np.ndarray, unsure: np.ndarray, pick: np.ndarray, cw: str, r: Interval, integer: bool
    ) -> None:
        """Tokens that keep the number whole: ``cw + token`` is ``d``; it grows into d 10^k."""
        digits = len(cw) + self.whole_len
        d = (float(cw) * 10.0**self.whole_len if cw else 0.0) + self.whole
        # "0" may end or go on with a fraction: [0, 1). "00" and "05" are no JSON numbers (the
        # grammar never allows them), so they stay refused here
        zero = pick & (d == 0)
        one = zero & (digits == 1)
        self._meets(ok, unsure, one, np.zeros_like(d), np.ones_like(d), r, digits, integer)
        lead = (self.lead & (len(cw) == 0)) | cw.startswith("0")
        grow = pick & ~zero & ~lead
        if r.hi is None:
            ok |= grow  # no upper bound: a long enough number always gets in
            unsure |= grow & (digits > _DIGITS)
            return
        hi = float(r.hi)
        room = grow & (d <= hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(room, np.log10(hi / np.where(d > 0, d, 1.0)), 0.0)
        kmax = np.floor(ratio)
        near = room & (np.abs(ratio - np.round(ratio)) < _TOL)
        unsure |= grow & (near | (digits + np.maximum(kmax, 0) > _DIGITS) | (np.abs(d - hi) <= _TOL * hi))
        for k in (kmax, kmax - 1):  # the largest range below the bound, and the one before
            use = room & (k >= 0)
            scale = 10.0 ** np.maximum(k, 0)
            self._meets(ok, unsure, use, d * scale, (d + 1.0) * scale, r, digits, integer)

    @staticmethod
    def _meets(
        ok: np.ndarray,
        unsure: np.ndarray,
        pick: np.ndarray,
        a: np.ndarray,
        b: np.ndarray,
        r: Interval,
        digits: np.ndarray | int,
        integer: bool = False,
    ) -> None:
        """Mark ``ok`` where [a, b) holds a value of ``r`` (an integer if asked), ``unsure`` where
        a float cannot tell."""
        if not pick.any():
            return
        if integer:  # integers in [a, b) and in r: [a, b - 1] against [ceil lo, floor hi], exactly
            lo = -math.inf if r.lo is None else float(_ceil_in(r.lo, r.lo_strict))
            hi = math.inf if r.hi is None else float(_floor_in(r.hi, r.hi_strict))
            yes = np.maximum(a, lo) <= np.minimum(b - 1.0, hi)
            close = np.zeros_like(yes)
        else:
            lo, lo_closed = (-math.inf, True) if r.lo is None else (float(r.lo), not r.lo_strict)
            hi, hi_closed = (math.inf, True) if r.hi is None else (float(r.hi), not r.hi_strict)
            low, high = np.maximum(a, lo), np.minimum(b, hi)
            closed = (a > lo) | lo_closed  # the lower end belongs to both
            closed_hi = (b > hi) & hi_closed  # the upper end is r's and closed (b is open)
            yes = (low < high) | ((low == high) & closed & closed_hi)
            scale = np.maximum(np.abs(low), np.abs(high))
            close = np.abs(high - low) <= _TOL * np.where(np.isfinite(scale), scale, 0.0)
            # the bounds themselves were rounded: values near them are decided exactly
            for bound in (lo, hi):
                if math.isfinite(bound):
                    close |= (np.abs(a - bound) <= _TOL * abs(bound) + 1e-300) | (
                        np.abs(b - bound) <= _TOL * abs(bound) + 1e-300
                    )
        ok |= pick & yes & ~close
        unsure |= pick & (close | (np.asarray(digits) > _DIGITS))
