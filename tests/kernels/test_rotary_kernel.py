"""Rotary embedding: cos/sin tables against transformers, Triton (interpreted) against the reference."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from workbench.errors import UsageError
from workbench.kernels import reference, rotary_cos_sin, triton_ops

from .kernel_testing import DTYPES

LLAMA3 = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,
}


@pytest.mark.parametrize(
    ("head_dim", "base", "scaling"),
    [
        (64, 10000.0, None),
        (48, 1e6, None),
        (64, 500000.0, LLAMA3),
        (32, 10000.0, {"rope_type": "linear", "factor": 4.0}),
    ],
)
def test_cos_sin_match_transformers(head_dim: int, base: float, scaling: dict[str, Any] | None) -> None:
    transformers = pytest.importorskip("transformers")
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    config = transformers.LlamaConfig(
        hidden_size=head_dim * 2,
        num_attention_heads=2,
        head_dim=head_dim,
        max_position_embeddings=4096,
        rope_theta=base,
        rope_scaling=scaling,
    )
    positions = torch.tensor([[0, 5, 100, 3000], [7, 8, 9, 4095]])  # [B, T], a row each
    for dtype in (torch.float32, torch.bfloat16):
        want_cos, want_sin = LlamaRotaryEmbedding(config)(torch.zeros(1, dtype=dtype), positions)
        cos, sin = rotary_cos_sin(positions, head_dim, base, dtype, scaling)
        assert torch.equal(cos, want_cos) and torch.equal(sin, want_sin)


def test_reference_matches_hf_apply_rotary_pos_emb() -> None:
    llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    x = torch.randn(2, 3, 5, 16, dtype=torch.bfloat16)  # [B, H, T, Dh]
    cos, sin = rotary_cos_sin(torch.randint(0, 50, (2, 5)), 16, 10000.0, torch.bfloat16)
    want, _ = llama.apply_rotary_pos_emb(x, x, cos, sin)
    assert torch.equal(reference.apply_rotary(x, cos, sin), want)


@pytest.mark.usefixtures("triton_available")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("B", "H", "T", "Dh"), [(1, 1, 1, 2), (2, 3, 5, 16), (2, 5, 3, 48), (1, 40, 2, 128)])
def test_triton_is_bit_identical_to_reference(
    B: int, H: int, T: int, Dh: int, dtype: torch.dtype, device: str
) -> None:
    x = torch.randn(B, H, T, Dh).to(device, dtype)
    positions = torch.randint(0, 4000, (B, T))  # every row at its own positions
    cos, sin = (t.to(device) for t in rotary_cos_sin(positions, Dh, 10000.0, dtype))
    # The kernel rounds where eager torch rounds in the model dtype, so the bits agree.
    assert torch.equal(triton_ops.apply_rotary(x, cos, sin), reference.apply_rotary(x, cos, sin))


@pytest.mark.usefixtures("triton_available")
def test_triton_on_a_transposed_projection() -> None:
    B, T, H, Dh = 2, 4, 3, 32
    q = torch.randn(B, T, H * Dh).view(B, T, H, Dh).transpose(1, 2)  # [B, H, T, Dh], not contiguous
    cos, sin = rotary_cos_sin(torch.arange(T).repeat(B, 1), Dh, 10000.0, torch.float32)
    out = triton_ops.apply_rotary(q, cos, sin)
    assert out.stride() == q.stride()  # the layout is kept
    torch.testing.assert_close(out, reference.apply_rotary(q, cos, sin), atol=1e-6, rtol=1e-6)


def test_bad_shapes_and_scaling_are_usage_errors() -> None:
    x = torch.randn(1, 2, 3, 8)
    cos, sin = rotary_cos_sin(torch.zeros(1, 3, dtype=torch.int64), 8, 10000.0, torch.float32)
    with pytest.raises(UsageError, match="cos must be"):
        reference.apply_rotary(x, cos[:, :2], sin)
    with pytest.raises(UsageError, match="even"):
        rotary_cos_sin(torch.zeros(1, 3, dtype=torch.int64), 7, 10000.0, torch.float32)
    with pytest.raises(UsageError, match="not supported"):
        rotary_cos_sin(
            torch.zeros(1, 1, dtype=torch.int64), 8, 1e4, torch.float32, {"rope_type": "yarn", "factor": 2}
        )
    with pytest.raises(UsageError, match="lacks"):
        rotary_cos_sin(
            torch.zeros(1, 1, dtype=torch.int64), 8, 1e4, torch.float32, {"rope_type": "llama3", "factor": 2}
        )
