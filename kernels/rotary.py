"""Rotary position embedding (RoPE), Hugging Face "rotate_half" convention.

Maths, for one head vector ``x`` of even length ``Dh`` split into halves ``x1, x2``::

    rotate_half(x) = cat(-x2, x1)
    out            = x * cos + rotate_half(x) * sin
    i.e.  out[:h] = x1 * cos[:h] - x2 * sin[:h]
          out[h:] = x2 * cos[h:] + x1 * sin[h:]          (h = Dh / 2)

``cos``/``sin`` are ``[B, T, Dh]`` as HF's ``LlamaRotaryEmbedding`` returns them (each half
holds the same frequencies), already cast to the model dtype, so every row of a batch can sit
at its own position (batched decode with ragged prompts).

``rotary_cos_sin`` computes them: ``angle[b, t, j] = positions[b, t] * inv_freq[j mod h]``
with ``inv_freq[j] = base ** (-2j / Dh)``, optionally rescaled for Llama 3.x ("llama3") or
linear position interpolation ("linear"), exactly as ``transformers`` does it.

Rounding: HF computes ``x * cos + rotate_half(x) * sin`` in the model dtype, rounding each
product and the sum. The Triton kernel rounds at the same three places (no-ops in fp32), so a
bf16 model gets bit-identical rotated queries and keys.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from workbench.errors import UsageError

from ._triton import cast_rne, jit, launch, next_power_of_2, tl, triton, wants_interpreter

__all__ = ["apply_rotary_reference", "apply_rotary_triton", "rope_inv_freq", "rotary_cos_sin"]


def rope_inv_freq(head_dim: int, base: float, scaling: dict[str, Any] | None = None) -> torch.Tensor:
    """Inverse frequencies ``[head_dim // 2]`` (fp32, CPU), HF's formulas for the supported types.

    ``scaling`` is a checkpoint's ``rope_scaling`` dict: ``None`` or ``rope_type`` "default";
    "linear" (``factor``); "llama3" (``factor``, ``low_freq_factor``, ``high_freq_factor``,
    ``original_max_position_embeddings``).
    """
    if head_dim <= 0 or head_dim % 2:
        raise UsageError(f"rotary: head_dim must be a positive even number, got {head_dim}")
    # Same expression and dtypes as transformers, so the fp32 values match bit for bit.
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.int64).to(torch.float) / head_dim))
    kind = (scaling or {}).get("rope_type", (scaling or {}).get("type", "default"))
    if kind == "default":
        return inv_freq
    assert scaling is not None
    try:
        factor = float(scaling["factor"])
        if kind == "linear":
            return inv_freq / factor
        if kind == "llama3":
            low = float(scaling["low_freq_factor"])
            high = float(scaling["high_freq_factor"])
            old_len = scaling["original_max_position_embeddings"]
        else:
            raise UsageError(f"rotary: rope_type {kind!r} is not supported (default, linear, llama3 are)")
    except KeyError as e:
        raise UsageError(f"rotary: rope_scaling of type {kind!r} lacks {e.args[0]!r}") from None
    low_wavelen = old_len / low
    high_wavelen = old_len / high
    wavelen = 2 * math.pi / inv_freq  # [h]
    # Long wavelengths (low frequencies) are divided by factor, short ones kept, and the band
    # between them interpolated smoothly.
    scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)  # [h]
    smooth = (old_len / wavelen - low) / (high - low)  # [h]
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled  # [h]
    is_medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
    return torch.where(is_medium, smoothed, scaled)


def rotary_cos_sin(
    positions: torch.Tensor,
    head_dim: int,
    base: float,
    dtype: torch.dtype,
    scaling: dict[str, Any] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos, sin`` of shape ``[B, T, head_dim]`` in ``dtype`` for int64 ``positions [B, T]``.

    Computed in fp32 on ``positions``'s device, halves duplicated, as ``LlamaRotaryEmbedding``.
    """
    if positions.dim() != 2:
        raise UsageError(f"rotary_cos_sin: positions must be [B, T], got {tuple(positions.shape)}")
    inv_freq = rope_inv_freq(head_dim, base, scaling).to(positions.device)  # [h] fp32
    freqs = positions[..., None].float() * inv_freq  # [B, T, h]
    emb = torch.cat((freqs, freqs), dim=-1)  # [B, T, Dh]
    return emb.cos().to(dtype), emb.sin().to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _check(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> None:
    if x.dim() != 4 or x.shape[-1] % 2:
        raise UsageError(f"apply_rotary: x must be [B, H, T, Dh] with even Dh, got {tuple(x.shape)}")
    B, _, T, Dh = x.shape
    for name, t in (("cos", cos), ("sin", sin)):
        if tuple(t.shape) != (B, T, Dh):
            raise UsageError(f"apply_rotary: {name} must be [B, T, Dh] = {(B, T, Dh)}, got {tuple(t.shape)}")


def apply_rotary_reference(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``x * cos + rotate_half(x) * sin`` for ``x [B, H, T, Dh]``, ``cos, sin [B, T, Dh]``."""
    _check(x, cos, sin)
    cos = cos.unsqueeze(1).to(x.dtype)  # [B, 1, T, Dh]
    sin = sin.unsqueeze(1).to(x.dtype)  # [B, 1, T, Dh]
    return x * cos + _rotate_half(x) * sin


@jit
def rotary_kernel(
    x_ptr,
    cos_ptr,
    sin_ptr,
    out_ptr,
    H,
    T,
    HALF,
    sxb,
    sxh,
    sxt,
    sxd,
    scb,
    sct,
    scd,
    ssb,
    sst,
    ssd,
    sob,
    soh,
    sot,
    sod,
    BLOCK_H: tl.constexpr,
    BLOCK_HALF: tl.constexpr,
):
    # One program: one (b, t) and BLOCK_H heads; cos/sin for (b, t) are loaded once.
    bt = tl.program_id(0)
    b = (bt // T).to(tl.int64)
    t = (bt % T).to(tl.int64)
    heads = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)  # [BLOCK_H]
    j = tl.arange(0, BLOCK_HALF)  # [BLOCK_HALF]
    jm = j < HALF
    c_base = cos_ptr + b * scb + t * sct
    s_base = sin_ptr + b * ssb + t * sst
    c1 = tl.load(c_base + j * scd, mask=jm, other=0.0).to(tl.float32)  # [BLOCK_HALF]
    c2 = tl.load(c_base + (j + HALF) * scd, mask=jm, other=0.0).to(tl.float32)
    s1 = tl.load(s_base + j * ssd, mask=jm, other=0.0).to(tl.float32)
    s2 = tl.load(s_base + (j + HALF) * ssd, mask=jm, other=0.0).to(tl.float32)

    m = (heads[:, None] < H) & jm[None, :]  # [BLOCK_H, BLOCK_HALF]
    hh = heads[:, None].to(tl.int64)
    x_base = x_ptr + b * sxb + t * sxt + hh * sxh
    x1 = tl.load(x_base + j[None, :] * sxd, mask=m, other=0.0)  # [BLOCK_H, BLOCK_HALF] x.dtype
    x2 = tl.load(x_base + (j[None, :] + HALF) * sxd, mask=m, other=0.0)
    dt = x1.dtype
    x1f = x1.to(tl.float32)
    x2f = x2.to(tl.float32)
    # Round each product and the sum to x.dtype, as HF's expression does in that dtype.
    o1 = cast_rne(x1f * c1[None, :], dt).to(tl.float32) - cast_rne(x2f * s1[None, :], dt).to(tl.float32)
    o2 = cast_rne(x2f * c2[None, :], dt).to(tl.float32) + cast_rne(x1f * s2[None, :], dt).to(tl.float32)
    o_base = out_ptr + b * sob + t * sot + hh * soh
    tl.store(o_base + j[None, :] * sod, cast_rne(o1, dt), mask=m)
    tl.store(o_base + (j[None, :] + HALF) * sod, cast_rne(o2, dt), mask=m)


def apply_rotary_triton(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Triton RoPE with :func:`apply_rotary_reference`'s semantics; any strides on ``x``.

    The result has ``x``'s shape and dtype and, for dense ``x``, its memory layout.
    """
    _check(x, cos, sin)
    interpret = wants_interpreter(x, cos, sin)
    # HF rounds cos/sin to the model dtype before multiplying; do the same.
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)  # [B, T, Dh]
    B, H, T, Dh = x.shape
    out = torch.empty_like(x)  # [B, H, T, Dh], same layout as x when x is dense
    if out.numel() == 0:
        return out
    half = Dh // 2
    block_half = next_power_of_2(half)
    # Aim for ~2-4K elements per program: enough work per launch without spilling registers.
    block_h = max(1, min(next_power_of_2(H), 4096 // (2 * block_half)))
    grid = (B * T, triton.cdiv(H, block_h))
    launch(
        rotary_kernel,
        grid,
        interpret,
        x,
        cos,
        sin,
        out,
        H,
        T,
        half,
        *x.stride(),
        *cos.stride(),
        *sin.stride(),
        *out.stride(),
        BLOCK_H=block_h,
        BLOCK_HALF=block_half,
        num_warps=4,
    )
    return out
