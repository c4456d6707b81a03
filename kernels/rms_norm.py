"""RMSNorm (Llama style): torch reference and Triton kernel.

Maths, for a row ``x`` of length ``D``::

    h   = float32(x)
    r   = 1 / sqrt(mean(h * h) + eps)
    out = weight * dtype(x)(h * r)

The order of casts is Hugging Face ``LlamaRMSNorm``'s: normalise in fp32, round back to the
input dtype, *then* multiply by the weight (in the promoted dtype of weight and input). A
bf16 model therefore rounds twice, exactly as the checkpoints were trained and evaluated.
"""

from __future__ import annotations

import torch

from workbench.errors import UsageError

from ._triton import cast_rne, jit, launch, next_power_of_2, tl, wants_interpreter

__all__ = ["rms_norm_reference", "rms_norm_triton"]

# One program normalises one whole row; past this the row no longer fits in registers.
_MAX_D = 65536


def rms_norm_reference(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Llama RMSNorm in torch: ``weight * (x * rsqrt(mean(x^2, -1) + eps)).to(x.dtype)``.

    ``x``: ``[..., D]``, ``weight``: ``[D]``; the result has ``x``'s shape and the promoted
    dtype of ``weight`` and ``x`` (the same as ``x`` when both match, the usual case).
    """
    _check(x, weight)
    h = x.float()  # [..., D] fp32
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)  # [..., D]
    return weight * h.to(x.dtype)


def _check(x: torch.Tensor, weight: torch.Tensor) -> None:
    if weight.dim() != 1 or x.shape[-1] != weight.shape[0]:
        raise UsageError(f"rms_norm: weight shape {tuple(weight.shape)} does not match x {tuple(x.shape)}")


@jit
def rms_norm_kernel(
    x_ptr,
    w_ptr,
    out_ptr,
    x_row_stride,
    out_row_stride,
    D,
    eps,
    BLOCK_D: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_D)  # [BLOCK_D]
    mask = cols < D
    x = tl.load(x_ptr + row * x_row_stride + cols, mask=mask, other=0.0)  # [BLOCK_D] x.dtype
    h = x.to(tl.float32)
    # Padding lanes load 0 so they add nothing to the sum; divide by the true D.
    mean_sq = tl.sum(h * h, axis=0) / D
    r = 1.0 / tl.sqrt(mean_sq + eps)
    # Round to the input dtype before the weight multiply (HF's cast order).
    normed = cast_rne(h * r, x.dtype)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0)  # [BLOCK_D] weight.dtype
    out = w.to(tl.float32) * normed.to(tl.float32)
    tl.store(out_ptr + row * out_row_stride + cols, cast_rne(out, out_ptr.dtype.element_ty), mask=mask)


def rms_norm_triton(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Triton RMSNorm with :func:`rms_norm_reference`'s semantics.

    Runs compiled on CUDA tensors and under the Triton interpreter on CPU tensors.
    """
    _check(x, weight)
    D = x.shape[-1]
    if D > _MAX_D:
        raise UsageError(f"rms_norm_triton: D={D} exceeds {_MAX_D}; use rms_norm_reference")
    interpret = wants_interpreter(x, weight)
    x2 = x.reshape(-1, D)  # [N, D] (a view whenever x's rows are evenly strided)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    out_dtype = torch.promote_types(x.dtype, weight.dtype)
    out = torch.empty(x2.shape, dtype=out_dtype, device=x.device)  # [N, D]
    n_rows = x2.shape[0]
    if n_rows == 0:
        return out.reshape(x.shape)
    block = next_power_of_2(D)
    # More warps for wide rows keeps the per-thread register footprint small.
    num_warps = 4 if block <= 2048 else 8 if block <= 8192 else 16
    launch(
        rms_norm_kernel,
        (n_rows,),
        interpret,
        x2,
        weight.contiguous(),
        out,
        x2.stride(0),
        out.stride(0),
        D,
        float(eps),
        BLOCK_D=block,
        num_warps=num_warps,
    )
    return out.reshape(x.shape)
