"""Decode attention: reference against plain SDPA per row, Triton (interpreted) against the reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from workbench.errors import UsageError
from workbench.kernels import reference, triton_ops

from .kernel_testing import DTYPES, assert_close


def make(B: int, Hq: int, Hkv: int, Tmax: int, Dh: int, dtype: torch.dtype = torch.float32):
    q = torch.randn(B, Hq, Dh).to(dtype)  # [B, Hq, Dh]
    k = torch.randn(B, Hkv, Tmax, Dh).to(dtype)  # [B, Hkv, Tmax, Dh]
    v = torch.randn(B, Hkv, Tmax, Dh).to(dtype)
    return q, k, v


def sdpa_per_row(q, k, v, lengths, scale):
    """Independent oracle: each row's prefix through torch's SDPA, KV heads repeated for GQA."""
    G = q.shape[1] // k.shape[1]
    rows = []
    for b, n in enumerate(lengths.tolist()):
        kb = k[b, :, :n].float().repeat_interleave(G, 0)  # [Hq, n, Dh]
        vb = v[b, :, :n].float().repeat_interleave(G, 0)
        rows.append(F.scaled_dot_product_attention(q[b, :, None].float(), kb, vb, scale=scale)[:, 0])
    return torch.stack(rows).to(q.dtype)  # [B, Hq, Dh]


@pytest.mark.parametrize(("Hq", "Hkv"), [(4, 4), (8, 2), (6, 1)])
def test_reference_matches_sdpa(Hq: int, Hkv: int) -> None:
    q, k, v = make(3, Hq, Hkv, 37, 16)
    lengths = torch.tensor([37, 1, 20])
    out = reference.decode_attention(q, k, v, lengths, 0.25)
    torch.testing.assert_close(out, sdpa_per_row(q, k, v, lengths, 0.25), atol=1e-5, rtol=1e-5)


def test_reference_empty_row_gives_zeros() -> None:
    q, k, v = make(2, 2, 1, 8, 16)
    out = reference.decode_attention(q, k, v, torch.tensor([0, 3], dtype=torch.int32), 0.25)
    assert torch.equal(out[0], torch.zeros_like(out[0])) and torch.isfinite(out).all()


@pytest.mark.usefixtures("triton_available")
@pytest.mark.parametrize(
    ("B", "Hq", "Hkv", "Tmax", "Dh", "lengths", "splits"),
    [
        (1, 1, 1, 1, 16, [1], None),  # a single cached position
        (3, 8, 2, 37, 64, [37, 1, 20], None),  # GQA 4:1, Tmax not a multiple of the tile
        (2, 6, 1, 50, 48, [50, 17], 2),  # MQA, Dh not a power of two
        (2, 4, 4, 40, 32, [33, 0], 8),  # MHA, an empty row, more splits than tiles for the short row
        (2, 4, 2, 24, 16, [24, 9], 1),  # single split: normalised in the first kernel
    ],
)
def test_triton_matches_reference(B, Hq, Hkv, Tmax, Dh, lengths, splits, device) -> None:
    q, k, v = (t.to(device) for t in make(B, Hq, Hkv, Tmax, Dh))
    lens = torch.tensor(lengths, dtype=torch.int32, device=device)
    out = triton_ops.decode_attention(q, k, v, lens, Dh**-0.5, num_splits=splits)
    assert_close(out, reference.decode_attention(q, k, v, lens, Dh**-0.5))


@pytest.mark.usefixtures("triton_available")
@pytest.mark.parametrize("dtype", DTYPES)
def test_triton_half_types(dtype: torch.dtype, device: str) -> None:
    q, k, v = (t.to(device) for t in make(2, 4, 2, 30, 32, dtype))
    lens = torch.tensor([30, 11], device=device)  # int64 lengths work too
    out = triton_ops.decode_attention(q, k, v, lens, 32**-0.5, num_splits=2)
    assert_close(out, reference.decode_attention(q, k, v, lens, 32**-0.5))


@pytest.mark.usefixtures("triton_available")
def test_triton_on_a_token_major_cache() -> None:
    # A cache stored [B, Tmax, Hkv, Dh] and viewed as [B, Hkv, Tmax, Dh]: strides are honoured.
    q = torch.randn(2, 4, 16)
    k = torch.randn(2, 20, 2, 16).transpose(1, 2)
    v = torch.randn(2, 20, 2, 16).transpose(1, 2)
    lens = torch.tensor([20, 5])
    out = triton_ops.decode_attention(q, k, v, lens, 0.25, block_t=16)
    assert_close(out, reference.decode_attention(q, k, v, lens, 0.25))


def test_bad_shapes_are_usage_errors() -> None:
    q, k, v = make(2, 6, 4, 8, 16)
    with pytest.raises(UsageError, match="multiple"):
        reference.decode_attention(q, k, v, torch.tensor([1, 1]), 1.0)
    q, k, v = make(2, 4, 2, 8, 16)
    with pytest.raises(UsageError, match="lengths"):
        reference.decode_attention(q, k, v, torch.tensor([1.0, 1.0]), 1.0)
