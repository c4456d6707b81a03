"""Packed token bitmasks: torch reference and Triton kernel for masking logits.

A mask for a vocabulary of ``V`` tokens is ``int32 [B, W]`` with ``W >= ceil(V / 32)``; token
``t`` is allowed when bit ``t % 32`` of word ``t // 32`` is set (bit 0 = least significant).
Maths::

    allowed[b, t] = (mask[b, t // 32] >> (t % 32)) & 1        (0 when t // 32 >= W)
    out[b, t]     = logits[b, t] if allowed[b, t] else -inf

Tokens past the mask's last word count as disallowed, so a mask built for a tokenizer smaller
than the model's padded embedding never lets the padding ids through.
"""

from __future__ import annotations

import torch

from workbench.errors import UsageError

from ._triton import jit, launch, tl, triton, wants_interpreter

__all__ = ["allowed_tokens", "apply_token_bitmask_reference", "apply_token_bitmask_triton", "check_bitmask"]

_BLOCK = 1024


def check_bitmask(logits: torch.Tensor, bitmask: torch.Tensor) -> None:
    """Raise :class:`UsageError` unless ``bitmask`` is ``int32 [B, W]`` matching ``logits [B, V]``."""
    if logits.dim() != 2:
        raise UsageError(f"token bitmask: logits must be [B, V], got {tuple(logits.shape)}")
    if bitmask.dtype != torch.int32 or bitmask.dim() != 2 or bitmask.shape[0] != logits.shape[0]:
        raise UsageError(
            f"token bitmask: want int32 [B={logits.shape[0]}, W], got {bitmask.dtype} {tuple(bitmask.shape)}"
        )


def allowed_tokens(bitmask: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Unpack ``bitmask int32 [B, W]`` into ``bool [B, vocab_size]`` (True = allowed)."""
    idx = torch.arange(vocab_size, device=bitmask.device)  # [V]
    word = idx // 32  # [V]
    in_range = word < bitmask.shape[1]  # [V]
    words = bitmask[:, word.clamp(max=max(bitmask.shape[1] - 1, 0))]  # [B, V] int32
    # Arithmetic shift of a negative word drags the sign bit in, but & 1 only keeps bit t % 32.
    bits = (words >> (idx % 32).to(torch.int32)) & 1  # [B, V]
    return (bits == 1) & in_range


def apply_token_bitmask_reference(logits: torch.Tensor, bitmask: torch.Tensor) -> torch.Tensor:
    """``logits [B, V]`` with every token the packed ``bitmask`` disallows set to ``-inf``."""
    check_bitmask(logits, bitmask)
    if bitmask.shape[1] == 0:
        return torch.full_like(logits, float("-inf"))
    return logits.masked_fill(~allowed_tokens(bitmask, logits.shape[1]), float("-inf"))


@jit
def bitmask_kernel(
    logits_ptr,
    mask_ptr,
    out_ptr,
    V,
    W,
    l_row_stride,
    m_row_stride,
    o_row_stride,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)  # [BLOCK]
    inb = cols < V
    word_idx = cols // 32
    words = tl.load(mask_ptr + row * m_row_stride + word_idx, mask=inb & (word_idx < W), other=0)  # [BLOCK]
    allowed = ((words >> (cols % 32)) & 1) != 0
    x = tl.load(logits_ptr + row * l_row_stride + cols, mask=inb, other=0.0)  # [BLOCK]
    x = tl.where(allowed, x, float("-inf"))
    tl.store(out_ptr + row * o_row_stride + cols, x.to(out_ptr.dtype.element_ty), mask=inb)


def apply_token_bitmask_triton(logits: torch.Tensor, bitmask: torch.Tensor) -> torch.Tensor:
    """Triton :func:`apply_token_bitmask_reference` (a new tensor; ``logits`` is left alone)."""
    check_bitmask(logits, bitmask)
    interpret = wants_interpreter(logits, bitmask)
    B, V = logits.shape
    out = torch.empty_like(logits, memory_format=torch.contiguous_format)  # [B, V]
    if out.numel() == 0:
        return out
    if logits.stride(-1) != 1:
        logits = logits.contiguous()
    if bitmask.stride(-1) != 1:
        bitmask = bitmask.contiguous()
    grid = (B, triton.cdiv(V, _BLOCK))
    launch(
        bitmask_kernel,
        grid,
        interpret,
        logits,
        bitmask,
        out,
        V,
        bitmask.shape[1],
        logits.stride(0),
        bitmask.stride(0),
        out.stride(0),
        BLOCK=_BLOCK,
        num_warps=4,
    )
    return out
