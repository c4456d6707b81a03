"""Built-in string predicates for the PII pack (and any rail).

Two kinds, decided by whether Z3 can state them exactly:

- regular ones (``contains_email``, ``contains_phone``): "some substring matches this
  regex". The evaluator runs ``re.search``; Z3 gets ``InRe(s, .* R .*)``, the same
  language, so proofs about them are exact.
- checksum ones (``luhn_card``, ``contains_iban``): a card number must pass Luhn and an
  IBAN mod-97, which no practical regex states. The evaluator implements them exactly;
  Z3 sees an uninterpreted function of the string. Proofs stay sound (a proof must
  hold whatever the function says) but a counterexample that leans on the function's
  value is re-checked by the evaluator and reported ``unsupported`` if it fails.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["CHECKSUM_PREDICATES", "PREDICATES", "REGULAR_PREDICATES"]

# Deliberately simple, documented shapes; see docs/rails.md.
EMAIL_RE = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,24}"
PHONE_RE = r"\+?[0-9]{1,3}[ .\-]?(\([0-9]{2,4}\)|[0-9]{2,4})[ .\-]?[0-9]{3,4}[ .\-]?[0-9]{3,4}"

REGULAR_PREDICATES: dict[str, str] = {"contains_email": EMAIL_RE, "contains_phone": PHONE_RE}

_email = re.compile(EMAIL_RE, re.ASCII)
_phone = re.compile(PHONE_RE, re.ASCII)
# A card number: 13-19 digits, optionally grouped by single spaces or dashes.
_card_run = re.compile(r"[0-9](?:[ \-]?[0-9])*")
_iban = re.compile(r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}")


def luhn_valid(digits: str) -> bool:
    """Luhn checksum of a string of ASCII digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def luhn_card(text: str) -> bool:
    """True when ``text`` contains a Luhn-valid number of 13-19 digits: a whole run of
    digits, or consecutive groups of one run separated by single spaces or dashes
    ("4111 1111 1111 1111 exp 12 30" finds the first four groups)."""
    for run in _card_run.finditer(text):
        groups = re.split(r"[ \-]", run.group())
        for start in range(len(groups)):
            digits = ""
            for group in groups[start:]:
                digits += group
                if len(digits) > 19:
                    break
                if len(digits) >= 13 and luhn_valid(digits):
                    return True
    return False


def iban_valid(candidate: str) -> bool:
    """ISO 13616 mod-97 check of an IBAN without spaces."""
    moved = candidate[4:] + candidate[:4]
    number = "".join(str(int(ch, 36)) for ch in moved)
    return int(number) % 97 == 1


def contains_iban(text: str) -> bool:
    """True when ``text`` contains an IBAN (country, check digits, 11-30 alphanumerics,
    single spaces allowed) whose mod-97 checksum is valid."""
    for match in _iban.finditer(text):
        compact = match.group().replace(" ", "")
        for end in range(len(compact), 14, -1):
            if iban_valid(compact[:end]):
                return True
    return False


def contains_email(text: str) -> bool:
    """True when some substring of ``text`` looks like an e-mail address."""
    return _email.search(text) is not None


def contains_phone(text: str) -> bool:
    """True when some substring of ``text`` looks like a phone number."""
    return _phone.search(text) is not None


CHECKSUM_PREDICATES: dict[str, Callable[[str], bool]] = {
    "luhn_card": luhn_card,
    "contains_iban": contains_iban,
}
PREDICATES: dict[str, Callable[[str], bool]] = {
    "contains_email": contains_email,
    "contains_phone": contains_phone,
    **CHECKSUM_PREDICATES,
}
