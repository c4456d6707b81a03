"""Redaction of personal data before anything is persisted or forwarded.

A ``Redactor`` rewrites string attribute values. The store applies one to every span's
attributes, event attributes and status message in the writer thread, before the rows
reach DuckDB (or a forwarded OTLP request), so the file never holds the original text.

``RegexRedactor`` is the default: e-mail addresses, phone numbers and payment card
numbers (Luhn-checked, so order ids and timestamps survive). The pii rail pack can plug
in its own detector later by implementing the two-method ``Redactor`` protocol.
Only string values are inspected: numbers (durations, token counts) are never touched.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = ["DEFAULT_PATTERNS", "Redactor", "RegexRedactor", "luhn_ok"]


@runtime_checkable
class Redactor(Protocol):
    """Rewrites personal data out of text; must be thread-safe and cheap on clean text."""

    def redact_text(self, text: str) -> str:
        """``text`` with every finding replaced (the same object when nothing was found)."""
        ...

    def redact_attributes(self, attributes: Mapping[str, Any]) -> Mapping[str, Any]:
        """``attributes`` with string values redacted (the same mapping when nothing was found)."""
        ...


def luhn_ok(digits: str) -> bool:
    """True when the digit string passes the Luhn checksum used by payment cards."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


DEFAULT_PATTERNS: dict[str, str] = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    # 13-19 digits, optionally grouped by spaces or dashes (checked with Luhn below).
    "card": r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])",
    # International (+CC ...) or grouped national numbers with at least 8 digits.
    "phone": r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}(?!\w)"
    r"|(?<![\w+])\+\d{8,15}(?!\w)",
}


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{2}[./-]\d{2}[./-]\d{4}")
# Cheap first look: every default pattern needs an '@' or a run of 8+ digits and separators.
_PREFILTER = re.compile(r"@|\d[\d ().-]{6,}\d")


def _card_ok(match: str) -> bool:
    return luhn_ok(re.sub(r"\D", "", match))


def _phone_ok(match: str) -> bool:
    digits = sum(ch.isdigit() for ch in match)
    return 8 <= digits <= 15 and not _DATE.fullmatch(match)


class RegexRedactor:
    """Replaces matches of named regular expressions by ``[REDACTED:<name>]``.

    ``patterns`` maps a name to a regex (default: ``DEFAULT_PATTERNS``); ``validators``
    may veto a match by name (default: cards must pass Luhn).
    """

    def __init__(
        self,
        patterns: Mapping[str, str] | None = None,
        validators: Mapping[str, Callable[[str], bool]] | None = None,
    ) -> None:
        self.patterns = dict(DEFAULT_PATTERNS if patterns is None else patterns)
        self._validators = {"card": _card_ok, "phone": _phone_ok} if validators is None else dict(validators)
        # One combined pattern: a single scan finds the first finding of any kind, and
        # clean text (the common case) costs one regex search.
        self._combined = re.compile("|".join(f"(?P<{name}>{rx})" for name, rx in self.patterns.items()))
        # The prefilter is only sound for the default patterns; custom ones scan directly.
        self._prefilter = _PREFILTER if patterns is None else self._combined
        self._clean: dict[str, None] = {}  # strings known to need nothing (bounded, thread-safe ops)

    def _replace(self, match: re.Match[str]) -> str:
        name = match.lastgroup or "pii"
        check = self._validators.get(name)
        if check is not None and not check(match.group()):
            return match.group()
        return f"[REDACTED:{name}]"

    def redact_text(self, text: str) -> str:
        """``text`` with every finding replaced."""
        if not self._prefilter.search(text):
            return text
        return self._combined.sub(self._replace, text)

    def redact_attributes(self, attributes: Mapping[str, Any]) -> Mapping[str, Any]:
        """String values (also inside lists) redacted; the same object when nothing changed."""
        out: dict[str, Any] | None = None
        search = self._prefilter.search
        clean = self._clean
        for k, v in attributes.items():
            if type(v) is str:
                # Node names, kinds, models repeat in every span: remember clean strings so
                # the regex runs once per distinct value (a dict lookup uses the cached hash).
                if len(v) < 6 or v in clean:
                    continue
                if not search(v):
                    self._remember_clean(v)
                    continue
                new: Any = self._combined.sub(self._replace, v)
            elif type(v) is list:
                new = [self.redact_text(x) if type(x) is str else x for x in v]
            else:
                continue
            if new != v:
                if out is None:
                    out = dict(attributes)
                out[k] = new
        return attributes if out is None else out

    def _remember_clean(self, v: str) -> None:
        """Note a short string the regex found nothing in (bounded: cleared when full)."""
        if len(v) <= 200:
            if len(self._clean) >= 50_000:
                self._clean.clear()
            self._clean[v] = None

    def redact_many(self, batch: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """``redact_attributes`` of every mapping in ``batch`` (the same objects where clean).

        The writer's hot path: the distinct values of the whole batch are gathered at C speed
        (one set union), the regex looks at each new string once, and only the mappings
        holding a finding go through ``redact_attributes``. A batch with an unhashable value
        (a list) takes the per-mapping path.
        """
        redact = self.redact_attributes
        try:
            values = set().union(*[a.values() for a in batch])
        except TypeError:
            return [redact(a) if a else a for a in batch]
        clean = self._clean
        search = self._prefilter.search
        dirty = set()
        for v in values.difference(clean):
            if not isinstance(v, str) or len(v) < 6:  # str subclasses too: equal values dedupe
                continue
            if search(v):
                dirty.add(v)
            else:
                self._remember_clean(v)
        if not dirty:
            return batch
        return [a if dirty.isdisjoint(a.values()) else redact(a) for a in batch]
