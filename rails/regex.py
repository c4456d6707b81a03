"""Regular expressions for ``matches(s, "re")`` and ``Str(pattern=...)``.

One meaning everywhere: Python's ``re`` with ``re.ASCII``, full match
(``workbench.types.compile_pattern``): the type check, the rails evaluator and this
translation agree (``tests/rails/test_regex.py`` holds them together on random patterns
and Unicode strings). For Z3 we translate the regular subset exactly: literals, ``.``
(any character but a newline, as in Python), classes with ranges and negation,
``\\d \\w \\s`` (ASCII), ``* + ? {m,n}`` (greedy or lazy: the language is the same for a
full match), ``|`` and groups. Anything else (anchors, look-around, back-references,
flags) makes ``to_z3`` raise ``UnsupportedRegex``: the prover then says
``unsupported`` instead of guessing. The parse itself is Python's own (``re._parser``)
so both sides read the pattern the same way.

Z3's alphabet ends at ``MAX_CHAR`` (U+2FFFF), Python's at U+10FFFF. Every translated
class treats the characters from ``HIGH`` (U+2FC00, all unassigned up to U+2FFFF) to
U+10FFFF alike, so the 1,024 Z3 characters from ``HIGH`` on stand for all of them: a
Python string with characters beyond Z3 gets the same verdicts as the Z3 string with
stand-ins in their place. A class or literal that tells them apart (``[\\x00-\\U0002ffff]``,
``\\U00030000``) is refused rather than cut at U+2FFFF.
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Any

import z3

from workbench.types import compile_pattern

if TYPE_CHECKING:  # typeshed types re's private parser under its old public names
    import sre_constants
    import sre_parse
else:  # importing those names warns (deprecated since 3.11); these are the same modules
    from re import _constants as sre_constants
    from re import _parser as sre_parse

__all__ = ["HIGH", "MAX_CHAR", "UnsupportedRegex", "compile_regex", "to_z3"]

# Z3's string alphabet ends here (its default "unicode" encoding).
MAX_CHAR = 0x2FFFF
# From here on, every translated class contains all characters or none (see above).
HIGH = 0x2FC00
# Repetition bounds above this are refused for Z3 (they blow up the automaton).
_MAX_LOOP = 1000

_C = sre_constants
_DIGIT = [(48, 57)]
_WORD = [(48, 57), (65, 90), (95, 95), (97, 122)]
_SPACE = [(9, 13), (32, 32)]
_CATEGORIES = {
    _C.CATEGORY_DIGIT: (_DIGIT, False),
    _C.CATEGORY_NOT_DIGIT: (_DIGIT, True),
    _C.CATEGORY_WORD: (_WORD, False),
    _C.CATEGORY_NOT_WORD: (_WORD, True),
    _C.CATEGORY_SPACE: (_SPACE, False),
    _C.CATEGORY_NOT_SPACE: (_SPACE, True),
}


class UnsupportedRegex(Exception):
    """The pattern uses a feature outside the subset Z3 gets an exact translation of."""


def compile_regex(pattern: str) -> re.Pattern[str]:
    """Compile for runtime use (the meaning ``to_z3`` translates). Raises ``re.error``."""
    return compile_pattern(pattern)


def to_z3(pattern: str, ctx: z3.Context) -> z3.ReRef:
    """The Z3 regular expression with exactly the strings ``re.fullmatch`` accepts."""
    try:
        parsed = sre_parse.parse(pattern, re.ASCII)
    except (re.error, ValueError, RecursionError, OverflowError) as exc:
        raise UnsupportedRegex(f"cannot parse {pattern!r}: {exc}") from None
    if parsed.state.flags & ~(re.ASCII | re.UNICODE):
        raise UnsupportedRegex(f"regex flags in {pattern!r}")
    return _Translator(ctx).seq(list(parsed.data))


class _Translator:
    def __init__(self, ctx: z3.Context) -> None:
        self.ctx = ctx
        self.rsort = z3.ReSort(z3.StringSort(ctx))

    def empty_string(self) -> z3.ReRef:
        return z3.Re(z3.StringVal("", self.ctx))

    def seq(self, items: list[tuple[Any, Any]]) -> z3.ReRef:
        parts = [self.item(op, av) for op, av in items]
        if not parts:
            return self.empty_string()
        return parts[0] if len(parts) == 1 else z3.Concat(*parts)

    def chars(self, ranges: list[tuple[int, int]], negate: bool) -> z3.ReRef:
        ranges = _complement(ranges) if negate else _normalise(ranges)
        high = sum(min(hi, sys.maxunicode) - max(lo, HIGH) + 1 for lo, hi in ranges if hi >= HIGH)
        if high not in (0, sys.maxunicode - HIGH + 1):
            raise UnsupportedRegex(
                f"a class that tells apart characters from U+{HIGH:X} on (beyond Z3's alphabet)"
            )
        ranges = [(lo, min(hi, MAX_CHAR)) for lo, hi in ranges if lo <= MAX_CHAR]
        if not ranges:
            return z3.Empty(self.rsort)
        res = [self.range(lo, hi) for lo, hi in ranges]
        return res[0] if len(res) == 1 else z3.Union(*res)

    def range(self, lo: int, hi: int) -> z3.ReRef:
        if lo == hi:
            return z3.Re(_char_string(lo, self.ctx))
        return z3.Range(_char_string(lo, self.ctx), _char_string(hi, self.ctx))

    def item(self, op: Any, av: Any) -> z3.ReRef:
        if op is _C.LITERAL:
            return self.chars([(av, av)], False)
        if op is _C.NOT_LITERAL:
            return self.chars([(av, av)], True)
        if op is _C.ANY:
            return self.chars([(10, 10)], True)  # '.' skips '\n' without DOTALL
        if op is _C.IN:
            return self.char_class(av)
        if op is _C.BRANCH:
            alternatives = [self.seq(list(branch)) for branch in av[1]]
            return z3.Union(*alternatives) if len(alternatives) > 1 else alternatives[0]
        if op is _C.SUBPATTERN:
            _group, add_flags, del_flags, sub = av
            if add_flags or del_flags:
                raise UnsupportedRegex("inline flags")
            return self.seq(list(sub))
        if op in (_C.MAX_REPEAT, _C.MIN_REPEAT, getattr(_C, "POSSESSIVE_REPEAT", None)):
            if op is not _C.MAX_REPEAT and op is not _C.MIN_REPEAT:
                raise UnsupportedRegex("possessive repetition")
            lo, hi, sub = av
            body = self.seq(list(sub))
            if hi is _C.MAXREPEAT:
                if lo > _MAX_LOOP:
                    raise UnsupportedRegex(f"repetition {{{lo},}} is too large")
                star = z3.Star(body)
                return star if lo == 0 else z3.Concat(z3.Loop(body, lo, lo), star)
            if hi > _MAX_LOOP:
                raise UnsupportedRegex(f"repetition {{{lo},{hi}}} is too large")
            if lo == hi == 0:
                return self.empty_string()
            return z3.Loop(body, lo, hi)
        raise UnsupportedRegex(f"regex feature {str(op).lower()}")

    def char_class(self, items: list[tuple[Any, Any]]) -> z3.ReRef:
        negate = False
        ranges: list[tuple[int, int]] = []
        for op, av in items:
            if op is _C.NEGATE:
                negate = True
            elif op is _C.LITERAL:
                ranges.append((av, av))
            elif op is _C.RANGE:
                ranges.append(av)
            elif op is _C.CATEGORY and av in _CATEGORIES:
                cat_ranges, cat_neg = _CATEGORIES[av]
                ranges.extend(_complement(cat_ranges) if cat_neg else cat_ranges)
            else:
                raise UnsupportedRegex(f"class item {str(op).lower()}")
        return self.chars(ranges, negate)


def _normalise(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, merged ranges of Python code points."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        lo, hi = max(lo, 0), min(hi, sys.maxunicode)
        if lo > hi:
            continue
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _complement(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The Python code points outside ``ranges``."""
    out, start = [], 0
    for lo, hi in _normalise(ranges):
        if lo > start:
            out.append((start, lo - 1))
        start = hi + 1
    if start <= sys.maxunicode:
        out.append((start, sys.maxunicode))
    return out


def _char_string(code: int, ctx: z3.Context) -> z3.SeqRef:
    from workbench.rails.z3values import string_val

    return string_val(chr(code), ctx)
