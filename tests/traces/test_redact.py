"""Regex redaction: what it finds, what it leaves alone."""

from __future__ import annotations

import pytest

from workbench.traces.redact import Redactor, RegexRedactor, luhn_ok

R = RegexRedactor()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to john.doe+x@mail.example.co.uk today", "write to [REDACTED:email] today"),
        ("call +44 20 7946 0958", "call [REDACTED:phone]"),
        ("call (555) 123-4567 now", "call [REDACTED:phone] now"),
        ("or +14155552671", "or [REDACTED:phone]"),
        ("card 4111 1111 1111 1111 ok", "card [REDACTED:card] ok"),
        ("card 5555-5555-5555-4444", "card [REDACTED:card]"),
    ],
)
def test_findings_are_replaced(text: str, expected: str) -> None:
    assert R.redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "order 4111111111111112 (fails Luhn)",
        "trace 4bf92f3577b34da6a3ce929d0e0e4736",
        "on 2026-11-29 at 12:30",
        "version 1.2.3, price 12345.67, ratio 0.123456789",
        "ts 1732861234567890123",
        "plain words only",
    ],
)
def test_look_alikes_survive(text: str) -> None:
    assert R.redact_text(text) == text


def test_attributes_only_strings_and_lists_and_same_object_when_clean() -> None:
    clean = {"workbench.node.name": "analyst", "n": 4111111111111111, "f": 1.5}
    assert R.redact_attributes(clean) is clean
    for _ in range(3):  # the clean-string cache must not hide a later finding
        assert R.redact_attributes(clean) is clean
    dirty = {"to": "a.b@example.com", "cc": ["x@example.org", 3], "n": 4111111111111111}
    out = R.redact_attributes(dirty)
    assert out == {"to": "[REDACTED:email]", "cc": ["[REDACTED:email]", 3], "n": 4111111111111111}
    assert dirty["to"] == "a.b@example.com"  # the caller's span is not modified


def test_luhn() -> None:
    assert luhn_ok("4111111111111111") and luhn_ok("79927398713")
    assert not luhn_ok("4111111111111112")


def test_custom_patterns_and_the_protocol() -> None:
    ids = RegexRedactor({"employee": r"EMP-\d{4}"}, validators={})
    assert ids.redact_text("by EMP-1234 and a@b.io") == "by [REDACTED:employee] and a@b.io"
    assert isinstance(ids, Redactor)
