"""Packed token bitmasks: the bit convention, and Triton (interpreted) against the reference."""

from __future__ import annotations

import pytest
import torch

from workbench.errors import UsageError
from workbench.kernels import reference, triton_ops
from workbench.kernels.bitmask import allowed_tokens


def pack(allowed: torch.Tensor) -> torch.Tensor:
    """Independent packer: bool [B, V] -> int32 [B, ceil(V/32)], bit t%32 of word t//32."""
    B, V = allowed.shape
    W = (V + 31) // 32
    words = torch.zeros(B, W, dtype=torch.int64)
    for t in range(V):
        words[:, t // 32] |= allowed[:, t].long() << (t % 32)
    words = torch.where(words >= 2**31, words - 2**32, words)  # two's complement into int32
    return words.to(torch.int32)


def test_unpack_inverts_an_independent_pack() -> None:
    allowed = torch.rand(3, 77) < 0.5
    allowed[:, 31] = True  # bit 31: the sign bit of its word
    assert torch.equal(allowed_tokens(pack(allowed), 77), allowed)


def test_tokens_past_the_last_word_are_disallowed() -> None:
    mask = torch.full((1, 1), -1, dtype=torch.int32)  # allows tokens 0..31 only
    out = reference.apply_token_bitmask(torch.zeros(1, 40), mask)
    assert torch.isfinite(out[0, :32]).all()
    assert torch.isinf(out[0, 32:]).all()


@pytest.mark.usefixtures("triton_available")
@pytest.mark.parametrize("vocab", [1, 31, 100, 1100])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_triton_matches_reference(vocab: int, dtype: torch.dtype, device: str) -> None:
    logits = torch.randn(3, vocab).to(dtype)
    words = (vocab + 31) // 32 + (1 if vocab == 100 else 0)  # one spare word is fine
    mask = torch.randint(-(2**31), 2**31 - 1, (3, words), dtype=torch.int32)
    mask[1] = 0  # a row with nothing allowed
    logits, mask = logits.to(device), mask.to(device)
    expected = reference.apply_token_bitmask(logits, mask)
    assert torch.equal(triton_ops.apply_token_bitmask(logits, mask), expected)
    assert torch.isinf(expected[1]).all()


@pytest.mark.usefixtures("triton_available")
def test_short_mask_in_triton() -> None:
    mask = torch.full((2, 1), -1, dtype=torch.int32)
    logits = torch.randn(2, 40)
    assert torch.equal(
        triton_ops.apply_token_bitmask(logits, mask), reference.apply_token_bitmask(logits, mask)
    )


def test_wrong_mask_dtype_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="int32"):
        reference.apply_token_bitmask(torch.zeros(1, 8), torch.zeros(1, 1, dtype=torch.int64))
