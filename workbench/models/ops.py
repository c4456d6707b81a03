"""The per-token ops of the model, with the ``workbench.kernels`` signatures, chosen per device.

On CUDA every op is the ``workbench.kernels`` one (Triton). On CPU the kernels package runs
its torch references, written for clarity: each is a chain of small torch calls, and at a
small model's decode sizes the dispatch of those calls, not arithmetic, is the time. So where
torch itself has one fused op for the same maths, the CPU path takes it instead (measured on
the 2-core dev machine, one thread, one decode row):

    op                     kernels reference   here
    rms_norm (fp32)        ~17 us              ~11 us   torch.nn.functional.rms_norm
    apply_rotary           ~10 calls           4 calls  roll + addcmul (same maths, see below)
    decode attention       ~100-280 us         ~15 us   scaled_dot_product_attention (llama.py)

SiLU-and-multiply, rotary tables, sampling and bitmasks are the kernels' own code on every
device; on CPU this module calls ``workbench.kernels.reference`` directly, deciding the device
once here instead of in the kernels' per-call dispatch (which reads an environment variable on
every call). Half-precision RMSNorm on CPU stays on the reference, whose fp32-then-cast order
matches Hugging Face's rounding exactly. The parity tests (tests/models/test_parity.py) hold
the CPU path to transformers' logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from workbench import kernels
from workbench.kernels import reference

__all__ = ["apply_rotary", "rms_norm", "rotary_cos_sin", "silu_and_mul"]

rotary_cos_sin = kernels.rotary_cos_sin  # builds tables once per step; plain torch everywhere


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding of x [B,H,T,Dh] with cos/sin [B,T,Dh] (HF rotate_half layout).

    ``x * cos + rotate_half(x) * sin``. On CPU, four torch calls instead of the reference's
    ten: ``rotate_half(x) = cat(-x2, x1)`` equals ``roll(x, Dh/2)`` with its first half negated,
    so the negation moves onto ``sin``.
    """
    if x.device.type != "cpu":
        return kernels.apply_rotary(x, cos, sin)
    half = x.shape[-1] // 2
    signed_sin = torch.cat((-sin[..., :half], sin[..., half:]), dim=-1).unsqueeze(1)  # [B,1,T,Dh]
    return torch.addcmul(x * cos.unsqueeze(1), x.roll(half, dims=-1), signed_sin)


def silu_and_mul(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """silu(gate) * up."""
    if gate.device.type == "cpu":
        return reference.silu_and_mul(gate, up)
    return kernels.silu_and_mul(gate, up)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """``weight * x / sqrt(mean(x^2) + eps)`` over the last dimension (see the module docstring)."""
    if x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32:
        return F.rms_norm(x, (x.shape[-1],), weight, eps)
    if x.device.type == "cpu":
        return reference.rms_norm(x, weight, eps)
    return kernels.rms_norm(x, weight, eps)
