"""SiLU-and-multiply, the gate of a Llama MLP: torch reference and Triton kernel.

Maths, elementwise::

    silu(g) = g * sigmoid(g) = g / (1 + exp(-g))
    out     = silu(gate) * up

Rounding follows eager torch in the model dtype: ``silu`` is computed in fp32 and rounded to
the input dtype, then the product is rounded again (no-ops in fp32).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from workbench.errors import UsageError

from ._triton import cast_rne, jit, launch, tl, triton, wants_interpreter

__all__ = ["silu_and_mul_reference", "silu_and_mul_triton"]

_BLOCK = 1024


def _check(gate: torch.Tensor, up: torch.Tensor) -> None:
    if gate.shape != up.shape or gate.dtype != up.dtype:
        raise UsageError(
            f"silu_and_mul: gate {tuple(gate.shape)} {gate.dtype} and up {tuple(up.shape)} {up.dtype} "
            "must have the same shape and dtype"
        )


def silu_and_mul_reference(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """``silu(gate) * up`` for two tensors of the same shape ``[..., F]`` and dtype."""
    _check(gate, up)
    return F.silu(gate) * up


@jit
def silu_and_mul_kernel(
    gate_ptr,
    up_ptr,
    out_ptr,
    F,
    g_row_stride,
    u_row_stride,
    o_row_stride,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)  # [BLOCK]
    mask = cols < F
    g = tl.load(gate_ptr + row * g_row_stride + cols, mask=mask, other=0.0)  # [BLOCK] dtype
    u = tl.load(up_ptr + row * u_row_stride + cols, mask=mask, other=0.0)  # [BLOCK] dtype
    gf = g.to(tl.float32)
    # Round silu to the input dtype first, as eager F.silu(gate) * up does.
    s = cast_rne(gf / (1.0 + tl.exp(-gf)), g.dtype).to(tl.float32)
    out = s * u.to(tl.float32)
    tl.store(out_ptr + row * o_row_stride + cols, cast_rne(out, g.dtype), mask=mask)


def _rows(t: torch.Tensor, f: int) -> torch.Tensor:
    """``t`` as ``[N, F]`` with unit column stride; a view for the halves of a fused gate_up."""
    t2 = t.reshape(-1, f)
    return t2 if t2.stride(-1) == 1 else t2.contiguous()


def silu_and_mul_triton(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Triton :func:`silu_and_mul_reference`; rows may be strided (e.g. ``gate_up.chunk(2, -1)``)."""
    _check(gate, up)
    interpret = wants_interpreter(gate, up)
    f = gate.shape[-1]
    out = torch.empty(gate.shape, dtype=gate.dtype, device=gate.device)  # [..., F]
    if out.numel() == 0:
        return out
    g2, u2, o2 = _rows(gate, f), _rows(up, f), out.view(-1, f)  # [N, F] each
    grid = (g2.shape[0], triton.cdiv(f, _BLOCK))
    launch(
        silu_and_mul_kernel,
        grid,
        interpret,
        g2,
        u2,
        o2,
        f,
        g2.stride(0),
        u2.stride(0),
        o2.stride(0),
        BLOCK=_BLOCK,
        num_warps=4,
    )
    return out
