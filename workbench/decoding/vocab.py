"""A tokenizer's tokens as the rails mask reads them: texts and character classes, built once.

The rails mask sorts tokens into classes so that whole classes are decided at once instead
of token by token: ``plain`` tokens (no ``"`` and no ``\\``) cannot end a string, so inside a
string they never change what the rails know; ``opens`` tokens (a ``"`` then plain text)
start a string and stay inside it; ``numbers`` (digits and one ``.``) only extend a number.
Masks are packed like the grammar's: bit ``t % 32`` of int32 word ``t // 32``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from .numbers import NumberTokens

__all__ = ["TokenTable", "pack", "token_table"]

_OPENS = re.compile(r'\s*"[^"\\]*')


def pack(flags: np.ndarray, words: int) -> np.ndarray:
    """Bool flags per token as a packed int32 mask of ``words`` words."""
    bits = np.zeros(words * 32, dtype=bool)
    bits[: len(flags)] = flags
    return np.packbits(bits, bitorder="little").view(np.int32)


@dataclass(eq=False)
class TokenTable:
    """Per tokenizer: each token's text and the packed class masks."""

    pieces: tuple[str, ...]
    words: int
    eos: np.ndarray  # packed: end-of-sequence tokens (the grammar decides where they go)
    plain: np.ndarray  # packed: no quote, no backslash
    opens: np.ndarray  # packed: optional blanks, a quote, then plain text
    numbers: NumberTokens

    def ids(self, mask: np.ndarray) -> list[int]:
        """The token ids a packed mask allows."""
        words = np.flatnonzero(mask)  # most masks here are sparse: unpack only non-zero words
        bits = np.unpackbits(mask[words].view(np.uint8), bitorder="little").reshape(len(words), 32)
        rows, cols = np.nonzero(bits)
        return [t for t in (words[rows] * 32 + cols).tolist() if t < len(self.pieces)]


@functools.lru_cache(maxsize=8)
def token_table(tokenizer: Any) -> TokenTable:
    """The table of ``tokenizer`` (the text of every token on its own; special tokens are '')."""
    pieces = tuple(tokenizer.decode([i]) for i in range(tokenizer.vocab_size))
    words = (len(pieces) + 31) // 32
    eos = np.zeros(len(pieces), dtype=bool)
    eos[[t for t in tokenizer.eos_token_ids if t < len(pieces)]] = True
    plain = np.array(['"' not in p and "\\" not in p for p in pieces], dtype=bool)
    opens = np.array([_OPENS.fullmatch(p) is not None for p in pieces], dtype=bool)
    return TokenTable(
        pieces, words, pack(eos, words), pack(plain, words), pack(opens, words),
        NumberTokens(range(len(pieces)), pieces, words),
    )  # fmt: skip
